"""Every README example payload, run as written against `civicpulse run`, is stored today.

Also what `run` does around them: the state file other commands find it by (no password in
it, gone after a clean stop), and one log line per dead-letter reason as it happens.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
READY = "ready — Ctrl-C to stop"


def readme_examples() -> list[str]:
    """Every bash block of the README that publishes with ``mosquitto_pub``."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return [b for b in blocks if b.lstrip().startswith("mosquitto_pub")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Platform:
    port: int
    data_dir: Path
    log: Path
    proc: subprocess.Popen[bytes]
    env: dict[str, str]

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    @property
    def database_url(self) -> str:
        return re.findall(r"psql '([^']+)'", self.output)[-1]


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    data_dir = Path(tempfile.mkdtemp(prefix="civicpulse-run-"))  # reachable by pgserver's user
    log = data_dir.parent / f"{data_dir.name}.log"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICPULSE_")}
    env["CIVICPULSE_DATA_DIR"] = str(data_dir)
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "civicpulse.cli",
                "run",
                "--mqtt-url",
                f"mqtt://127.0.0.1:{port}",
            ],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = Platform(port, data_dir, log, proc, env)
    try:
        deadline = time.monotonic() + 180
        while READY not in running.output:
            assert proc.poll() is None, running.output[-3000:]
            assert time.monotonic() < deadline, "run not ready in 3 minutes"
            time.sleep(0.3)
        yield running
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        subprocess.run(["rm", "-rf", str(data_dir), str(log)], check=False)


def _expected(topic: str, payload: str) -> tuple[str, set[tuple[str, float]]]:
    """(sensor id, {(metric, value)}) straight from what was sent (canonical units)."""
    sensor = topic.rsplit("/", 1)[1]
    obj = json.loads(payload)
    if isinstance(obj, list):  # SenML: the metric is the name after the base name
        return sensor, {(r["n"], float(r["v"])) for r in obj}
    items = obj.get("readings", [obj])
    return sensor, {(r["metric"], float(r["value"])) for r in items}


@pytest.mark.parametrize("number", range(len(readme_examples())))
def test_the_readme_example_is_stored(number: int, platform: Platform, tmp_path: Path) -> None:
    example = readme_examples()[number]
    sent = tmp_path / "args"
    wrapper = (
        f'mosquitto_pub() {{ printf "%s\\0" "$@" > {sent}; '
        f'command mosquitto_pub -h 127.0.0.1 -p {platform.port} "$@"; }}\n'
    )
    subprocess.run(["bash", "-c", wrapper + example], check=True, timeout=20)
    args = sent.read_text().split("\0")
    topic, payload = args[args.index("-t") + 1], args[args.index("-m") + 1]
    sensor, expected = _expected(topic, payload)
    found: set[tuple[str, float]] = set()
    deadline = time.monotonic() + 5
    while found != expected and time.monotonic() < deadline:
        with psycopg.connect(platform.database_url) as conn:
            rows = conn.execute(
                "SELECT metric, value FROM readings WHERE sensor_id = %s", (sensor,)
            ).fetchall()
        found = {(m, float(v)) for m, v in rows}
        time.sleep(0.1)
    assert found == expected, f"README example {number} stored {found}, sent {expected}"


def test_every_format_has_an_example() -> None:
    examples = readme_examples()
    assert len(examples) >= 4
    assert any('"readings"' in e for e in examples)  # a civicpulse JSON batch
    assert any('"bn"' in e for e in examples)  # SenML


def test_other_commands_find_run_by_its_state_file(platform: Platform) -> None:
    state = json.loads((platform.data_dir / "civicpulse-state.json").read_text())
    assert state["pid"] == platform.proc.pid and state["mode"] == "run"
    assert state["mqtt_url"] == f"mqtt://127.0.0.1:{platform.port}"
    result = subprocess.run(
        [sys.executable, "-m", "civicpulse.cli", "alerts", "list", "--json"],
        env=platform.env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert isinstance(json.loads(result.stdout), list)


def test_run_logs_one_line_per_dead_letter_reason(platform: Platform) -> None:
    old = '{"time": "2020-01-01T00:00:00Z", "metric": "no2", "value": 1}'
    for _ in range(3):
        subprocess.run(
            [
                *("mosquitto_pub", "-h", "127.0.0.1", "-p", str(platform.port), "-q", "1"),
                *("-t", "civicpulse/aberdeen/air_quality/aq-old", "-m", old),
            ],
            check=True,
            timeout=10,
        )
    deadline = time.monotonic() + 5
    while "as time_out_of_range" not in platform.output and time.monotonic() < deadline:
        time.sleep(0.2)
    lines = [ln for ln in platform.output.splitlines() if "as time_out_of_range" in ln]
    assert len(lines) == 1, platform.output[-2000:]  # rate-limited: one line for the burst
    assert "aq-old" in lines[0] and "CIVICPULSE_MAX_PAST_S" in lines[0]


def test_run_stops_within_5_s_and_removes_its_state_file(platform: Platform) -> None:
    sent = time.monotonic()
    platform.proc.send_signal(signal.SIGINT)
    assert platform.proc.wait(timeout=5) == 0
    assert time.monotonic() - sent < 5
    assert not (platform.data_dir / "civicpulse-state.json").exists()
    assert "Traceback" not in platform.output
