"""``civicpulse api`` as a real process on 127.0.0.1: serves, prints its URL, stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from storage.migrations import migrate

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _command() -> list[str]:
    """``civicpulse api`` once the root app registers it, else the module on its own."""
    from civicpulse.cli.main import app

    names = {c.name or (c.callback.__name__ if c.callback else "") for c in app.registered_commands}
    if "api" in names:
        return [sys.executable, "-m", "civicpulse.cli", "api"]
    return [sys.executable, "-m", "civicpulse.cli.api"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CIVICPULSE_")}
    environ.update(env or {})
    return subprocess.Popen(
        [*_command(), *args],
        cwd=ROOT,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_up(url: str, proc: subprocess.Popen[str], timeout: float = 30) -> httpx.Response:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the API exited with {proc.returncode}: {err}{out}")
        try:
            return httpx.get(url, timeout=2)
        except httpx.TransportError:
            time.sleep(0.1)
    proc.kill()
    pytest.fail("the API did not answer within 30 s")


def test_serves_prints_its_url_and_stops_within_5s_of_sigterm(fresh_db: str) -> None:
    migrate(fresh_db)
    port = _free_port()
    public = "http://localhost:9999/civic"
    proc = _start(
        "--database-url", fresh_db, "--host", "127.0.0.1", "--port", str(port),
        "--public-url", public,
    )  # fmt: skip
    try:
        r = _wait_up(f"http://127.0.0.1:{port}/v1.1", proc)
        assert r.status_code == 200
        assert r.json()["value"][0]["url"] == f"{public}/v1.1/Things"
        # a request still streaming must not hold the stop beyond the grace period
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert f"civicpulse API on {public}/" in err + out


def test_port_in_use_and_unreachable_database_are_one_line_errors(fresh_db: str) -> None:
    migrate(fresh_db)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _start("--database-url", fresh_db, "--host", "127.0.0.1", "--port", str(port))
        _out, err = proc.communicate(timeout=30)
    assert proc.returncode != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and f"port {port}" in lines[0] and "in use" in lines[0], err

    dead = _free_port()  # nothing listens there
    proc = _start(
        "--database-url", f"postgresql://nobody:secret@127.0.0.1:{dead}/none", "--port",
        str(_free_port()), "--host", "127.0.0.1",
    )  # fmt: skip
    _out, err = proc.communicate(timeout=30)
    assert proc.returncode != 0
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "database unreachable" in lines[0], err
    assert "secret" not in err
