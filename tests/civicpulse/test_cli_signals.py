"""Long-running commands stop within 5 s of SIGINT/SIGTERM while their service does not answer.

The service is a loopback socket that accepts connections and never says a word: the way an
overloaded or half-dead Kafka, broker or database looks (``ingest`` used to sit ~58 s in the
Kafka client's retries, deaf to Ctrl-C).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def silent() -> Iterator[str]:
    """``127.0.0.1:PORT`` of a listener that accepts and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"127.0.0.1:{sock.getsockname()[1]}"


def _closed() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{s.getsockname()[1]}"


def _commands(silent: str, tmp: Path) -> dict[str, list[str]]:
    recording = tmp / "r.jsonl"
    recording.write_text('{"topic": "civicpulse/a/air_quality/aq-1", "payload_b64": "", "t": 0}\n')
    db = f"postgresql://postgres@{silent}/civicpulse"
    return {
        "ingest": ["ingest", "--kafka-bootstrap", silent, "--mqtt-url", f"mqtt://{_closed()}"],
        "process": ["process", "--no-migrate", "--kafka-bootstrap", silent, "--database-url", db],
        "simulate": ["simulate", "--mqtt-url", f"mqtt://{silent}", "--duration", "5"],
        "replay": ["replay", str(recording), "--mqtt-url", f"mqtt://{silent}"],
        "alerts deliver": ["alerts", "deliver", "--url", f"http://{silent}/", "--database-url", db],
        "run": ["run", "--mqtt-url", f"mqtt://{_closed()}", "--database-url", db],
        "demo": ["demo", "--mqtt-url", f"mqtt://{_closed()}", "--database-url", db],
    }


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize(
    "name", ["ingest", "process", "simulate", "replay", "alerts deliver", "run", "demo"]
)
def test_stops_within_5_s_of_a_signal(
    name: str, sig: signal.Signals, silent: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICPULSE_")}
    env["CIVICPULSE_DATA_DIR"] = str(tmp_path / "data")
    proc = subprocess.Popen(
        [sys.executable, "-m", "civicpulse.cli", *_commands(silent, tmp_path)[name]],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        time.sleep(3.0)  # imported, connecting, and stuck on the silent service
        assert proc.poll() is None, f"{name} ended before the signal: {proc.communicate()}"
        sent = time.monotonic()
        proc.send_signal(sig)
        try:
            _out, err = proc.communicate(timeout=5.0)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`civicpulse {name}` still running 5 s after {sig.name}")
        took = time.monotonic() - sent
        assert took < 5.0
        assert "Traceback" not in err, err
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
