"""Parity: one recording replayed into the embedded engine and into MQTT→Kafka→Faust, same rows."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from simulator import Fleet, bad_messages, write_recording
from tests.embedded.test_embedded import Embedded
from tests.processes import (
    civic_env,
    distributed_path,
    replay_argv,
    running,
    wait_until,
)

pytestmark = pytest.mark.integration

N_SENSORS = 300
N_GOOD = 9_500
N_BAD = 520
RATE = 1000  # replayed messages per second

READINGS = "SELECT time, council, sensor_id, kind, metric, value, unit FROM readings"
AGGREGATES = (
    "SELECT bucket, council, sensor_id, kind, metric, n, min, max, mean, last,"
    " last_time FROM readings_1m"
)
LETTERS = "SELECT DISTINCT reason, mqtt_topic, payload FROM dead_letters"


def record(path: Path) -> tuple[int, int]:
    """A recording of good and bad messages interleaved; returns (messages, readings)."""
    now = datetime.now(UTC).replace(microsecond=0)
    fleet = Fleet.build(N_SENSORS, seed=3)
    good = list(fleet.emissions(N_GOOD, start=now - timedelta(minutes=20), rate=300, speed=30))
    bad = list(bad_messages(3, N_BAD, now, fleet.addresses))
    step = len(good) // len(bad)
    stream: list[object] = []
    for i, g in enumerate(good):
        stream.append(g)
        if i % step == step - 1 and bad:
            stream.append(bad.pop())
    stream.extend(bad)
    write_recording(path, stream, default_rate=RATE)  # type: ignore[arg-type]
    return len(stream), sum(len(g.samples) for g in good)


def replay(path: Path, mqtt_url: str) -> None:
    done = subprocess.run(
        replay_argv(path, mqtt_url, RATE),
        env=civic_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def snapshot(url: str) -> dict[str, list[tuple[object, ...]]]:
    with psycopg.connect(url) as conn:
        return {
            sql: sorted(conn.execute(sql).fetchall(), key=repr)
            for sql in (READINGS, AGGREGATES, LETTERS)
        }


def count(url: str, sql: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(sql).fetchone()
    return int(row[0]) if row else 0


def test_embedded_and_distributed_paths_store_identical_rows(
    mqtt_url: str, kafka_bootstrap: str, fresh_db: str, tmp_path: Path
) -> None:
    recording = tmp_path / "recording.jsonl"
    n_messages, n_readings = record(recording)
    assert n_messages >= 10_000

    embedded = Embedded(tmp_path)
    try:
        replay(recording, embedded.start().mqtt_url)
        local = snapshot(embedded.database_url)  # replay returns after every PUBACK: stored
        assert embedded.process.stop() == 0, embedded.process.log_tail()
    finally:
        embedded.cleanup()

    bridge, worker = distributed_path(tmp_path, mqtt_url, kafka_bootstrap, fresh_db)
    with running(bridge, worker):
        bridge.wait_for_log("subscribed to", timeout=60)
        replay(recording, mqtt_url)
        letters = len(local[LETTERS])
        assert wait_until(
            lambda: (
                count(fresh_db, "SELECT count(*) FROM readings") >= n_readings
                and count(fresh_db, f"SELECT count(*) FROM ({LETTERS}) d") >= letters
            ),
            timeout=120,
            interval=1.0,
        ), f"distributed path incomplete:\n{worker.log_tail()}"
    remote = snapshot(fresh_db)

    assert len(local[READINGS]) == n_readings
    assert len(local[LETTERS]) >= 10
    assert local[READINGS] == remote[READINGS]
    assert local[LETTERS] == remote[LETTERS]
    assert len(local[AGGREGATES]) == len(remote[AGGREGATES])
    for mine, theirs in zip(local[AGGREGATES], remote[AGGREGATES], strict=True):
        assert mine[:8] == theirs[:8] and mine[9:] == theirs[9:]
        assert mine[8] == pytest.approx(theirs[8], rel=1e-12)  # avg: summation order may differ
