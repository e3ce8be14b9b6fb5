"""The PostgreSQL readings store on a real database: idempotent, late-safe, numpy-true."""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest

from sensors.reading import Reading, encode_reading, pack_encoded
from storage import ReadingStore, StoreUnavailable, migrate
from stream_processors.pipeline import ReadingPipeline

pytestmark = [pytest.mark.adapter, pytest.mark.integration]

T0 = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def _readings(n: int, seed: int) -> list[Reading]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        sensor = f"aq-{i % 7:04d}"
        out.append(
            Reading(
                sensor_id=sensor,
                council="aberdeen",
                kind="air_quality",
                metric=rng.choice(["pm2_5", "no2"]),
                value=round(rng.uniform(0, 90), 3),
                unit="ug/m3",
                time=T0 + timedelta(seconds=i * 3.7 + rng.random()),
                received_at=T0 + timedelta(hours=1),
            )
        )
    return out


def _aggregates(conn: psycopg.Connection) -> dict[tuple[str, str, datetime], tuple]:
    rows = conn.execute(
        "SELECT sensor_id, metric, bucket, n, min, max, mean, last FROM readings_1m"
    ).fetchall()
    return {(s, m, b): (n, lo, hi, mean, last) for s, m, b, n, lo, hi, mean, last in rows}


def _numpy_truth(readings: list[Reading]) -> dict[tuple[str, str, datetime], tuple]:
    groups: dict[tuple[str, str, datetime], list[tuple[datetime, float]]] = defaultdict(list)
    for r in readings:
        groups[(r.sensor_id, r.metric, r.time.replace(second=0, microsecond=0))].append(
            (r.time, r.value)
        )
    truth = {}
    for key, pts in groups.items():
        pts.sort()
        v = np.array([p[1] for p in pts])
        truth[key] = (v.size, v.min(), v.max(), v.mean(), v[-1])
    return truth


def _assert_matches(got: dict, truth: dict) -> None:
    assert got.keys() == truth.keys()
    for key, (n, lo, hi, mean, last) in truth.items():
        g = got[key]
        assert g[0] == n
        assert g[1:] == pytest.approx((lo, hi, mean, last), rel=1e-12, abs=1e-12)


def test_replays_and_shuffled_late_batches_store_each_reading_once(fresh_db: str) -> None:
    migrate(fresh_db)
    readings = _readings(3_000, seed=3)
    shuffled = readings[:]
    random.Random(4).shuffle(shuffled)  # late and out-of-order arrival
    store = ReadingStore(fresh_db)
    pipeline = ReadingPipeline(store)
    first = pipeline.process([encode_reading(r) for r in shuffled[:2_000]])
    assert first.write.inserted == 2_000
    # an at-least-once replay of half the first batch together with the rest
    second = pipeline.process([encode_reading(r) for r in shuffled[1_000:]])
    assert second.write.inserted == 1_000
    assert second.write.duplicates == 1_000
    store.close()
    with psycopg.connect(fresh_db) as conn:
        count = conn.execute("SELECT count(*) FROM readings").fetchone()
        assert count == (3_000,)
        _assert_matches(_aggregates(conn), _numpy_truth(readings))


def test_packed_records_over_the_batch_limit_store_in_several_transactions(
    fresh_db: str,
) -> None:
    migrate(fresh_db)
    readings = _readings(2_100, seed=11)
    by_sensor: dict[str, list[bytes]] = defaultdict(list)
    for r in readings:
        by_sensor[r.sensor_id].append(encode_reading(r))
    # what the bridge sends: a pack per sensor and message, here 30 readings each
    records = [
        pack_encoded(values[i : i + 30]) for values in by_sensor.values() for i in range(0, 300, 30)
    ]
    store = ReadingStore(fresh_db)
    pipeline = ReadingPipeline(store, max_batch_readings=500)
    outcome = pipeline.process([*records, records[0], b"[{}]"])  # a replayed pack and poison
    store.close()
    # the replay lands in the last transaction, where the store (not the batch) drops it
    assert (outcome.write.received, outcome.write.inserted) == (2_130, 2_100)
    assert pipeline.stats.duplicates == 30 and len(outcome.deadletters) == 1
    assert pipeline.stats.batches == 5  # 510, 510, 510, 510, 60 + the replayed 30
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT count(*) FROM readings").fetchone() == (2_100,)
        _assert_matches(_aggregates(conn), _numpy_truth(readings))


