"""Start civicpulse's own processes (bridge, Faust worker) as real subprocesses for tests."""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

_STARTED: list[CivicProcess] = []


@atexit.register
def _kill_leftovers() -> None:
    """Whatever a failed or interrupted test left running goes with the test session."""
    for proc in _STARTED:
        if proc.alive and proc.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.proc.pid, signal.SIGKILL)


class CivicProcess:
    """One ``civicpulse <command>`` subprocess with its log file; restartable, killable."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.args = args
        self.env = env
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> CivicProcess:
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"\n==== start #{self.starts}: {' '.join(self.args)}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "civicpulse.cli", *self.args],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        _STARTED.append(self)
        return self

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(timeout=10)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    def wait_for_log(self, needle: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log_path.read_text(errors="replace"):
                return
            if not self.alive:
                raise AssertionError(f"{self.args[0]} exited early:\n{self.log_tail()}")
            time.sleep(0.2)
        raise AssertionError(f"{needle!r} not logged within {timeout}s:\n{self.log_tail()}")


def civic_env(**settings: str) -> dict[str, str]:
    """The test's environment plus CIVICPULSE_* settings (keys given in lower case)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CIVICPULSE_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1])
    env.update({f"CIVICPULSE_{k.upper()}": str(v) for k, v in settings.items()})
    return env


@contextmanager
def running(*procs: CivicProcess) -> Iterator[tuple[CivicProcess, ...]]:
    """Start processes; stop them (SIGTERM, then SIGKILL) whatever happens."""
    try:
        for p in procs:
            p.start()
        yield procs
    finally:
        for p in procs:
            p.stop()


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.5) -> bool:
    """Poll ``predicate`` until true or ``timeout``; returns its last answer."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def distributed_path(
    tmp_path: Path, mqtt_url: str, kafka_bootstrap: str, database_url: str, **settings: str
) -> tuple[CivicProcess, CivicProcess]:
    """A bridge and a Faust worker on run-unique topics, client id, share group and app id."""
    run = uuid.uuid4().hex[:8]
    values = {
        "mqtt_url": mqtt_url,
        "kafka_bootstrap": kafka_bootstrap,
        "database_url": database_url,
        "readings_topic": f"t{run}.readings",
        "deadletter_topic": f"t{run}.deadletter",
        "mqtt_client_id": f"bridge-{run}",
        "mqtt_share_group": f"g{run}",
        "faust_app_id": f"proc-{run}",
        "kafka_partitions": "4",
        "batch_seconds": "0.3",
        "kafka_session_timeout_s": "6",
        "log_level": "INFO",
    }
    env = civic_env(**{**values, **settings})
    return (
        CivicProcess(["ingest"], env, tmp_path / "bridge.log"),
        CivicProcess(["process"], env, tmp_path / "worker.log"),
    )


def replay_argv(recording: Path, mqtt_url: str, rate: float) -> list[str]:
    """``civicpulse replay`` of a recording into the broker at ``mqtt_url``."""
    cmd = [sys.executable, "-m", "civicpulse.cli", "replay", str(recording)]
    return [*cmd, "--mqtt-url", mqtt_url, "--rate", str(rate)]
