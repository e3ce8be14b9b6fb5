"""Read sessions: every API query runs as the caller's database role, through tenancy views.

The API never reads the base tables. A session sets ``ROLE`` to the caller's role (a council's
``civicpulse_council_<slug>`` or ``civicpulse_public``) and ``search_path`` to the ``tenant``
schema first (then ``public``, for the dashboards' SQL functions: its tables are not readable),
whose views have the names and columns of the read contract (sql/030 …) and return only what
that role may see: its council's rows plus what sharing agreements grant it (sql/040).
So API code queries ``readings``, ``readings_1h``, ``sensor_sites`` … unqualified, exactly as
Grafana and SQL users do, and tenancy is the database's job, not the handler's.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Final

from psycopg import AsyncConnection, sql
from psycopg_pool import AsyncConnectionPool

PUBLIC_ROLE: Final = "civicpulse_public"
COUNCIL_ROLE_PREFIX: Final = "civicpulse_council_"
TENANT_SCHEMA: Final = "tenant"


def council_role(council: str) -> str:
    """The database role whose reads are a council's view of the platform."""
    return f"{COUNCIL_ROLE_PREFIX}{council}"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is reading: a council (by API key) or the public (no key)."""

    council: str | None = None  # None: the public
    key_id: int | None = None

    @property
    def role(self) -> str:
        return PUBLIC_ROLE if self.council is None else council_role(self.council)

    @property
    def label(self) -> str:
        return "public" if self.council is None else self.council


PUBLIC_CALLER: Final = Caller()


@dataclass(slots=True)
class ReadSession:
    """One request's reads: a connection inside a read-only transaction as the caller's role."""

    conn: AsyncConnection[Any]
    caller: Caller
    rows: int = 0
    what: list[str] = field(default_factory=list)

    def count(self, rows: int, what: str = "") -> None:
        """Record rows returned to the caller (the access log's row count)."""
        self.rows += rows
        if what:
            self.what.append(what)


REQUEST_LINE: ContextVar[str] = ContextVar("civicpulse_request_line", default="")
"""The request being served (method, path and query), for the access log; set by the app."""


class Reader:
    """Hands out read sessions from a connection pool; each one leaves an access-log row."""

    def __init__(self, pool: AsyncConnectionPool[Any], *, tenancy: bool = True) -> None:
        self.pool = pool
        self.tenancy = tenancy

    @asynccontextmanager
    async def session(self, caller: Caller) -> AsyncIterator[ReadSession]:
        """A transaction as ``caller``'s role; on the way out, its access-log row.

        The row is written in the same transaction when the read ends normally, and in a
        transaction of its own when it ends early (a client that went away mid-stream still
        read what it was sent).
        """
        async with self.pool.connection() as conn:
            read: ReadSession | None = None
            try:
                async with conn.transaction():
                    await self._become(conn, caller)
                    read = ReadSession(conn, caller)
                    yield read
                    await self._log(read)
            except BaseException:
                if read is not None and read.rows and not conn.closed:
                    with contextlib.suppress(Exception):
                        await conn.rollback()
                        async with conn.transaction():
                            await self._become(conn, caller)
                            await self._log(read)
                raise

    async def _become(self, conn: AsyncConnection[Any], caller: Caller) -> None:
        await conn.execute("SET LOCAL jit = off")  # compiling costs more than these queries
        if not self.tenancy:
            return
        await conn.execute(sql.SQL("SET LOCAL ROLE {}").format(sql.Identifier(caller.role)))
        await conn.execute(
            sql.SQL("SET LOCAL search_path = {}, public, pg_catalog").format(
                sql.Identifier(TENANT_SCHEMA)
            )
        )

    async def _log(self, read: ReadSession) -> None:
        if not self.tenancy:
            return
        what = REQUEST_LINE.get() or "; ".join(read.what) or "(unknown request)"
        await read.conn.execute(
            "INSERT INTO access_log_entries (key_id, what, rows) VALUES (%s, %s, %s)",
            (read.caller.key_id, what[:2000], read.rows),
        )
