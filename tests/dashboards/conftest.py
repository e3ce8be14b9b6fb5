"""Fixtures of the dashboard tests: one seeded PostgreSQL database per session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from tests.dashboards.seed import Seeded, seed


@pytest.fixture(scope="session")
def seeded(database_url: str) -> Iterator[Seeded]:
    """A new database, migrated and seeded (dropped at the end of the session)."""
    name = f"test_dash_{uuid.uuid4().hex}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))
    try:
        yield seed(url)
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
