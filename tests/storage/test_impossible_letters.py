"""Impossible-value dead letters become alerts once each, even when ids commit out of order."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from storage import ReadingStore, migrate
from stream_processors.pipeline import ReadingPipeline

pytestmark = [pytest.mark.adapter, pytest.mark.integration]

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
_INSERT = (
    "INSERT INTO dead_letters (received_at, stage, reason, detail, mqtt_topic, payload,"
    " payload_size) VALUES (%s, 'ingest', 'out_of_range', 'pm2_5=5000 above 1000', %s, '', 0)"
)


def _alerted(url: str) -> list[tuple[str, int]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT sensor_id, count FROM alert_events WHERE rule = 'sensor_impossible_value'"
            " ORDER BY sensor_id"
        ).fetchall()
    return [(str(s), int(c)) for s, c in rows]


def test_a_letter_committed_after_a_newer_one_is_not_skipped(fresh_db: str) -> None:
    migrate(fresh_db)
    store = ReadingStore(fresh_db)
    pipeline = ReadingPipeline(store)
    slow = psycopg.connect(fresh_db)
    try:
        # a writer draws the lower id but commits last
        slow.execute(_INSERT, (NOW, "civicpulse/aberdeen/air_quality/aq-slow"))
        with psycopg.connect(fresh_db) as fast:
            fast.execute(_INSERT, (NOW, "civicpulse/aberdeen/air_quality/aq-fast"))
        pipeline.tick(NOW)
        assert _alerted(fresh_db) == [("aq-fast", 1)]
        slow.commit()
        pipeline.tick(NOW)
        pipeline.tick(NOW)  # nothing is alerted twice
        assert _alerted(fresh_db) == [("aq-fast", 1), ("aq-slow", 1)]
    finally:
        slow.close()
        store.close()
