"""Late data, compression and retention: the plain-PostgreSQL path matches TimescaleDB's."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import psycopg
import pytest

from sensors.reading import Reading
from storage import migrate, retention
from storage.retention import (
    DAY,
    StoragePolicy,
    apply_policies,
    enforce_retention,
)
from storage.rollups import LEVELS, ROLLUPS, refresh_range
from tests.storage.conformance.contract import dump, fetch, same_rows
from tests.storage.conformance.seed import (
    Seed,
    load_with_inserts,
    load_with_store,
    make_seed,
    truth,
)

pytestmark = pytest.mark.integration


def _expected(name: str, readings: list[Reading]) -> list[tuple]:
    level = next(lv for lv in LEVELS if lv.name == name)
    return [(*k, *v) for k, v in sorted(truth(readings, level.width, level.per_sensor).items())]


def _load_both(pg: str, ts: str, seed: Seed) -> None:
    load_with_store(pg, seed)
    load_with_inserts(ts, seed)
    times = [r.time for r in seed.readings]
    with psycopg.connect(ts, autocommit=True) as conn:
        refresh_range(conn, min(times), max(times))


def test_late_reading_is_exact_at_once_on_postgres_and_after_refresh_on_timescale(
    fresh_db: str, fresh_timescale_url: str
) -> None:
    seed = make_seed(days=1.0, rng_seed=7)
    migrate(fresh_db)
    migrate(fresh_timescale_url)
    _load_both(fresh_db, fresh_timescale_url, seed)
    t = seed.readings[0].time + timedelta(seconds=1)
    late = Reading(
        sensor_id="abe-air-0",
        council="aberdeen",
        kind="air_quality",
        metric="no2",
        value=9999.0,
        unit="ug/m3",
        time=t,
        received_at=t + timedelta(days=2),
    )
    before = dump(fresh_timescale_url, "readings_1d")
    load_with_store(fresh_db, Seed([late], [[late]]))
    load_with_inserts(fresh_timescale_url, Seed([late], [[late]]))
    readings = [*seed.readings, late]
    for name in ROLLUPS:
        assert same_rows(dump(fresh_db, name), _expected(name, readings)) is None, name
    # Documented difference: behind the refresh watermark, Timescale shows it after a refresh.
    assert dump(fresh_timescale_url, "readings_1d") == before
    with psycopg.connect(fresh_timescale_url, autocommit=True) as conn:
        refresh_range(conn, t, t)
    for name in ROLLUPS:
        assert same_rows(dump(fresh_timescale_url, name), _expected(name, readings)) is None, name


def _jobs(url: str) -> dict[tuple[str, str], dict]:
    rows = fetch(
        url,
        "SELECT proc_name, hypertable_name, config FROM"
        " timescaledb_information.jobs WHERE job_id >= 1000",
    )
    return {(proc, table): config for proc, table, config in rows}


def test_policies_are_registered_as_configured(fresh_timescale_url: str) -> None:
    migrate(fresh_timescale_url)
    policy = StoragePolicy(raw=30 * DAY, hourly=400 * DAY, compress_after=5 * DAY)
    with psycopg.connect(fresh_timescale_url, autocommit=True) as conn:
        apply_policies(conn, StoragePolicy())
        apply_policies(conn, policy)  # replaces, does not add
    jobs = _jobs(fresh_timescale_url)
    assert jobs[("policy_retention", "readings")]["drop_after"] == "30 days"
    assert jobs[("policy_retention", "readings_1h")]["drop_after"] == "400 days"
    assert jobs[("policy_retention", "readings_15m")]["drop_after"] == "365 days"
    assert ("policy_retention", "readings_1d") not in jobs  # daily kept for ever
    assert jobs[("policy_compression", "readings")]["compress_after"] == "5 days"
    assert jobs[("policy_refresh_continuous_aggregate", "readings_15m")] == {
        "end_offset": "00:15:00",
        "start_offset": "3 days 00:15:00",
        "mat_hypertable_id": jobs[("policy_refresh_continuous_aggregate", "readings_15m")][
            "mat_hypertable_id"
        ],
    }
    assert len(jobs) == 5 + 1 + 4  # refresh per rollup, compression, retention horizons


def test_policy_rejects_a_refresh_window_past_retention() -> None:
    with pytest.raises(ValueError, match="erase"):
        StoragePolicy(raw=2 * DAY, refresh_lookback=3 * DAY, compress_after=None)
    with pytest.raises(ValueError, match="compress_after"):
        StoragePolicy(compress_after=DAY)


def test_compression_and_retention_keep_both_paths_equal(
    fresh_db: str, fresh_timescale_url: str
) -> None:
    seed = make_seed(days=2.5, rng_seed=11)
    now = fetch(fresh_db, "SELECT now()")[0][0]
    start = seed.readings[0].time
    # Horizons that cut inside the seed; one-day chunks everywhere so each cut bites.
    policy = StoragePolicy(
        raw=now - (start + timedelta(hours=30)),
        m15=now - (start + timedelta(hours=30)),
        hourly=now - (start + timedelta(hours=50)),
        daily=None,
        compress_after=5 * DAY,
        chunks=dict.fromkeys(("readings", *ROLLUPS), DAY),
    )
    for url in (fresh_db, fresh_timescale_url):
        migrate(url)
        with psycopg.connect(url, autocommit=True) as conn:
            apply_policies(conn, policy)
    _load_both(fresh_db, fresh_timescale_url, seed)
    jobs = dict(
        ((p, t), j)
        for j, p, t in fetch(
            fresh_timescale_url,
            "SELECT job_id, proc_name, hypertable_name FROM"
            " timescaledb_information.jobs WHERE job_id >= 1000",
        )
    )
    with psycopg.connect(fresh_timescale_url, autocommit=True) as conn:
        conn.execute("CALL run_job(%s)", (jobs[("policy_compression", "readings")],))
        compressed = conn.execute(
            "SELECT count(*) FROM timescaledb_information.chunks"
            " WHERE hypertable_name = 'readings' AND is_compressed"
        ).fetchone()
    assert compressed and compressed[0] >= 3
    # A replay and a late reading into compressed chunks: ON CONFLICT still dedupes there.
    old = seed.readings[len(seed.readings) // 2]
    late = msgspec.structs.replace(old, metric="so2", unit="ug/m3", value=3.25)
    _load_both(fresh_db, fresh_timescale_url, Seed([old, late], [[old, late]]))
    assert fetch(fresh_db, "SELECT count(*) FROM readings") == [(len(seed.readings) + 1,)]
    for name in ("readings", "readings_1m", *ROLLUPS):
        order = "sensor_id, metric, time" if name == "readings" else "1, 2, 3, 4, 5"
        cols = "time, sensor_id, metric, value" if name == "readings" else "*"
        sql = f"SELECT {cols} FROM {name} ORDER BY {order}"
        assert same_rows(fetch(fresh_db, sql), fetch(fresh_timescale_url, sql)) is None, name
    with psycopg.connect(fresh_timescale_url, autocommit=True) as conn:
        for (proc, _table), job in jobs.items():
            if proc == "policy_retention":
                conn.execute("CALL run_job(%s)", (job,))
        enforce_retention(conn, policy)
    with psycopg.connect(fresh_db, autocommit=True) as conn:
        deleted = enforce_retention(conn, policy)
    assert deleted["readings"] > 0 and deleted["readings_1h"] > 0 and deleted["readings_15m"] > 0
    kept_from = (start + timedelta(hours=30)).replace(hour=0, minute=0, second=0, microsecond=0)
    raw = fetch(fresh_db, "SELECT min(time) FROM readings")[0][0]
    assert raw >= kept_from and raw < kept_from + timedelta(hours=1)
    for name in ("readings", "readings_1m", *ROLLUPS):
        order = "sensor_id, metric, time" if name == "readings" else "1, 2, 3, 4, 5"
        cols = "time, sensor_id, metric, value" if name == "readings" else "*"
        sql = f"SELECT {cols} FROM {name} ORDER BY {order}"
        pg, ts = fetch(fresh_db, sql), fetch(fresh_timescale_url, sql)
        assert pg, name
        assert same_rows(pg, ts) is None, f"{name}: {same_rows(pg, ts)}"


def test_backfill_builds_rollups_for_readings_stored_before_them(
    fresh_db: str, fresh_timescale_url: str
) -> None:
    seed = make_seed(days=1.5, rng_seed=3)
    for url in (fresh_db, fresh_timescale_url):
        migrate(url)
        load_with_inserts(url, seed)  # raw + 1m only: as if stored before the rollups existed
    assert fetch(fresh_db, "SELECT count(*) FROM readings_15m") == [(0,)]
    for url in (fresh_db, fresh_timescale_url):
        assert retention.main(["backfill", "--database-url", url]) == 0
    for name in ROLLUPS:
        expected = _expected(name, seed.readings)
        for url in (fresh_db, fresh_timescale_url):
            assert same_rows(dump(url, name), expected) is None, f"{url} {name}"
