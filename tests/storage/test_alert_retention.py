"""Retention of alert records on a real database: what is old and settled goes, nothing else."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from storage import migrate
from storage.retention import StoragePolicy, enforce_retention

pytestmark = [pytest.mark.adapter, pytest.mark.integration]

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
OLD, RECENT = NOW - timedelta(days=400), NOW - timedelta(days=30)


def _alert(cur: psycopg.Cursor, sensor: str, state: str, resolved_at: datetime | None) -> int:
    row = cur.execute(
        "INSERT INTO alert_events (council, sensor_id, site, kind, rule, severity, state,"
        " opened_at, last_seen_at, resolved_at, resolved_by) VALUES ('aberdeen', %s, %s,"
        " 'waste_bin', 'bin_tilted', 'warning', %s, %s, %s, %s, %s) RETURNING id",
        (sensor, sensor, state, OLD, OLD, resolved_at, "auto" if resolved_at else None),
    ).fetchone()
    assert row is not None
    return int(row[0])


def _note(cur: psycopg.Cursor, alert_id: int, delivered: datetime | None) -> None:
    cur.execute(
        "INSERT INTO alert_notifications (alert_id, event, payload, delivered_at)"
        " VALUES (%s, 'opened', '{}', %s)",
        (alert_id, delivered),
    )


def test_old_settled_alerts_notifications_and_dead_letters_are_pruned(fresh_db: str) -> None:
    migrate(fresh_db)
    with psycopg.connect(fresh_db) as conn, conn.cursor() as cur:
        gone = _alert(cur, "bin-gone", "resolved", OLD)
        _note(cur, gone, OLD)  # delivered long ago: goes, and its alert with it
        waiting = _alert(cur, "bin-waiting", "resolved", OLD)
        _note(cur, waiting, None)  # still to deliver: both stay
        _alert(cur, "bin-open", "open", None)  # open for a year: stays
        _alert(cur, "bin-recent", "resolved", RECENT)
        for received in (OLD, RECENT):
            cur.execute(
                "INSERT INTO dead_letters (received_at, stage, reason, detail, mqtt_topic,"
                " payload, payload_size) VALUES (%s, 'ingest', 'bad_json', 'x', 't', '', 0)",
                (received,),
            )
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        deleted = enforce_retention(conn, StoragePolicy(), now=NOW)
        assert {k: deleted[k] for k in ("alert_notifications", "alert_events", "dead_letters")} == {
            "alert_notifications": 1,
            "alert_events": 1,
            "dead_letters": 1,
        }
        left = conn.execute("SELECT sensor_id FROM alert_events ORDER BY 1").fetchall()
        letters = conn.execute("SELECT received_at FROM dead_letters").fetchall()
    assert left == [("bin-open",), ("bin-recent",), ("bin-waiting",)]
    assert letters == [(RECENT,)]
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        kept = enforce_retention(conn, StoragePolicy(alerts=None), now=NOW + timedelta(days=900))
    assert "alert_events" not in kept  # 0 days (None): kept for ever
