"""``kill -9`` of ``civicpulse run`` mid-stream: no acknowledged reading lost, none stored twice."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psutil
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.embedded.test_embedded import Embedded

pytestmark = pytest.mark.integration

MESSAGES = 3000
PER_MESSAGE = 5  # readings per MQTT message
SENSORS = 40


def build_messages(start: datetime) -> list[tuple[str, bytes, list[tuple[str, datetime, float]]]]:
    """(topic, payload, truth) — truth: the (sensor, time, value) readings the payload holds."""
    out = []
    for i in range(MESSAGES):
        sensor = f"aq-k{i % SENSORS:03d}"
        base = start + timedelta(seconds=(i // SENSORS) * PER_MESSAGE)
        truth = [
            (sensor, base + timedelta(seconds=k), float((i * 7 + k) % 101))
            for k in range(PER_MESSAGE)
        ]
        payload = {
            "v": 1,
            "sensor_id": sensor,
            "readings": [
                {"metric": "pm10", "value": v, "unit": "ug/m3", "time": t.isoformat()}
                for _s, t, v in truth
            ],
        }
        out.append((f"civicpulse/york/air_quality/{sensor}", json.dumps(payload).encode(), truth))
    return out


class Device:
    """A paho QoS 1 publisher that records which messages the broker acknowledged."""

    def __init__(self, port: int, name: str) -> None:
        self.acked: set[int] = set()
        self._index: dict[int, int] = {}
        self._early: set[int] = set()
        self._lock = threading.Lock()
        self.disconnected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=name, clean_session=True)
        self.client.max_inflight_messages_set(50)
        self.client.on_publish = self._on_publish
        self.client.on_disconnect = lambda *_: self.disconnected.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_publish(self, _c: Any, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        with self._lock:
            if mid in self._index:
                self.acked.add(self._index.pop(mid))
            else:
                self._early.add(mid)

    def publish(self, i: int, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        with self._lock:
            if info.mid in self._early:
                self._early.discard(info.mid)
                self.acked.add(i)
            else:
                self._index[info.mid] = i

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def kill9_postgres(pgdata: Path) -> None:
    """SIGKILL the embedded PostgreSQL and all its backends, like a power cut would."""
    postmaster = psutil.Process(int((pgdata / "postmaster.pid").read_text().split()[0]))
    family = [postmaster, *postmaster.children(recursive=True)]
    for proc in family:
        with contextlib.suppress(psutil.NoSuchProcess):  # a backend that ended meanwhile
            proc.kill()
    psutil.wait_procs(family, timeout=10)


@pytest.mark.parametrize("with_postgres", [False, True], ids=["engine", "engine+postgres"])
def test_kill_9_loses_no_acknowledged_reading_and_stores_none_twice(
    tmp_path: Path, with_postgres: bool
) -> None:
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=3)
    messages = build_messages(start)
    engine = Embedded(tmp_path)
    try:
        crash_and_recover(engine, messages, with_postgres)
    finally:
        engine.cleanup()


def crash_and_recover(
    engine: Embedded,
    messages: list[tuple[str, bytes, list[tuple[str, datetime, float]]]],
    with_postgres: bool,
) -> None:
    engine.start()

    # 1. Stream until the broker has acknowledged a few hundred messages, then kill -9.
    device = Device(engine.port, "device-1")
    stop = threading.Event()

    def stream() -> None:
        for i, (topic, payload, _truth) in enumerate(messages):
            if stop.is_set() or device.disconnected.is_set():
                return
            device.publish(i, topic, payload)
            time.sleep(0.0005)

    publisher = threading.Thread(target=stream)
    publisher.start()
    deadline = time.monotonic() + 30
    while len(device.acked) < 400 and time.monotonic() < deadline:
        time.sleep(0.005)
    engine.process.kill9()
    if with_postgres:
        kill9_postgres(engine.data_dir / "pgdata")
    stop.set()
    publisher.join(10)
    device.disconnected.wait(10)
    device.client.loop_stop()
    acked_before_crash = set(device.acked)
    assert 400 <= len(acked_before_crash) < MESSAGES, "kill landed outside the stream"

    # 2. Restart on the same data dir: everything acknowledged is there.
    engine.start()
    stored = {
        (s, t): v
        for s, t, v in engine.query(
            "SELECT sensor_id, time, value FROM readings WHERE council = 'york'"
        )
    }
    lost = [
        (i, r)
        for i in sorted(acked_before_crash)
        for r in messages[i][2]
        if (r[0], r[1]) not in stored
    ]
    assert not lost, f"{len(lost)} acknowledged readings lost, e.g. {lost[:3]}"

    # 3. The device republishes whatever was not acknowledged, as a real one would.
    again = Device(engine.port, "device-1")
    todo = [i for i in range(MESSAGES) if i not in acked_before_crash]
    for i in todo:
        again.publish(i, messages[i][0], messages[i][1])
    deadline = time.monotonic() + 30
    while len(again.acked) < len(todo) and time.monotonic() < deadline:
        time.sleep(0.01)
    again.close()
    assert len(again.acked) == len(todo)

    # 4. Exactly the truth: every reading once, and one-minute aggregates match it.
    truth = [r for _t, _p, rs in messages for r in rs]
    rows = engine.query("SELECT sensor_id, time, value FROM readings WHERE council = 'york'")
    assert len(rows) == len(truth) == MESSAGES * PER_MESSAGE
    assert sorted(rows) == sorted(truth)
    buckets: dict[tuple[str, datetime], list[float]] = defaultdict(list)
    for sensor, t, v in truth:
        buckets[(sensor, t.replace(second=0, microsecond=0))].append(v)
    expected_1m = sorted((s, b, len(vs), min(vs), max(vs)) for (s, b), vs in buckets.items())
    assert (
        sorted(
            engine.query(
                "SELECT sensor_id, bucket, n, min, max FROM readings_1m WHERE council = 'york'"
            )
        )
        == expected_1m
    )

    # 5. A clean stop also stops the embedded PostgreSQL (the killed process's handle is gone).
    pid = int((engine.data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])
    assert engine.process.stop() == 0, engine.process.log_tail()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
