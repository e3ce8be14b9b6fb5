"""Shared pieces of devstack: Service, ServiceError, free ports, pid files and start-up waits."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

# tools/devstack/common.py -> the repository root is three levels up.
REPO_ROOT = Path(__file__).resolve().parent.parent.parent
HOST = "127.0.0.1"

_pids_lock = threading.Lock()


class ServiceError(RuntimeError):
    """A service could not be started. ``log_tail`` holds the end of its log."""

    def __init__(self, message: str, log_path: Path | None = None) -> None:
        self.log_path = log_path
        self.log_tail = tail(log_path) if log_path else ""
        text = message
        if log_path:
            text += f"\n--- last lines of {log_path} ---\n{self.log_tail}"
        super().__init__(text)


@dataclass
class Service:
    name: str
    url: str
    port: int
    proc: subprocess.Popen[bytes]
    log_path: Path
    workdir: Path
    pids_file: Path
    stop_signal: int = signal.SIGTERM
    signal_group: bool = True
    stop_timeout: float = 15.0
    startup_seconds: float = 0.0
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        return tail(self.log_path, lines)

    def stop(self, timeout: float | None = None) -> None:
        """Send the stop signal (SIGTERM to the process group by default), then SIGKILL."""
        timeout = self.stop_timeout if timeout is None else timeout
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if self.signal_group:
                    os.killpg(self.proc.pid, self.stop_signal)
                else:
                    self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        # Leftover children of the group (if any) go too.
        _kill_group(self.proc.pid, signal.SIGKILL)
        _forget_pid(self.pids_file, self.proc.pid)

    def __enter__(self) -> Service:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ------------------------------------------------------------------------ helpers


def tail(path: Path | None, lines: int = 40) -> str:
    if path is None:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            data = f.read().decode("utf-8", "replace")
    except OSError as e:
        return f"(no log: {e})"
    return "\n".join(data.splitlines()[-lines:])


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1 (bind to port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _port_open(port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def _kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _remember_pid(pids_file: Path, pid: int) -> None:
    with _pids_lock, open(pids_file, "a") as f:
        f.write(f"{pid}\n")


def _forget_pid(pids_file: Path, pid: int) -> None:
    with _pids_lock:
        try:
            lines = pids_file.read_text().split()
        except OSError:
            return
        keep = [p for p in lines if p != str(pid)]
        with contextlib.suppress(OSError):
            pids_file.write_text("".join(f"{p}\n" for p in keep))


def _spawn(
    argv: Sequence[str],
    *,
    workdir: Path,
    log_path: Path,
    cwd: Path,
    env: dict[str, str] | None = None,
    user: str | None = None,
) -> subprocess.Popen[bytes]:
    uid = gid = None
    groups: list[int] | None = None
    if user is not None:
        pw = pwd.getpwnam(user)
        uid, gid, groups = pw.pw_uid, pw.pw_gid, []
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=str(cwd),
            env=env,
            start_new_session=True,
            user=uid,
            group=gid,
            extra_groups=groups,
        )
    _remember_pid(workdir / "pids", proc.pid)
    return proc


def _run_tracked(
    argv: Sequence[str],
    *,
    workdir: Path,
    log_path: Path,
    cwd: Path,
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
) -> int:
    """Run a one-off helper (initdb, StorageTool) like a service: own session, pid in
    ``<workdir>/pids`` while it runs, output to ``log_path``. Returns its exit code."""
    proc = _spawn(argv, workdir=workdir, log_path=log_path, cwd=cwd, env=env)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc.pid, signal.SIGKILL)
        proc.wait(10)
        return -9
    finally:
        _forget_pid(workdir / "pids", proc.pid)


def _wait_until(
    check: Callable[[], bool],
    proc: subprocess.Popen[bytes],
    timeout: float,
    what: str,
    log_path: Path,
) -> None:
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        if proc.poll() is not None:
            raise ServiceError(
                f"{what} exited with code {proc.returncode} during start-up", log_path
            )
        try:
            if check():
                return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise ServiceError(f"{what} not ready after {timeout:.0f}s", log_path)
        time.sleep(delay)
        delay = min(delay * 1.5, 0.5)


def _abort(proc: subprocess.Popen[bytes], pids_file: Path) -> None:
    _kill_group(proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(10)
    _forget_pid(pids_file, proc.pid)


def _fresh_dir(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def _with_retries(name: str, attempts: int, fn: Callable[[int], Service]) -> Service:
    """Ports are picked by binding to 0 and released again: another process may grab one
    before our server binds it. Retry start-up on a fresh port a few times."""
    last: ServiceError | None = None
    for attempt in range(attempts):
        try:
            return fn(attempt)
        except ServiceError as e:
            last = e
    assert last is not None
    raise last
