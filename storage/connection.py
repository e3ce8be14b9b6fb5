"""Opening database connections the one way the platform does: UTC, errors translated."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

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


class Reconnecting:
    """One lazily (re)opened connection: ``transaction()`` translates outages once, here.

    ``prepare`` runs on every new connection (session settings, temp tables). A lost
    connection is closed and reopened by the next call; the failed call raises
    :class:`StoreUnavailable` so its caller keeps its data and retries.
    """

    def __init__(
        self, conninfo: str, prepare: Callable[[psycopg.Connection], None] | None = None
    ) -> None:
        self._conninfo = conninfo
        self._prepare = prepare
        self._conn: psycopg.Connection | None = None

    def get(self) -> psycopg.Connection:
        """The open connection, opening (and preparing) a new one when needed."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._conn = connect(self._conninfo)
            if self._prepare is not None:
                self._prepare(self._conn)
                self._conn.commit()
        return self._conn

    @contextmanager
    def transaction(self, what: str) -> Iterator[psycopg.Cursor[Any]]:
        """A cursor in one transaction; an outage closes the connection and raises."""
        try:
            conn = self.get()
            with conn.transaction(), conn.cursor() as cur:
                yield cur
        except psycopg.OperationalError as exc:
            self.close()
            raise StoreUnavailable(f"{what} failed: {_first_line(exc)}") from exc

    def close(self) -> None:
        """Close the connection (the next call reconnects)."""
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
