"""Rollups of the read contract: kept exact by the store on PostgreSQL, refreshed on Timescale."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

# time_bucket()'s default origin: buckets here line up with TimescaleDB's to the microsecond.
ORIGIN = "TIMESTAMPTZ '2000-01-03 00:00:00+00'"
STAGE = "readings_stage"  # the readings store's per-batch temp table
NEW = "readings_new"  # the rows of the batch that were inserted (duplicates are not)


@dataclass(frozen=True, slots=True)
class Level:
    """One rollup relation: built from ``source`` in buckets of ``width``."""

    name: str
    source: str
    width: timedelta
    per_sensor: bool

    @property
    def width_sql(self) -> str:
        """The width as an SQL interval literal."""
        return f"INTERVAL '{int(self.width.total_seconds())} seconds'"


# In dependency order: each level reads only levels before it (or raw readings).
LEVELS: tuple[Level, ...] = (
    Level("readings_15m", "readings", timedelta(minutes=15), per_sensor=True),
    Level("readings_1h", "readings_15m", timedelta(hours=1), per_sensor=True),
    Level("readings_1d", "readings_1h", timedelta(days=1), per_sensor=True),
    Level("readings_council_1h", "readings_1h", timedelta(hours=1), per_sensor=False),
    Level("readings_council_1d", "readings_1d", timedelta(days=1), per_sensor=False),
)
ROLLUPS: tuple[str, ...] = tuple(level.name for level in LEVELS)
_FIRST_COUNCIL_LEVEL = next(level for level in LEVELS if not level.per_sensor)

_SENSOR_KEY = ("council", "sensor_id", "kind", "metric")
_COUNCIL_KEY = ("council", "kind", "metric")
_SENSOR_COLS = "bucket, council, sensor_id, kind, metric, n, sum, min, max, mean, last, last_time"
_COUNCIL_COLS = "bucket, council, kind, metric, sensors, n, sum, min, max, mean"

# The same formulas as the continuous aggregates in sql/010_rollups.sql (the conformance
# suite holds the two equal): mean = sum / n at every level, last = value at the latest time.
_FROM_RAW = (
    "count(*), sum(s.value), min(s.value), max(s.value), sum(s.value) / count(*),"
    " (array_agg(s.value ORDER BY s.time DESC))[1], max(s.time)"
)
_FROM_SENSOR_ROLLUP = (
    "sum(s.n), sum(s.sum), min(s.min), max(s.max), sum(s.sum) / sum(s.n),"
    " (array_agg(s.last ORDER BY s.last_time DESC))[1], max(s.last_time)"
)
_COUNCIL_FROM_SENSOR_ROLLUP = (
    "count(*), sum(s.n), sum(s.sum), min(s.min), max(s.max), sum(s.sum) / sum(s.n)"
)


def _parts(level: Level) -> tuple[str, tuple[str, ...], str]:
    """(time column of the source, group key, aggregate expressions) for ``level``."""
    if not level.per_sensor:
        return "bucket", _COUNCIL_KEY, _COUNCIL_FROM_SENSOR_ROLLUP
    if level.source == "readings":
        return "time", _SENSOR_KEY, _FROM_RAW
    return "bucket", _SENSOR_KEY, _FROM_SENSOR_ROLLUP


def _upsert(level: Level, select: str) -> str:
    cols = _SENSOR_COLS if level.per_sensor else _COUNCIL_COLS
    pk = (
        ("sensor_id", "metric", "bucket", "council", "kind")
        if level.per_sensor
        else ("council", "kind", "metric", "bucket")
    )
    updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in cols.split(", ") if c not in pk)
    return (
        f"INSERT INTO {level.name} ({cols}) {select}"
        f" ON CONFLICT ({', '.join(pk)}) DO UPDATE SET {updates}"
    )


def _only_rollup_metrics(level: Level) -> str:
    return "" if level.per_sensor else " AND council_rollup_metric(s.metric)"


def touched_sql(level: Level) -> str:
    """Recompute every ``level`` bucket that the staged batch touched, from its source.

    One index range scan of the source per touched bucket (LATERAL): the cost follows the
    batch, not the size of the tables.
    """
    time_col, key, aggs = _parts(level)
    lookup = ("sensor_id", "metric") if level.per_sensor else _COUNCIL_KEY
    keys = ", ".join(f"s.{k}" for k in key)
    on = " AND ".join(f"s.{k} = t.{k}" for k in lookup)
    select = (
        f"SELECT t.bucket, x.* FROM (SELECT DISTINCT {', '.join(lookup)},"
        f" date_bin({level.width_sql}, time, {ORIGIN}) AS bucket FROM {STAGE}) t"
        f" CROSS JOIN LATERAL (SELECT {keys}, {aggs} FROM {level.source} s"
        f" WHERE {on} AND s.{time_col} >= t.bucket AND s.{time_col} < t.bucket +"
        f" {level.width_sql}{_only_rollup_metrics(level)} GROUP BY {keys}) x"
    )
    return _upsert(level, select)


def merge_sql(level: Level) -> str:
    """Merge the batch's newly inserted rows into the per-sensor ``level`` buckets they fall in.

    Count, sum, min, max and the latest value all combine exactly (a sum in a different
    order, to the last bits), so a bucket equals its recompute from the stored raw readings
    without reading them again: the cost follows the batch, not how full the bucket is.
    Only the rows actually inserted are merged: a replayed batch adds nothing.
    """
    assert level.per_sensor
    keys = ", ".join(_SENSOR_KEY)
    select = (
        f"SELECT date_bin({level.width_sql}, time, {ORIGIN}), {keys}, {_FROM_RAW}"
        f" FROM {NEW} s GROUP BY 1, {keys}"
    )
    cols = _SENSOR_COLS
    pk = "sensor_id, metric, bucket, council, kind"
    return (
        f"INSERT INTO {level.name} AS r ({cols}) {select} ON CONFLICT ({pk}) DO UPDATE SET"
        " n = r.n + EXCLUDED.n, sum = r.sum + EXCLUDED.sum,"
        " min = least(r.min, EXCLUDED.min), max = greatest(r.max, EXCLUDED.max),"
        " mean = (r.sum + EXCLUDED.sum) / (r.n + EXCLUDED.n),"
        " last = CASE WHEN EXCLUDED.last_time > r.last_time THEN EXCLUDED.last ELSE r.last END,"
        " last_time = greatest(r.last_time, EXCLUDED.last_time)"
    )


def rebuild_sql(level: Level) -> tuple[str, str]:
    """Delete, then recompute, every ``level`` bucket in [%(start)s, %(stop)s)."""
    time_col, key, aggs = _parts(level)
    keys = ", ".join(f"s.{k}" for k in key)
    delete = f"DELETE FROM {level.name} WHERE bucket >= %(start)s AND bucket < %(stop)s"
    select = (
        f"SELECT date_bin({level.width_sql}, s.{time_col}, {ORIGIN}) AS bucket, {keys}, {aggs}"
        f" FROM {level.source} s WHERE s.{time_col} >= %(start)s AND s.{time_col} < %(stop)s"
        f"{_only_rollup_metrics(level)} GROUP BY 1, {keys}"
    )
    return delete, _upsert(level, select)


# Council buckets are shared by sensors that different workers write concurrently: each
# recompute must see the others' committed rows. Lock the touched (council, kind, metric)
# keys, in one sorted order, in a statement of its own before recomputing (READ COMMITTED
# takes a fresh snapshot per statement, so the recompute sees whatever committed first).
LOCK_COUNCILS = (
    "SELECT count(pg_advisory_xact_lock(k)) FROM (SELECT DISTINCT hashtextextended("
    f"'civicpulse.rollup/' || council || '/' || kind || '/' || metric, 0) AS k FROM {STAGE}"
    " ORDER BY 1) keys"
)
TOUCHED_SQL: tuple[str, ...] = tuple(
    statement
    for level in LEVELS
    for statement in (
        (merge_sql(level),)
        if level.per_sensor
        else (touched_sql(level),)
        if level is not _FIRST_COUNCIL_LEVEL
        else (LOCK_COUNCILS, touched_sql(level))
    )
)


def maintained_by_store(conn: psycopg.Connection) -> bool | None:
    """True when the rollups are plain tables (plain PostgreSQL) that the store must keep.

    False on TimescaleDB (continuous aggregates); None before migration 010 has run.
    """
    row = conn.execute(
        "SELECT relkind FROM pg_class WHERE oid = to_regclass('readings_15m')"
    ).fetchone()
    return None if row is None else row[0] == "r"


def refresh_touched(cur: psycopg.Cursor) -> None:
    """Plain PostgreSQL: merge the batch's new rows into the per-sensor rollups, then
    recompute every council bucket it touched from them."""
    for statement in TOUCHED_SQL:
        cur.execute(statement)


def day_floor(t: datetime) -> datetime:
    """``t`` rounded down to UTC midnight (all rollup widths divide a day)."""
    return t.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def refresh_range(conn: psycopg.Connection, start: datetime, stop: datetime) -> None:
    """Recompute every rollup bucket overlapping [start, stop), widened to whole UTC days.

    Plain PostgreSQL: one transaction rebuilding the tables from raw readings (a backfill or
    a repair). TimescaleDB: ``refresh_continuous_aggregate`` level by level, which needs an
    autocommit connection.
    """
    start = day_floor(start)
    stop = day_floor(stop) + (timedelta(0) if stop == day_floor(stop) else timedelta(days=1))
    kind = maintained_by_store(conn)
    if kind is None:
        raise ValueError("no rollups in this database: run the migrations first")
    if kind:
        with conn.transaction(), conn.cursor() as cur:
            for level in LEVELS:
                for statement in rebuild_sql(level):
                    cur.execute(statement, {"start": start, "stop": stop})
        return
    if not conn.autocommit:
        raise ValueError("refreshing continuous aggregates needs an autocommit connection")
    for level in LEVELS:
        conn.execute("CALL refresh_continuous_aggregate(%s, %s, %s)", (level.name, start, stop))
