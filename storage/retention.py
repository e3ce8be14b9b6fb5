"""Storage policies (chunks, refresh, compression, retention) for TimescaleDB and PostgreSQL."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import psycopg

from storage import rollups
from storage.connection import connect

DAY = timedelta(days=1)
EPOCH = "TIMESTAMPTZ '1970-01-01 00:00:00+00'"  # TimescaleDB aligns chunks to the epoch


def _default_chunks() -> dict[str, timedelta]:
    return {
        "readings": DAY,
        "readings_15m": 7 * DAY,
        "readings_1h": 28 * DAY,
        "readings_1d": 364 * DAY,
        "readings_council_1h": 28 * DAY,
        "readings_council_1d": 364 * DAY,
    }


@dataclass(frozen=True, slots=True)
class StoragePolicy:
    """How long each relation is kept, when raw chunks compress, how far refreshes look back.

    ``None`` as a horizon keeps a relation for ever. Retention removes whole chunks on
    TimescaleDB; the plain-PostgreSQL path deletes up to the same chunk boundary, so both
    keep exactly the same rows. ``readings_1m`` follows the raw horizon.
    """

    raw: timedelta | None = 90 * DAY
    m15: timedelta | None = 365 * DAY
    hourly: timedelta | None = 730 * DAY
    daily: timedelta | None = None
    alerts: timedelta | None = 365 * DAY  # resolved alerts, sent notifications, dead letters
    compress_after: timedelta | None = 7 * DAY
    refresh_lookback: timedelta = 3 * DAY  # late readings older than this wait for a repair
    chunks: dict[str, timedelta] = field(default_factory=_default_chunks)

    def __post_init__(self) -> None:
        for level in rollups.LEVELS:
            source = self.horizon(level.source)
            if source is not None and self.refresh_lookback + level.width * 2 >= source:
                raise ValueError(
                    f"{level.name} refreshes {self.refresh_lookback} back, beyond what"
                    f" {level.source} keeps ({source}): it would erase rolled-up history"
                )
        if self.compress_after is not None and self.compress_after <= self.refresh_lookback:
            raise ValueError("compress_after must exceed refresh_lookback (late data lands)")

    def horizon(self, relation: str) -> timedelta | None:
        """How long ``relation`` keeps its rows (None: for ever)."""
        horizons = {
            "readings": self.raw,
            "readings_1m": self.raw,
            "readings_15m": self.m15,
            "readings_1h": self.hourly,
            "readings_council_1h": self.hourly,
            "readings_1d": self.daily,
            "readings_council_1d": self.daily,
        }
        return horizons[relation]


def is_timescale(conn: psycopg.Connection) -> bool:
    """True when the rollups are TimescaleDB continuous aggregates."""
    return rollups.maintained_by_store(conn) is False


def apply_policies(conn: psycopg.Connection, policy: StoragePolicy) -> None:
    """Register ``policy`` as TimescaleDB jobs (replacing earlier ones); no-op on PostgreSQL.

    Needs an autocommit connection. Plain PostgreSQL keeps its rollups exact on write and
    runs :func:`enforce_retention` from the platform's own schedule instead.
    """
    if not is_timescale(conn):
        return
    for relation, interval in policy.chunks.items():
        conn.execute("SELECT set_chunk_time_interval(%s, %s::interval)", (relation, interval))
    for level in rollups.LEVELS:
        conn.execute(
            "SELECT remove_continuous_aggregate_policy(%s, if_exists => true)", (level.name,)
        )
        conn.execute(
            "SELECT add_continuous_aggregate_policy(%s, start_offset => %s::interval,"
            " end_offset => %s::interval, schedule_interval => %s::interval)",
            (
                level.name,
                policy.refresh_lookback + level.width,
                level.width,
                min(level.width, timedelta(hours=1)),
            ),
        )
    conn.execute("SELECT remove_compression_policy('readings', if_exists => true)")
    if policy.compress_after is not None:
        conn.execute(
            "SELECT add_compression_policy('readings', %s::interval)", (policy.compress_after,)
        )
    for relation in ("readings", *rollups.ROLLUPS):
        conn.execute("SELECT remove_retention_policy(%s, if_exists => true)", (relation,))
        horizon = policy.horizon(relation)
        if horizon is not None:
            conn.execute("SELECT add_retention_policy(%s, %s::interval)", (relation, horizon))


def cutoff_sql(policy: StoragePolicy, relation: str) -> str:
    """SQL for the first kept instant: ``now - horizon`` down to its chunk boundary."""
    chunk = policy.chunks.get(relation, policy.chunks["readings"])
    return (
        f"date_bin(INTERVAL '{int(chunk.total_seconds())} seconds',"
        f" %(now)s::timestamptz - %(horizon)s::interval, {EPOCH})"
    )


def enforce_retention(
    conn: psycopg.Connection, policy: StoragePolicy, now: datetime | None = None
) -> dict[str, int]:
    """Delete what ``policy`` no longer keeps; returns rows deleted per relation.

    Plain PostgreSQL: every relation. TimescaleDB: only ``readings_1m`` (a plain table
    there too); the retention jobs drop the rest. Both: resolved alerts with nothing left to
    deliver, sent or abandoned notifications and dead letters past ``policy.alerts``.
    """
    relations = (
        ["readings_1m"] if is_timescale(conn) else ["readings", "readings_1m", *rollups.ROLLUPS]
    )
    deleted: dict[str, int] = {}
    with conn.transaction(), conn.cursor() as cur:
        db_now = cur.execute("SELECT now()").fetchone()
        at = now or (db_now[0] if db_now else datetime.now().astimezone())
        for relation in relations:
            horizon = policy.horizon(relation)
            if horizon is None:
                continue
            column = "time" if relation == "readings" else "bucket"
            cur.execute(
                f"DELETE FROM {relation} WHERE {column} < {cutoff_sql(policy, relation)}",
                {"now": at, "horizon": horizon},
            )
            deleted[relation] = cur.rowcount
        if policy.alerts is not None:
            deleted.update(_prune_records(cur, at - policy.alerts))
    return deleted


def _prune_records(cur: psycopg.Cursor, before: datetime) -> dict[str, int]:
    """Delete alerts resolved before ``before`` with nothing left to deliver, notifications
    delivered or given up before it, and dead letters received before it."""
    cur.execute(
        """
        DELETE FROM alert_notifications
         WHERE COALESCE(delivered_at, dead_at) < %(before)s
        """,
        {"before": before},
    )
    notes = cur.rowcount
    cur.execute(
        """
        DELETE FROM alert_events a
         WHERE a.state = 'resolved' AND a.resolved_at < %(before)s
           AND NOT EXISTS (SELECT 1 FROM alert_notifications n WHERE n.alert_id = a.id)
        """,
        {"before": before},
    )
    alerts = cur.rowcount
    cur.execute("DELETE FROM dead_letters WHERE received_at < %(before)s", {"before": before})
    return {"alert_notifications": notes, "alert_events": alerts, "dead_letters": cur.rowcount}


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m storage.retention {apply,enforce,backfill} --database-url``.

    apply: register the TimescaleDB jobs; enforce: delete past the horizons (run daily on
    plain PostgreSQL); backfill: build every rollup from all stored readings (once, after
    upgrading a database that already holds readings).
    """
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["apply", "enforce", "backfill"])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--raw-days", type=float, default=90)
    parser.add_argument("--hourly-days", type=float, default=730)
    args = parser.parse_args(argv)
    policy = StoragePolicy(raw=args.raw_days * DAY, hourly=args.hourly_days * DAY)
    with connect(args.database_url, autocommit=True) as conn:
        if args.command == "apply":
            apply_policies(conn, policy)
            print("timescaledb jobs registered" if is_timescale(conn) else "plain PostgreSQL")
        elif args.command == "backfill":
            row = conn.execute("SELECT min(time), max(time) FROM readings").fetchone()
            if row and row[0] is not None:
                rollups.refresh_range(conn, row[0], row[1])
                print(f"rollups rebuilt for {row[0]:%Y-%m-%d} … {row[1]:%Y-%m-%d}")
        else:
            for relation, n in enforce_retention(conn, policy).items():
                print(f"{relation}: {n} rows deleted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
