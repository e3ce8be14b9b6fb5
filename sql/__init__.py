"""Numbered, idempotent SQL migrations; the read contract lives in these files."""
