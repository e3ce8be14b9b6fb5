"""The open-data HTTP API: SensorThings API 1.1 (read-only), aggregates, exports, a public page."""
