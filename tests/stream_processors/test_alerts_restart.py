"""kill -9 of a worker mid-stream, with replays, leaves alerts, state and outbox exactly right.

A worker subprocess drives the shared ``ReadingPipeline`` (what both engines call) over a
labelled scenario, committing its source offset only after the database commit, as the
Faust and embedded engines do. It is killed with SIGKILL repeatedly and restarted from a
rewound offset (at-least-once redelivery). The alerts and detector state must equal those
of an uninterrupted in-process run over the same input on another database.
"""

from __future__ import annotations

import base64
import os
import random
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from sensors.intake import route_message
from sensors.validation import Limits
from simulator.anomalies import ScenarioSpec, build_scenario
from storage import ReadingStore, migrate
from stream_processors.pipeline import ReadingPipeline

REPO = Path(__file__).resolve().parents[2]
BATCH = 250
LIMITS = Limits(max_past=timedelta(days=3650))
SPEC = ScenarioSpec(
    seed=7,
    sensors={"air_quality": 3, "waste_bin": 4, "energy_meter": 3},
    days={"air_quality": 1, "waste_bin": 4, "energy_meter": 4},
    counts={
        "flatline": 2,
        "statistical": 2,
        "no2_very_high": 1,
        "fire": 2,
        "tilt": 2,
        "low_battery": 1,
        "register_reset": 2,
        "out_of_hours": 2,
        "spike": 2,
    },
)
END = datetime(2026, 1, 10, tzinfo=UTC)


def scenario_values() -> list[bytes]:
    values: list[bytes] = []
    for m in build_scenario(SPEC).messages:
        values += [v for _, v in route_message(m.topic, m.payload, m.time, LIMITS).readings]
    return values


def worker_main() -> None:
    """Subprocess body: process batches from the committed offset; commit after the DB."""
    url, values_path, offset_path = sys.argv[1:4]
    values = [base64.b64decode(line) for line in Path(values_path).read_text().split()]
    pipeline = ReadingPipeline(ReadingStore(url))
    offset = int(Path(offset_path).read_text() or 0)
    while offset < len(values):
        pipeline.process(values[offset : offset + BATCH])
        offset = min(offset + BATCH, len(values))
        tmp = Path(offset_path + ".tmp")
        tmp.write_text(str(offset))
        os.replace(tmp, offset_path)  # the "Kafka commit", only after the DB commit
    pipeline.tick(END)


def snapshot(url: str) -> tuple[list[tuple], list[tuple], int, list[tuple]]:
    with psycopg.connect(url) as conn:
        alerts = conn.execute(
            "SELECT sensor_id, rule, severity, state, opened_at, resolved_at, last_seen_at,"
            " count, flaps, details FROM alert_events ORDER BY sensor_id, rule, opened_at"
        ).fetchall()
        states = conn.execute(
            "SELECT sensor_id, detector, state FROM detector_state ORDER BY 1, 2"
        ).fetchall()
        readings = conn.execute("SELECT count(*) FROM readings").fetchone()[0]
        notes = conn.execute(
            "SELECT event, payload - 'id' FROM alert_notifications ORDER BY id"
        ).fetchall()
    return alerts, states, readings, notes


@pytest.mark.integration
def test_kill9_and_replays_neither_lose_nor_duplicate_alerts(
    fresh_db: str, database_url: str, tmp_path: Path
) -> None:
    values = scenario_values()
    # Reference: one uninterrupted run in this process on a database of its own.
    ref_url = fresh_db + "_ref"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{ref_url.rsplit("/", 1)[1]}"')
    try:
        migrate(ref_url)
        ref = ReadingPipeline(ReadingStore(ref_url))
        for i in range(0, len(values), BATCH):
            ref.process(values[i : i + BATCH])
        ref.tick(END)
        expected = snapshot(ref_url)
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{ref_url.rsplit("/", 1)[1]}" WITH (FORCE)')
    assert expected[2] == len(values)
    states = {row[3] for row in expected[0]}
    assert len(expected[0]) >= 10 and states >= {"open", "resolved"}  # a real workload

    migrate(fresh_db)
    values_path, offset_path = tmp_path / "values.b64", tmp_path / "offset"
    values_path.write_text("\n".join(base64.b64encode(v).decode() for v in values))
    offset_path.write_text("0")
    rng = random.Random(3)
    cmd = [
        sys.executable,
        "-c",
        "from tests.stream_processors.test_alerts_restart import worker_main; worker_main()",
        fresh_db,
        str(values_path),
        str(offset_path),
    ]
    kills = 0
    for _ in range(4):
        start = int(offset_path.read_text())
        proc = subprocess.Popen(cmd, cwd=REPO, start_new_session=True)
        # kill it mid-stream: once it has committed a batch, at a random point after
        deadline = time.monotonic() + 30
        while int(offset_path.read_text() or start) <= start and time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.3))
        if proc.poll() is not None:
            break
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        kills += 1
        # Redeliver: rewind the committed offset by up to three batches (at-least-once).
        done = int(offset_path.read_text())
        offset_path.write_text(str(max(0, done - rng.randint(0, 3) * BATCH)))
    assert kills >= 2, "the worker finished before it could be killed twice: enlarge the input"
    proc = subprocess.Popen(cmd, cwd=REPO)
    assert proc.wait(timeout=50) == 0
    got = snapshot(fresh_db)
    assert got[2] == expected[2]
    assert got[1] == expected[1], "detector state differs after kill -9 and replays"
    assert got[0] == expected[0], "alerts differ after kill -9 and replays"
    assert got[3] == expected[3], "webhook notifications lost or duplicated"
    assert len(expected[3]) >= len(expected[0])
