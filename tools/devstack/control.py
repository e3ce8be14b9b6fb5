"""Fault helpers for a running Service: kill -9, stop, start again on the same port, pause."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from .common import HOST, Service, ServiceError, _forget_pid, _port_open, _spawn, _wait_until
from .kafka import kafka_metadata_brokers
from .mosquitto import _mqtt_connack


def kill9(svc: Service) -> None:
    """SIGKILL the service's whole process group, like a power cut of that process."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(svc.proc.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        svc.proc.wait(10)
    _forget_pid(svc.pids_file, svc.proc.pid)


def stop_only(svc: Service, timeout: float | None = None) -> None:
    """Stop the service cleanly (its own stop signal, SIGKILL after the timeout); keep its files."""
    svc.stop(timeout)


def _argv(svc: Service) -> list[str]:
    args = svc.proc.args
    if isinstance(args, str | bytes | os.PathLike):
        raise ServiceError(f"{svc.name} was not started from an argument list")
    return [os.fsdecode(a) for a in args]


def _ready(svc: Service) -> bool:
    if svc.name == "mosquitto":
        return _mqtt_connack(svc.port)
    if svc.name == "kafka":
        return _port_open(svc.port) and bool(kafka_metadata_brokers(svc.port))
    if svc.name == "postgres":
        return _postgres_ready(svc)
    return _port_open(svc.port)


def _postgres_ready(svc: Service) -> bool:
    pg_isready = Path(_argv(svc)[0]).parent / "pg_isready"
    argv = [str(pg_isready), "-q", "-h", HOST, "-p", str(svc.port), "-U", "postgres", "-t", "2"]
    r = subprocess.run(argv, check=False, stdin=subprocess.DEVNULL, timeout=10)
    return r.returncode == 0


def start_again(svc: Service, timeout: float = 120.0) -> None:
    """Start a stopped (or killed) service again: same command line, files and port.

    The process is replaced in place (``svc.proc``), so ``svc.stop()`` still stops it.
    """
    if svc.alive():
        raise ServiceError(f"{svc.name} is still running")
    argv = _argv(svc)
    env = None
    user = None
    if svc.name == "postgres":
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        user = "postgres" if os.geteuid() == 0 else None
    log_path = svc.log_path if svc.name == "postgres" else svc.workdir / "restart.log"
    svc.proc = _spawn(
        argv, workdir=svc.pids_file.parent, log_path=log_path, cwd=svc.workdir, env=env, user=user
    )
    _wait_until(lambda: _ready(svc), svc.proc, timeout, f"{svc.name} (restart)", svc.log_path)


def restart(
    svc: Service, *, hard: bool = False, down_s: float = 0.0, timeout: float = 120.0
) -> float:
    """Stop (``hard``: kill -9) then start again after ``down_s``; returns seconds until ready."""
    t0 = time.monotonic()
    if hard:
        kill9(svc)
    else:
        stop_only(svc)
    time.sleep(down_s)
    start_again(svc, timeout)
    return time.monotonic() - t0


def pause(svc: Service) -> None:
    """SIGSTOP the process group: it keeps its sockets but answers nothing (a network pause)."""
    os.killpg(svc.proc.pid, signal.SIGSTOP)


def resume(svc: Service) -> None:
    """SIGCONT after :func:`pause`."""
    os.killpg(svc.proc.pid, signal.SIGCONT)
