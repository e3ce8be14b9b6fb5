"""Apply the numbered SQL files in ``sql/`` once each, in order, under an advisory lock."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

import psycopg

from storage.connection import connect

_LOCK_KEY = 0x63697669  # "civi": one migrator at a time across processes


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered migration file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the file, recorded so an edited, already-applied file is noticed."""
        return hashlib.sha256(self.sql.encode()).hexdigest()


def available() -> list[Migration]:
    """Every migration shipped in the ``sql`` package, ordered by version."""
    found = []
    for entry in resources.files("sql").iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:3].isdigit():
            found.append(Migration(int(name[:3]), name, entry.read_text(encoding="utf-8")))
    return sorted(found, key=lambda m: m.version)


_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


def applied_migrations(conn: psycopg.Connection) -> dict[int, str]:
    """Applied version → checksum."""
    conn.execute(_CREATE_LEDGER)
    rows = conn.execute("SELECT version, checksum FROM schema_migrations").fetchall()
    return {int(v): str(c) for v, c in rows}


def pending(conninfo: str) -> list[Migration]:
    """Migrations not yet applied to the database at ``conninfo``."""
    with connect(conninfo, autocommit=True) as conn:
        done = applied_migrations(conn)
    return [m for m in available() if m.version not in done]


def _refresh_tenant_views(conn: psycopg.Connection) -> None:
    """Rebuild the tenant views (sql/040) so they carry every column the relations have now."""
    row = conn.execute("SELECT to_regprocedure('tenancy.refresh_views()') IS NOT NULL").fetchone()
    if row and row[0]:
        with conn.transaction():
            conn.execute("SELECT tenancy.refresh_views()")


def migrate(conninfo: str) -> list[Migration]:
    """Apply every pending migration, each in its own transaction; returns those applied."""
    applied: list[Migration] = []
    with connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            done = applied_migrations(conn)
            for migration in available():
                if migration.version in done:
                    continue
                with conn.transaction():
                    conn.execute(migration.sql.encode())  # our own files, not user input
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum)"
                        " VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                applied.append(migration)
            if applied:
                _refresh_tenant_views(conn)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied
