"""The batched, idempotent readings sink: raw rows and their one-minute aggregates."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import orjson
import psycopg
from psycopg.types.json import set_json_loads

from sensors.reading import Reading
from storage import rollups
from storage.connection import Reconnecting

log = logging.getLogger(__name__)

T = TypeVar("T")


class BatchWork(Protocol):
    """What an :data:`InsertedHook` leaves to do after its reads, in the same transaction."""

    def compute(self) -> None:
        """Work without the database: runs while it refreshes the batch's aggregates."""

    def finish(self, cur: psycopg.Cursor[Any]) -> Any:
        """Writes, once the aggregates are refreshed."""


# Called inside the batch's transaction with the readings this batch actually inserted
# (replayed duplicates excluded), e.g. to run detectors and save alerts atomically. It does
# its reads and returns the rest as a BatchWork (or None when there is nothing left).
InsertedHook = Callable[[psycopg.Cursor[Any], list[Reading]], BatchWork | None]

STAGE_DDL = """
CREATE TEMP TABLE IF NOT EXISTS readings_stage (
    time timestamptz, council text, sensor_id text, kind text, metric text,
    value double precision, unit text, received_at timestamptz
) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS readings_new (
    time timestamptz, council text, sensor_id text, kind text, metric text,
    value double precision
) ON COMMIT DELETE ROWS
"""

_COPY = (
    "COPY readings_stage (time, council, sensor_id, kind, metric, value, unit, received_at)"
    " FROM STDIN (FORMAT BINARY)"
)
# Binary COPY: psycopg packs each row in C (no timestamp text to format and parse again):
# 0.04 s of Python CPU per 100,000 readings against 0.27 s for the text format, measured.
_COPY_TYPES = ("timestamptz", "text", "text", "text", "text", "float8", "text", "timestamptz")

# The rows actually inserted (replayed duplicates are not) are also kept in `readings_new`:
# the aggregates merge exactly those, so a replay or a redelivery never counts a reading twice.
# Whatever an earlier batch left there is cleared by the same statement (its sub-statements
# share one snapshot: the DELETE sees only older rows), not left to ON COMMIT: batches staged
# inside one outer transaction (savepoints) must not merge each other's rows again.
_INSERT_RAW = """
WITH cleared AS (
    DELETE FROM readings_new
), inserted AS (
    INSERT INTO readings (time, council, sensor_id, kind, metric, value, unit, received_at)
    SELECT DISTINCT ON (sensor_id, metric, time)
           time, council, sensor_id, kind, metric, value, unit, received_at
      FROM readings_stage
     ORDER BY sensor_id, metric, time, received_at
    ON CONFLICT (sensor_id, metric, time) DO NOTHING
    RETURNING time, council, sensor_id, kind, metric, value
), kept AS (
    INSERT INTO readings_new SELECT * FROM inserted
)
SELECT count(*) FROM inserted
"""
# Which readings those were, asked only when some of the batch was not inserted (a replay).
_INSERTED_KEYS = "SELECT sensor_id, metric, time FROM readings_new"

# Each minute bucket the new rows fall in is merged with them in the same transaction as their
# insert (count, min, max, mean, latest value), so it always equals the aggregate of the stored
# raw rows — after a crash, a replay or a late reading — without re-reading the minute (a mean
# may differ from a fresh avg() in the last bits: summation order).
_REFRESH_1M = """
INSERT INTO readings_1m AS m (bucket, council, sensor_id, kind, metric,
                              n, min, max, mean, last, last_time)
SELECT date_trunc('minute', time), min(council), sensor_id, min(kind), metric,
       count(*), min(value), max(value), avg(value),
       (array_agg(value ORDER BY time DESC))[1], max(time)
  FROM readings_new
 GROUP BY 1, sensor_id, metric
ON CONFLICT (sensor_id, metric, bucket) DO UPDATE
   SET council = least(m.council, EXCLUDED.council), kind = least(m.kind, EXCLUDED.kind),
       n = m.n + EXCLUDED.n,
       min = least(m.min, EXCLUDED.min), max = greatest(m.max, EXCLUDED.max),
       mean = (m.mean * m.n + EXCLUDED.mean * EXCLUDED.n) / (m.n + EXCLUDED.n),
       last = CASE WHEN EXCLUDED.last_time > m.last_time THEN EXCLUDED.last ELSE m.last END,
       last_time = greatest(m.last_time, EXCLUDED.last_time)
"""


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one batch write did."""

    received: int
    inserted: int
    minutes_refreshed: int

    @property
    def duplicates(self) -> int:
        """Readings already stored (replays, redeliveries) that were skipped."""
        return self.received - self.inserted


def apply_stage(cur: psycopg.Cursor, *, maintain_rollups: bool) -> tuple[int, int]:
    """Store the staged batch and refresh what it touched; returns (inserted, minutes).

    ``maintain_rollups``: also recompute the touched 15m/1h/1d rollup buckets (plain
    PostgreSQL, where they are tables; on TimescaleDB they are continuous aggregates).
    The inserted rows are left in ``readings_new`` until the next batch.
    """
    inserted = insert_staged(cur)
    return inserted, refresh_aggregates(cur, maintain_rollups=maintain_rollups)


def insert_staged(cur: psycopg.Cursor) -> int:
    """Insert the staged batch's new readings (into ``readings_new`` too); returns how many."""
    row = cur.execute(_INSERT_RAW).fetchone()
    return int(row[0]) if row else 0


def refresh_aggregates(
    cur: psycopg.Cursor, *, maintain_rollups: bool, during: Callable[[], None] | None = None
) -> int:
    """Merge ``readings_new`` into the one-minute aggregates (and the rollups when
    ``maintain_rollups``); returns the minutes refreshed.

    ``during`` runs while the database executes them: the statements go out in pipeline
    mode, without waiting for each other's results, and are waited for after it returns.
    """
    if during is None:
        refreshed = cur.execute(_REFRESH_1M).rowcount
        if maintain_rollups:
            rollups.refresh_touched(cur)
        return refreshed
    with cur.connection.cursor() as minutes:
        with cur.connection.pipeline():
            minutes.execute(_REFRESH_1M)
            if maintain_rollups:
                rollups.refresh_touched(cur)
            during()
        return minutes.rowcount  # its result is in once the pipeline is left


_LONG_NUMBER = re.compile(rb"\d{19}")  # orjson reads integers beyond 64 bits as floats


def _json_loads(data: bytes | str) -> Any:
    """orjson (the same values, faster) unless the document has a number of 19 or more
    digits or orjson refuses it (1e400, nesting beyond 1024): then the stdlib, as before."""
    raw = data.encode() if isinstance(data, str) else data
    if _LONG_NUMBER.search(raw) is None:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    return json.loads(data)


def _prepare(conn: psycopg.Connection) -> None:
    # Detector states and alerts are loaded in every batch's transaction: parse them fast.
    set_json_loads(_json_loads, conn)
    conn.execute(STAGE_DDL)
    # Batch statements are short but, joined to big tables, estimated dear enough to
    # trigger JIT compilation: ~0.5 s a statement at 26M rows for nothing.
    conn.execute("SET jit = off")


class ReadingStore:
    """Writes batches of canonical readings in one transaction each; safe to replay.

    Raises :class:`StoreUnavailable` when the database is down; the caller keeps the
    batch (does not commit its source offsets) and retries.
    """

    def __init__(self, conninfo: str, *, maintain_rollups: bool | None = None) -> None:
        """``maintain_rollups`` None: detect (plain-PostgreSQL rollup tables are kept)."""
        self._db = Reconnecting(conninfo, prepare=_prepare)
        self._maintain_rollups = maintain_rollups  # None: not known yet (not migrated)

    def _maintains_rollups(self, cur: psycopg.Cursor[Any]) -> bool:
        if self._maintain_rollups is None:
            self._maintain_rollups = rollups.maintained_by_store(cur.connection)
        return bool(self._maintain_rollups)  # None: not migrated yet, ask again next time

    def write(
        self, readings: Sequence[Reading], on_inserted: InsertedHook | None = None
    ) -> WriteResult:
        """Store ``readings`` (duplicates skipped) and refresh their one-minute aggregates.

        ``on_inserted`` runs in the same transaction with the newly inserted readings only,
        before the aggregates are refreshed; the work it returns computes while the database
        refreshes them and finishes after.
        """
        if not readings:
            return WriteResult(0, 0, 0)
        with self._db.transaction("database write") as cur:
            with cur.copy(_COPY) as copy:
                copy.set_types(_COPY_TYPES)
                for r in readings:
                    copy.write_row(
                        (
                            r.time,
                            r.council,
                            r.sensor_id,
                            r.kind,
                            r.metric,
                            r.value,
                            r.unit,
                            r.received_at,
                        )
                    )
            maintain = self._maintains_rollups(cur)
            inserted = insert_staged(cur)
            work = None
            if on_inserted is not None and inserted:
                work = on_inserted(cur, self._inserted(cur, readings, inserted))
            refreshed = refresh_aggregates(
                cur, maintain_rollups=maintain, during=work.compute if work else None
            )
            if work is not None:
                work.finish(cur)
        return WriteResult(len(readings), inserted, refreshed)

    @staticmethod
    def _inserted(
        cur: psycopg.Cursor[Any], readings: Sequence[Reading], inserted: int
    ) -> list[Reading]:
        """The readings of this batch that were inserted (not already stored), in order.

        All of them when the count says so (the common case: no replay, no duplicate in the
        batch); otherwise the inserted keys are read back from ``readings_new``.
        """
        if inserted == len(readings):
            return list(readings)
        keys = set(cur.execute(_INSERTED_KEYS).fetchall())
        return [r for r in readings if r.key in keys]

    def transact(self, work: Callable[[psycopg.Cursor[Any]], T]) -> T:
        """Run ``work`` in one transaction on the store's connection (e.g. the alert tick)."""
        with self._db.transaction("database transaction") as cur:
            return work(cur)

    def close(self) -> None:
        """Close the connection (a later write reconnects)."""
        self._db.close()
