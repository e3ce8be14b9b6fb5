"""The site registry (``sensor_sites``) gives alerts their site and bins their own threshold."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from sensors.reading import Reading, encode_reading
from stream_processors.pipeline import ReadingPipeline
from stream_processors.storage import ReadingStore, migrate

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 20, 6, 0, tzinfo=UTC)


def fill(sensor: str, i: int, value: float) -> bytes:
    t = T0 + timedelta(minutes=15 * i)
    return encode_reading(
        Reading(
            sensor_id=sensor,
            council="edinburgh",
            kind="waste_bin",
            metric="fill_level",
            value=value,
            unit="%",
            time=t,
            received_at=t,
        )
    )


def test_registry_site_and_a_bins_own_threshold_shape_the_alerts(fresh_db: str) -> None:
    migrate(fresh_db)
    with psycopg.connect(fresh_db) as conn:
        conn.execute(
            "INSERT INTO sensor_sites (sensor_id, council, site, ward, threshold_pct) VALUES"
            " ('bin-a', 'edinburgh', 'leith-walk', 'Leith', 60),"
            " ('bin-b', 'edinburgh', 'leith-walk', 'Leith', NULL)"
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
