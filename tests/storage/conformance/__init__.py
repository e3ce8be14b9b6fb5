"""Conformance: the read contract answers the same on PostgreSQL 15 and TimescaleDB."""
