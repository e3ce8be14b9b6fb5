"""``civicpulse run`` as a real subprocess: mosquitto_pub → database in 1 s, replay, port clash."""

from __future__ import annotations

import base64
import json
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from tests.processes import CivicProcess, civic_env

pytestmark = pytest.mark.integration

READY = "ready — Ctrl-C to stop"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Embedded:
    """``civicpulse run`` on a free port with its own data dir; knows its database URL."""

    def __init__(self, tmp: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        # Not under tmp_path: as root, pgserver runs PostgreSQL as user "pgserver", which must
        # traverse every parent, and each pytest session resets /tmp/pytest-of-root to 0700.
        self.data_dir = Path(tempfile.mkdtemp(prefix="civicpulse-embedded-"))
        self.mqtt_url = f"mqtt://127.0.0.1:{self.port}"
        self.process = CivicProcess(
            ["run", "--mqtt-url", self.mqtt_url, "--data-dir", str(self.data_dir)],
            civic_env(log_level="INFO"),
            tmp / "run.log",
        )
        self.database_url = ""

    def _log(self) -> str:
        path = self.process.log_path
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> Embedded:
        readies = self._log().count(READY)
        self.process.start()
        deadline = time.monotonic() + 45
        while self._log().count(READY) == readies:
            assert self.process.alive, f"civicpulse run exited:\n{self.process.log_tail()}"
            assert time.monotonic() < deadline, f"not ready in 45 s:\n{self.process.log_tail()}"
            time.sleep(0.1)
        self.database_url = re.findall(r"psql '([^']+)'", self._log())[-1]
        return self

    def cleanup(self) -> None:
        """Stop the process (if running) and delete the data dir."""
        self.process.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def query(self, sql: str, *params: object) -> list[tuple[object, ...]]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Embedded]:
    e = Embedded(tmp_path)
    try:
        yield e.start()
        assert e.process.stop() == 0, e.process.log_tail()
    finally:
        e.cleanup()


def reading_payload(sensor: str, when: datetime, value: float) -> str:
    return json.dumps(
        {
            "v": 1,
            "sensor_id": sensor,
            "time": when.isoformat(),
            "readings": [{"metric": "pm10", "value": value, "unit": "ug/m3"}],
        }
    )


def test_mosquitto_pub_reading_is_in_the_database_within_a_second(engine: Embedded) -> None:
    topic = "civicpulse/camden/air_quality/aq-test-1"
    sub = subprocess.Popen(  # another subscriber must still get the message (normal broker)
        [
            "mosquitto_sub",
            "-p",
            str(engine.port),
            "-q",
            "1",
            "-t",
            "civicpulse/#",
            "-C",
            "1",
            "-W",
            "10",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)
    when = datetime.now(UTC).replace(microsecond=123000)
    payload = reading_payload("aq-test-1", when, 12.5)
    started = time.monotonic()
    subprocess.run(
        ["mosquitto_pub", "-p", str(engine.port), "-q", "1", "-t", topic, "-m", payload],
        check=True,
        timeout=10,
    )
    rows: list[tuple[object, ...]] = []
    while time.monotonic() - started < 1.0 and not rows:
        rows = engine.query(
            "SELECT council, sensor_id, kind, metric, value, time FROM readings"
            " WHERE sensor_id = 'aq-test-1'"
        )
    elapsed = time.monotonic() - started
    assert rows == [("camden", "aq-test-1", "air_quality", "pm10", 12.5, when)], elapsed
    assert elapsed < 1.0
    out, _ = sub.communicate(timeout=10)
    assert out.strip() == payload


def test_rejected_message_is_a_dead_letter_and_still_acknowledged(engine: Embedded) -> None:
    topic = "civicpulse/camden/air_quality/aq-test-2"
    subprocess.run(
        ["mosquitto_pub", "-p", str(engine.port), "-q", "1", "-t", topic, "-m", "pm10=12.3"],
        check=True,
        timeout=10,
    )
    assert engine.query("SELECT reason, mqtt_topic, payload FROM dead_letters") == [
        ("malformed_json", topic, b"pm10=12.3")
    ]


def test_replay_publishes_a_recording(engine: Embedded, tmp_path: Path) -> None:
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=5)
    recording = tmp_path / "rec.jsonl"
    lines = [
        {
            "topic": f"civicpulse/leeds/air_quality/aq-r{i % 3}",
            "payload_b64": base64.b64encode(
                reading_payload(f"aq-r{i % 3}", start + timedelta(seconds=i), float(i)).encode()
            ).decode(),
            "t": i / 100,
        }
        for i in range(30)
    ]
    recording.write_text("".join(json.dumps(line) + "\n" for line in lines))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "civicpulse.cli",
            "replay",
            str(recording),
            "--mqtt-url",
            engine.mqtt_url,
            "--rate",
            "0",
        ],
        env=civic_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "30 acknowledged" in done.stderr.replace(",", "")
    assert engine.query("SELECT count(*), sum(value) FROM readings WHERE council = 'leeds'") == [
        (30, float(sum(range(30))))
    ]


def test_replay_of_a_missing_file_says_what_to_do(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "civicpulse.cli", "replay", str(tmp_path / "nope.jsonl")],
        env=civic_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "civicpulse simulate --record" in done.stderr
    assert "Traceback" not in done.stderr


def test_port_in_use_is_a_one_line_error(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        e = Embedded(tmp_path, port=busy.getsockname()[1])
        e.process.start()
        assert e.process.proc is not None
        assert e.process.proc.wait(timeout=60) == 1
        e.cleanup()
    log = e.process.log_path.read_text()
    assert "cannot listen on" in log and "--mqtt-url" in log
    assert "Traceback" not in log
