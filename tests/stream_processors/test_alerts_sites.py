"""The site registry (``sensor_sites``) gives alerts their site and bins their own threshold."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from storage import ReadingStore, migrate
from stream_processors.pipeline import ReadingPipeline
from tests.civicpulse.test_alerts_cli import T0, fill

pytestmark = pytest.mark.integration


def test_registry_site_and_a_bins_own_threshold_shape_the_alerts(fresh_db: str) -> None:
    migrate(fresh_db)
    with psycopg.connect(fresh_db) as conn:
        conn.execute(
            "INSERT INTO sensor_sites (sensor_id, council, site, ward, threshold_pct) VALUES"
            " ('bin-a', 'aberdeen', 'leith-walk', 'Leith', 60),"
            " ('bin-b', 'aberdeen', 'leith-walk', 'Leith', NULL)"
        )
    store = ReadingStore(fresh_db)
    try:
        pipeline = ReadingPipeline(store)
        values = [
            fill(s, i, v) for s in ("bin-a", "bin-b", "bin-c") for i, v in enumerate([40, 65, 70])
        ]
        pipeline.process(values)
    finally:
        store.close()
    with psycopg.connect(fresh_db) as conn:
        rows = conn.execute(
            "SELECT sensor_id, site, opened_at FROM alerts WHERE rule = 'bin_collection_needed'"
        ).fetchall()
    # bin-a's own 60 % is crossed at 65 %; bin-b and bin-c keep the default 80 %
    assert rows == [("bin-a", "leith-walk", T0 + timedelta(minutes=15))]
