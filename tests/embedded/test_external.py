"""`civicpulse run --external-broker`: the embedded engine on real Mosquitto, kill -9 safe."""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from simulator import Fleet, publish
from tests.processes import CivicProcess, civic_env, wait_until

pytestmark = pytest.mark.integration

READY = "ready — Ctrl-C to stop"


def _wait_ready(proc: CivicProcess, seen: int) -> str:
    deadline = time.monotonic() + 60
    while proc.log_path.read_text(errors="replace").count(READY) <= seen:
        assert proc.alive, proc.log_tail()
        assert time.monotonic() < deadline, proc.log_tail()
        time.sleep(0.1)
    return re.findall(r"psql '([^']+)'", proc.log_path.read_text(errors="replace"))[-1]


def test_external_broker_mode_stores_everything_once_across_kill9(
    mqtt_url: str, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    data_dir = Path(tempfile.mkdtemp(prefix="civicpulse-ext-"))
    proc = CivicProcess(
        ["run", "--external-broker", "--mqtt-url", mqtt_url, "--data-dir", str(data_dir)],
        civic_env(mqtt_client_id=f"emb-{run}", mqtt_share_group=f"g{run}", log_level="INFO"),
        tmp_path / "run.log",
    )
    fleet = Fleet.build(60, seed=11)
    messages = list(fleet.emissions(1_500, datetime.now(UTC) - timedelta(minutes=2), rate=300))
    truth = Counter((m.sensor_id, s.metric, s.time) for m in messages for s in m.samples)
    try:
        proc.start()
        db_url = _wait_ready(proc, 0)
        progress = {"sent": 0}
        publisher = threading.Thread(
            target=lambda: publish(
                messages,
                mqtt_url,
                rate=300,
                client_id=f"p-{run}",
                progress=lambda sent, _a: progress.__setitem__("sent", sent),
            )
        )
        publisher.start()
        assert wait_until(lambda: progress["sent"] >= 600, timeout=30, interval=0.05)
        proc.kill9()  # mid-stream: unacked messages stay in its Mosquitto session
        proc.start()
        _wait_ready(proc, 1)
        publisher.join(timeout=60)

        def stored() -> int:
            with psycopg.connect(db_url) as conn:
                row = conn.execute("SELECT count(*) FROM readings").fetchone()
            return int(row[0]) if row else 0

        assert wait_until(lambda: stored() >= len(truth), timeout=60), proc.log_tail()
        time.sleep(1.0)
        with psycopg.connect(db_url) as conn:
            rows = conn.execute("SELECT sensor_id, metric, time FROM readings").fetchall()
        assert Counter(rows) == truth  # every reading, each exactly once
    finally:
        proc.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