class _Work:
    """A hook's work that records what it saw: the connection mid-pipeline, the readings."""

    def __init__(self, cur: psycopg.Cursor, inserted: list[Reading], fail: bool) -> None:
        self._conn, self.inserted, self.fail = cur.connection, inserted, fail
        self.pipeline_during: object = None
        self.minutes_seen_by_finish: int | None = None

    def compute(self) -> None:
        self.pipeline_during = self._conn.pgconn.pipeline_status
        if self.fail:
            raise RuntimeError("a detector failed")

    def finish(self, cur: psycopg.Cursor) -> None:
        row = cur.execute("SELECT count(*) FROM readings_1m").fetchone()
        self.minutes_seen_by_finish = row[0] if row else None


def test_hook_work_computes_while_the_aggregates_refresh_in_the_same_transaction(
    fresh_db: str,
) -> None:
    migrate(fresh_db)
    readings = _readings(1_200, seed=21)
    works: list[_Work] = []

    def hook(cur: psycopg.Cursor, inserted: list[Reading]) -> _Work:
        work = _Work(cur, inserted, fail=len(works) == 1)
        works.append(work)
        return work

    store = ReadingStore(fresh_db)
    result = store.write(readings[:600], on_inserted=hook)
    with pytest.raises(RuntimeError, match="a detector failed"):
        store.write(readings[600:], on_inserted=hook)  # rolled back whole: readings too
    replay = store.write(readings, on_inserted=hook)  # half already stored: keys read back
    store.close()
    first, _failed, third = works
    assert first.pipeline_during == psycopg.pq.PipelineStatus.ON
    assert first.inserted == readings[:600] and third.inserted == readings[600:]
    truth_first = _numpy_truth(readings[:600])
    assert (result.inserted, result.minutes_refreshed) == (600, len(truth_first))
    assert first.minutes_seen_by_finish == len(truth_first)  # finish runs after the refresh
    assert (replay.received, replay.inserted) == (1_200, 600)
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT count(*) FROM readings").fetchone() == (1_200,)
        _assert_matches(_aggregates(conn), _numpy_truth(readings))


def test_duplicate_keys_within_one_batch_keep_one_row(fresh_db: str) -> None:
    migrate(fresh_db)
    r = _readings(1, seed=5)[0]
    twin = Reading(**{**{f: getattr(r, f) for f in r.__struct_fields__}, "value": r.value + 1})
    store = ReadingStore(fresh_db)
    outcome = ReadingPipeline(store).process(
        [encode_reading(r), encode_reading(twin), b"{not a reading"]
    )
    store.close()
    assert outcome.write.inserted == 1
    assert len(outcome.poison) == 1
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT value FROM readings").fetchall() == [(r.value,)]


def test_store_reports_an_unreachable_database() -> None:
    store = ReadingStore("postgresql://postgres@127.0.0.1:1/civicpulse")
    with pytest.raises(StoreUnavailable, match="cannot connect"):
        store.write(_readings(1, seed=6))


def test_pipeline_holds_the_batch_through_a_real_outage(fresh_db: str, database_url: str) -> None:
    """The database refuses connections for a while: the batch waits, then lands whole."""
    migrate(fresh_db)
    dbname = fresh_db.rsplit("/", 1)[1]
    store = ReadingStore(fresh_db)
    pipeline = ReadingPipeline(store, max_backoff_s=0.5)
    pipeline.process([encode_reading(r) for r in _readings(10, seed=7)])  # connection is open
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{dbname}" WITH ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = %s AND pid <> pg_backend_pid()",
            (dbname,),
        )

        def reopen() -> None:
            time.sleep(1.5)
            admin.execute(f'ALTER DATABASE "{dbname}" WITH ALLOW_CONNECTIONS true')

        opener = threading.Thread(target=reopen)
        opener.start()
        started = time.monotonic()
        outcome = pipeline.process([encode_reading(r) for r in _readings(60, seed=7)[10:]])
        waited = time.monotonic() - started
        opener.join()
    store.close()
    assert outcome.write.inserted == 50
    assert pipeline.stats.store_retries >= 1
    assert waited >= 1.0
    with psycopg.connect(fresh_db) as conn:
        assert conn.execute("SELECT count(*) FROM readings").fetchone() == (60,)
