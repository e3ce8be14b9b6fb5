"""OGC SensorThings API 1.1, Sensing part, read-only, served at ``/v1.1``."""
