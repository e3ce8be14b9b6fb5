"""A decoder bug on either engine: an internal_error dead letter that keeps the raw bytes."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from tests.embedded.test_embedded import Embedded
from tests.processes import distributed_path, running, wait_until

pytestmark = pytest.mark.integration

BUG_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "decoder_bug"
TOPIC = "civicpulse/camden/air_quality/aq-bug-1"


def payloads() -> tuple[bytes, bytes]:
    """A message the injected bug trips on, and a good one after it."""
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    bug = {"v": 1, "sensor_id": "aq-bug-1", "time": now, "note": "DECODER-BUG",
           "readings": [{"metric": "pm10", "value": 11.0, "unit": "ug/m3"}]}  # fmt: skip
    good = {**bug, "note": "fine", "readings": [{"metric": "pm10", "value": 12.5, "unit": "ug/m3"}]}
    return json.dumps(bug).encode(), json.dumps(good).encode()


def publish(port: int, payload: bytes) -> None:
    """mosquitto_pub at QoS 1: returns once the broker acknowledged (PUBACK) the message."""
    subprocess.run(
        ["mosquitto_pub", "-p", str(port), "-q", "1", "-t", TOPIC, "-s"],
        input=payload,
        check=True,
        timeout=30,
    )


def stored(url: str) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    with psycopg.connect(url) as conn:
        letters = conn.execute(
            "SELECT reason, detail, payload, mqtt_topic FROM dead_letters"
        ).fetchall()
        readings = conn.execute(
            "SELECT sensor_id, metric, value FROM readings WHERE sensor_id = 'aq-bug-1'"
        ).fetchall()
    return letters, readings


def check(url: str, bug: bytes) -> None:
    assert wait_until(lambda: len(stored(url)[0]) == 1 and stored(url)[1] != [], timeout=60)
    letters, readings = stored(url)
    assert letters == [("internal_error", "ZeroDivisionError: injected decoder bug", bug, TOPIC)]
    assert readings == [("aq-bug-1", "pm10", 12.5)]


def test_embedded_engine_dead_letters_a_decoder_bug_and_acknowledges_it(tmp_path: Path) -> None:
    engine = Embedded(tmp_path)
    engine.process.env["PYTHONPATH"] = f"{BUG_DIR}:{engine.process.env['PYTHONPATH']}"
    bug, good = payloads()
    try:
        engine.start()
        publish(engine.port, bug)  # acknowledged: so it must be stored (as a dead letter)
        publish(engine.port, good)
        check(engine.database_url, bug)
        assert engine.process.alive
        assert "decoder failed on a message" in engine.process.log_path.read_text()
    finally:
        engine.cleanup()


def test_distributed_path_dead_letters_a_decoder_bug(
    mqtt_url: str, kafka_bootstrap: str, fresh_db: str, tmp_path: Path
) -> None:
    bridge, worker = distributed_path(tmp_path, mqtt_url, kafka_bootstrap, fresh_db)
    bridge.env["PYTHONPATH"] = f"{BUG_DIR}:{bridge.env['PYTHONPATH']}"
    port = int(mqtt_url.rsplit(":", 1)[1])
    bug, good = payloads()
    with running(bridge, worker):
        bridge.wait_for_log("subscribed to", timeout=60)
        publish(port, bug)
        publish(port, good)
        check(fresh_db, bug)
        assert bridge.alive and worker.alive
        assert "decoder failed on a message" in bridge.log_path.read_text()
