"""Opening database connections the one way the platform does: UTC, errors translated."""

from __future__ import annotations

import psycopg

from sensors.errors import CivicPulseError


class StoreUnavailable(CivicPulseError):
    """The database cannot be reached or refused the write; retry later, nothing was stored."""


def connect(conninfo: str, *, autocommit: bool = False) -> psycopg.Connection:
    """A connection in UTC with a short connect timeout; raises :class:`StoreUnavailable`."""
    try:
        conn = psycopg.connect(
            conninfo, autocommit=autocommit, connect_timeout=10, options="-c timezone=UTC"
        )
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"cannot connect to the database: {_first_line(exc)}") from exc
    return conn


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
