"""Sensor catalogue, canonical reading, payload codecs, topic scheme and fleet simulator."""
