"""The MQTT → Kafka ingest bridge: decode and validate once, dead-letter the rest."""
