"""The README's first command, `make demo`, from a fresh clone and a fresh virtual environment."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
READY = "ready — Ctrl-C to stop"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def readme_publish_example() -> str:
    """The README's first ``mosquitto_pub`` example, right after ``make demo`` (every example
    is run against ``civicpulse run`` by test_readme_examples.py)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", text, flags=re.S)
    return next(b for b in blocks if b.lstrip().startswith("mosquitto_pub"))


def test_make_demo_from_a_fresh_clone_stores_a_mosquitto_pub_reading_within_a_second(
    tmp_path: Path,
) -> None:
    clone = Path(tempfile.mkdtemp(prefix="civicpulse-clone-"))
    data_dir = Path(tempfile.mkdtemp(prefix="civicpulse-demo-"))  # reachable by pgserver's user
    try:
        subprocess.run(["git", "clone", "-q", str(REPO), str(clone / "repo")], check=True)
        repo = clone / "repo"
        assert not (repo / ".venv").exists()
        port = _free_port()
        log_path = tmp_path / "demo.log"
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("CIVICPULSE_", "VIRTUAL_ENV", "PYTHONPATH"))
        }
        args = f"--mqtt-url mqtt://127.0.0.1:{port} --data-dir {data_dir} --sensors 20 --rate 5"
        with log_path.open("wb") as log:
            demo = subprocess.Popen(
                ["make", "demo", f"ARGS={args}"],
                cwd=repo,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + 600  # a fresh venv: pip installs everything
            while READY not in log_path.read_text(errors="replace"):
                assert demo.poll() is None, log_path.read_text(errors="replace")[-3000:]
                assert time.monotonic() < deadline, "demo not ready in 10 minutes"
                time.sleep(0.5)
            assert (repo / ".venv" / "bin" / "civicpulse").exists()
            db_url = re.findall(r"psql '([^']+)'", log_path.read_text(errors="replace"))[-1]

            # the README's own example, verbatim but for the port: it must work on the day
            example = readme_publish_example().replace(
                "mosquitto_pub ", f"mosquitto_pub -h 127.0.0.1 -p {port} ", 1
            )
            published = time.monotonic()
            subprocess.run(["bash", "-c", example], check=True, timeout=10)
            found = None
            while time.monotonic() - published < 1.0 and not found:
                with psycopg.connect(db_url) as conn:
                    found = conn.execute(
                        "SELECT value FROM readings WHERE sensor_id = 'aq-1'"
                    ).fetchall()
            elapsed = time.monotonic() - published
            assert found == [(41.2,)], f"not stored within 1 s ({elapsed:.2f}s)"

            # output piped to a file: plain lines, never a live view's escape codes
            deadline = time.monotonic() + 15
            while "demo: " not in log_path.read_text(errors="replace"):
                assert time.monotonic() < deadline, "no plain status line in the piped output"
                time.sleep(0.5)
            assert "\x1b[" not in log_path.read_text(errors="replace")
        finally:
            os.killpg(demo.pid, signal.SIGINT)
            try:
                demo.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(demo.pid, signal.SIGKILL)
                demo.wait(timeout=10)
    finally:
        shutil.rmtree(clone, ignore_errors=True)
        shutil.rmtree(data_dir, ignore_errors=True)
