"""Start and stop REAL throw-away services for tests and local runs (stdlib only).

    start_mosquitto(workdir)        -> Service  (url: mqtt://127.0.0.1:P)
    start_postgres(workdir)         -> Service  (url: postgresql://postgres@127.0.0.1:P/civicpulse)
    start_kafka(workdir, libs_dir)  -> Service  (url: 127.0.0.1:P, a bootstrap server)
    start_pglite(workdir)           -> Service  (url: WASM PostgreSQL 17 + TimescaleDB, tests only)

Each service listens on a free loopback port, keeps all its files under ``workdir`` and runs
in its own session/process group (``start_new_session=True``). Every pid is appended to
``<workdir>/pids`` so a shell trap can kill leftovers (``kill -- -PID`` kills the group);
``Service.stop()`` removes its pid again once the process is gone.

Command line::

    python -m tools.devstack up [--dir D] [--libs .cache/kafka/libs] [--only mosquitto,postgres]

prints ``export CIVICPULSE_…=…`` lines on stdout, then waits for SIGTERM/SIGINT and stops all.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import os
import pwd
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_KAFKA_LIBS = REPO_ROOT / ".cache" / "kafka" / "libs"
DEFAULT_PGLITE_MODULES = REPO_ROOT / ".cache" / "pglite" / "node_modules"
PG_BIN_DEFAULT = Path("/usr/lib/postgresql/15/bin")
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


# ------------------------------------------------------------------------ mosquitto


def _mqtt_connack(port: int) -> bool:
    """A raw MQTT 3.1.1 CONNECT → CONNACK(accepted) handshake."""
    client_id = b"devstack-probe"
    var_header = b"\x00\x04MQTT\x04\x02\x00\x0a"
    payload = struct.pack("!H", len(client_id)) + client_id
    body = var_header + payload
    packet = bytes([0x10, len(body)]) + body
    with socket.create_connection((HOST, port), timeout=2) as s:
        s.sendall(packet)
        resp = s.recv(4)
        ok = resp == b"\x20\x02\x00\x00"
        with contextlib.suppress(OSError):
            s.sendall(b"\xe0\x00")  # DISCONNECT
        return ok


def start_mosquitto(workdir: str | os.PathLike[str], *, timeout: float = 20.0) -> Service:
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(exe):
        raise ServiceError("mosquitto is not installed (run scripts/bootstrap.sh)")

    def attempt(n: int) -> Service:
        t0 = time.monotonic()
        d = _fresh_dir(workdir / "mosquitto")
        port = free_port()
        log_path = d / "mosquitto.log"
        conf = d / "mosquitto.conf"
        lines = [
            f"listener {port} {HOST}",
            "allow_anonymous true",
            "max_inflight_messages 1000",
            "max_queued_messages 1000000",
            "message_size_limit 4194304",
            "persistence false",
            f"log_dest file {log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "log_timestamp true",
        ]
        if os.geteuid() == 0:
            # Started as root, Mosquitto would switch to the `mosquitto` user, which cannot
            # write into our temp dir. Keep the current user instead.
            lines.append("user root")
        conf.write_text("\n".join(lines) + "\n")
        proc = _spawn([exe, "-c", str(conf)], workdir=workdir, log_path=d / "stdout.log", cwd=d)
        try:
            _wait_until(lambda: _mqtt_connack(port), proc, timeout, "mosquitto", log_path)
        except ServiceError:
            _abort(proc, workdir / "pids")
            # Early failures (e.g. the port was taken) end up on stdout, not in the log file.
            raise ServiceError(
                f"mosquitto did not start (attempt {n + 1}); stdout: {tail(d / 'stdout.log', 10)}",
                log_path,
            ) from None
        return Service(
            name="mosquitto",
            url=f"mqtt://{HOST}:{port}",
            port=port,
            proc=proc,
            log_path=log_path,
            workdir=d,
            pids_file=workdir / "pids",
            stop_timeout=5.0,
            startup_seconds=time.monotonic() - t0,
        )

    return _with_retries("mosquitto", 3, attempt)


# ------------------------------------------------------------------------ postgres


def _pg_bin() -> Path:
    env = os.environ.get("CIVICPULSE_PG_BIN")
    if env:
        return Path(env)
    if (PG_BIN_DEFAULT / "postgres").exists():
        return PG_BIN_DEFAULT
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if found:
        return found[-1].parent
    raise ServiceError("PostgreSQL server binaries not found (run scripts/bootstrap.sh)")


def _make_traversable(path: Path) -> None:
    """The postgres OS user must reach its data dir: add o+x on our own temp dirs."""
    for p in [path, *path.parents]:
        try:
            st = p.stat()
        except OSError:
            continue
        if st.st_mode & 0o001:
            continue
        if st.st_uid == os.geteuid() and (str(p).startswith(tempfile.gettempdir()) or p == path):
            with contextlib.suppress(OSError):
                os.chmod(p, st.st_mode | 0o011)  # noqa: S103


def start_postgres(
    workdir: str | os.PathLike[str], *, timeout: float = 60.0, dbname: str = "civicpulse"
) -> Service:
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    bindir = _pg_bin()
    as_root = os.geteuid() == 0
    pg_user = "postgres" if as_root else None

    def attempt(n: int) -> Service:
        t0 = time.monotonic()
        d = _fresh_dir(workdir / "postgres")
        data = d / "data"
        log_path = d / "postgres.log"
        if as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(d, pw.pw_uid, pw.pw_gid)
            os.chmod(d, 0o755)  # noqa: S103
            _make_traversable(d)
        initdb = [
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]
        if as_root:
            initdb = ["runuser", "-u", "postgres", "--", *initdb]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        rc = _run_tracked(initdb, workdir=workdir, log_path=d / "initdb.log", cwd=d, env=env)
        if rc != 0:
            raise ServiceError(f"initdb failed with code {rc}", d / "initdb.log")

        port = free_port()
        settings = {
            "listen_addresses": f"'{HOST}'",
            "port": str(port),
            "unix_socket_directories": f"'{d}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "shared_buffers": "128MB",
            "max_wal_size": "1GB",
            "log_min_messages": "warning",
            "log_line_prefix": "'%m [%p] %d '",
        }
        with open(data / "postgresql.conf", "a") as f:
            f.write("\n# civicpulse devstack\n")
            f.writelines(f"{k} = {v}\n" for k, v in settings.items())
        proc = _spawn(
            [str(bindir / "postgres"), "-D", str(data)],
            workdir=workdir,
            log_path=log_path,
            cwd=d,
            env=env,
            user=pg_user,
        )

        def ready() -> bool:
            r = subprocess.run(
                [
                    str(bindir / "pg_isready"),
                    "-q",
                    "-h",
                    HOST,
                    "-p",
                    str(port),
                    "-U",
                    "postgres",
                    "-d",
                    "postgres",
                    "-t",
                    "2",
                ],
                env=env,
                check=False,
                stdin=subprocess.DEVNULL,
                timeout=10,
            )
            return r.returncode == 0

        try:
            _wait_until(ready, proc, timeout, "postgres", log_path)
            r = subprocess.run(
                [str(bindir / "createdb"), "-h", HOST, "-p", str(port), "-U", "postgres", dbname],
                env=env,
                check=False,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=60,
            )
            if r.returncode != 0:
                raise ServiceError(
                    f"createdb {dbname} failed: {r.stderr.decode(errors='replace')}", log_path
                )
        except ServiceError:
            _abort(proc, workdir / "pids")
            raise
        return Service(
            name="postgres",
            url=f"postgresql://postgres@{HOST}:{port}/{dbname}",
            port=port,
            proc=proc,
            log_path=log_path,
            workdir=d,
            pids_file=workdir / "pids",
            # SIGINT to the postmaster = "fast" shutdown (disconnects clients, then exits).
            # SIGTERM would be "smart" shutdown, which waits for every client to leave.
            stop_signal=signal.SIGINT,
            signal_group=False,
            stop_timeout=15.0,
            startup_seconds=time.monotonic() - t0,
        )

    return _with_retries("postgres", 3, attempt)


# ------------------------------------------------------------------------ kafka


def _kafka_cluster_id() -> str:
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


def kafka_metadata_brokers(port: int, timeout: float = 3.0) -> list[tuple[int, str, int]]:
    """Send a Kafka Metadata v1 request (no topics); return the live brokers it lists."""
    client_id = b"devstack-probe"
    body = struct.pack("!hhih", 3, 1, 1, len(client_id)) + client_id + struct.pack("!i", 0)
    with socket.create_connection((HOST, port), timeout=timeout) as s:
        s.sendall(struct.pack("!i", len(body)) + body)

        def recv_exact(n: int) -> bytes:
            buf = b""
            while len(buf) < n:
                chunk = s.recv(n - len(buf))
                if not chunk:
                    raise OSError("connection closed")
                buf += chunk
            return buf

        (size,) = struct.unpack("!i", recv_exact(4))
        resp = recv_exact(size)
    off = 4  # correlation id
    (n_brokers,) = struct.unpack_from("!i", resp, off)
    off += 4
    brokers = []
    for _ in range(n_brokers):
        node_id, hlen = struct.unpack_from("!ih", resp, off)
        off += 6
        host = resp[off : off + hlen].decode()
        off += hlen
        (bport, rlen) = struct.unpack_from("!ih", resp, off)
        off += 6
        if rlen > 0:
            off += rlen
        brokers.append((node_id, host, bport))
    return brokers


_LOG4J = """\
log4j.rootLogger=INFO, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File={log}
log4j.appender.file.Append=true
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka=INFO
log4j.logger.org.apache.kafka=INFO
log4j.logger.kafka.request.logger=WARN
log4j.logger.kafka.network.RequestChannel$=WARN
log4j.logger.state.change.logger=WARN
log4j.logger.kafka.log.LogCleaner=WARN
log4j.logger.org.apache.kafka.storage.internals.log=WARN
log4j.logger.kafka.authorizer.logger=WARN
"""


def start_kafka(
    workdir: str | os.PathLike[str],
    libs_dir: str | os.PathLike[str] = DEFAULT_KAFKA_LIBS,
    *,
    timeout: float = 120.0,
    heap: str = "768m",
) -> Service:
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    libs = Path(libs_dir).resolve()
    if not any(libs.glob("kafka_2.13-*.jar")):
        raise ServiceError(f"no Kafka jars in {libs} (run scripts/bootstrap.sh)")
    java = shutil.which("java")
    if not java:
        raise ServiceError("java not found on PATH")
    classpath = f"{libs}/*"

    def attempt(n: int) -> Service:
        t0 = time.monotonic()
        d = _fresh_dir(workdir / "kafka")
        port, cport = free_port(), free_port()
        while cport == port:
            cport = free_port()
        log_path = d / "server.log"
        log4j = d / "log4j.properties"
        log4j.write_text(_LOG4J.format(log=log_path))
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.bootstrap.servers": f"{HOST}:{cport}",
            "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{cport}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(d / "data"),
            "num.partitions": "4",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "auto.create.topics.enable": "true",
            "delete.topic.enable": "true",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "4",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "4",
            "group.initial.rebalance.delay.ms": "0",
            "message.max.bytes": "8388608",
            "replica.fetch.max.bytes": "8388608",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "log.cleaner.dedupe.buffer.size": "16777216",
            "log.cleaner.threads": "1",
        }
        server_props = d / "server.properties"
        server_props.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        jvm_common = [f"-Dlog4j.configuration=file:{log4j}", "-Djava.awt.headless=true"]

        fmt_log = d / "format.log"
        fmt_argv = [
            java,
            "-Xmx256m",
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
            *jvm_common,
            "-cp",
            classpath,
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "-t",
            _kafka_cluster_id(),
            "-c",
            str(server_props),
        ]
        rc = _run_tracked(fmt_argv, workdir=workdir, log_path=fmt_log, cwd=d)
        if rc != 0:
            raise ServiceError(f"kafka StorageTool format failed with code {rc}", fmt_log)

        proc = _spawn(
            [
                java,
                f"-Xmx{heap}",
                f"-Xms{heap}",
                "-XX:+UseG1GC",
                "-XX:MaxGCPauseMillis=20",
                *jvm_common,
                "-cp",
                classpath,
                "kafka.Kafka",
                str(server_props),
            ],
            workdir=workdir,
            log_path=d / "stdout.log",
            cwd=d,
        )
        try:
            _wait_until(
                lambda: _port_open(port) and bool(kafka_metadata_brokers(port)),
                proc,
                timeout,
                "kafka",
                log_path,
            )
        except ServiceError:
            _abort(proc, workdir / "pids")
            raise
        return Service(
            name="kafka",
            url=f"{HOST}:{port}",
            port=port,
            proc=proc,
            log_path=log_path,
            workdir=d,
            pids_file=workdir / "pids",
            stop_timeout=20.0,
            startup_seconds=time.monotonic() - t0,
            extra={"controller_port": str(cport)},
        )

    return _with_retries("kafka", 2, attempt)


# ------------------------------------------------------------------------ pglite


def start_pglite(
    workdir: str | os.PathLike[str],
    modules: str | os.PathLike[str] = DEFAULT_PGLITE_MODULES,
    *,
    timeout: float = 60.0,
) -> Service:
    """In-memory WASM PostgreSQL 17 + TimescaleDB (tools/pglite/server.mjs) on a free port.

    It serves ONE connection at a time (others queue) and has no background workers;
    ``COPY ... FROM STDIN`` crashes it. For proving DDL and queries, not for load.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    node = shutil.which("node")
    if not node:
        raise ServiceError("node not found on PATH (run scripts/bootstrap.sh)")
    if not (Path(modules) / "@unni-craftsman" / "pglite").is_dir():
        raise ServiceError(f"no WASM TimescaleDB in {modules} (run scripts/bootstrap.sh)")
    script = REPO_ROOT / "tools" / "pglite" / "server.mjs"

    def attempt(n: int) -> Service:
        t0 = time.monotonic()
        port = free_port()
        d = _fresh_dir(workdir / f"pglite-{port}")
        log_path = d / "server.log"
        env = {**os.environ, "CIVICPULSE_PGLITE_MODULES": str(Path(modules).resolve())}
        proc = _spawn(
            [node, str(script), str(port)], workdir=workdir, log_path=log_path, cwd=d, env=env
        )
        try:
            _wait_until(
                lambda: f"listening {port}" in log_path.read_text(errors="replace"),
                proc,
                timeout,
                "pglite",
                log_path,
            )
        except ServiceError:
            _abort(proc, workdir / "pids")
            raise
        return Service(
            name="pglite",
            url=f"postgresql://postgres:any@{HOST}:{port}/postgres?sslmode=disable&gssencmode=disable",
            port=port,
            proc=proc,
            log_path=log_path,
            workdir=d,
            pids_file=workdir / "pids",
            stop_timeout=10.0,
            startup_seconds=time.monotonic() - t0,
        )

    return _with_retries("pglite", 3, attempt)


# ------------------------------------------------------------------------ CLI

ENV_NAMES = {
    "mosquitto": "CIVICPULSE_MQTT_URL",
    "kafka": "CIVICPULSE_KAFKA_BOOTSTRAP",
    "postgres": "CIVICPULSE_DATABASE_URL",
}


def start(name: str, workdir: Path, libs_dir: Path = DEFAULT_KAFKA_LIBS) -> Service:
    if name == "mosquitto":
        return start_mosquitto(workdir)
    if name == "postgres":
        return start_postgres(workdir)
    if name == "kafka":
        return start_kafka(workdir, libs_dir)
    if name == "pglite":
        return start_pglite(workdir)
    raise ValueError(f"unknown service {name!r}")


def start_many(
    names: Sequence[str], workdir: Path, libs_dir: Path = DEFAULT_KAFKA_LIBS
) -> dict[str, Service]:
    """Start several services in parallel threads; on any failure stop the others and raise."""
    results: dict[str, Service] = {}
    errors: dict[str, BaseException] = {}

    def run(name: str) -> None:
        try:
            results[name] = start(name, workdir, libs_dir)
        except BaseException as e:
            errors[name] = e

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        for svc in results.values():
            svc.stop()
        raise next(iter(errors.values()))
    return {n: results[n] for n in names}


def _cmd_up(args: argparse.Namespace) -> int:
    workdir = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="civicpulse-devstack-"))
    workdir.mkdir(parents=True, exist_ok=True)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    stop_event = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop_event.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"# devstack: starting {', '.join(names)} in {workdir}", file=sys.stderr, flush=True)
    try:
        services = start_many(names, workdir, Path(args.libs))
    except ServiceError as e:
        print(f"# devstack: {e}", file=sys.stderr, flush=True)
        return 1
    for name, svc in services.items():
        print(
            f"# {name}: pid {svc.pid}, started in {svc.startup_seconds:.1f}s, log {svc.log_path}",
            file=sys.stderr,
        )
        print(f"export {ENV_NAMES[name]}={svc.url}")
    print(f"export CIVICPULSE_DEVSTACK_DIR={workdir}")
    sys.stdout.flush()
    sys.stderr.flush()
    rc = 0
    try:
        while not stop_event.wait(1.0):
            dead = [s for s in services.values() if not s.alive()]
            if dead:
                for s in dead:
                    print(
                        f"# devstack: {s.name} exited ({s.proc.returncode}):\n{s.log_tail()}",
                        file=sys.stderr,
                    )
                rc = 1
                break
    finally:
        for svc in services.values():
            svc.stop()
        print("# devstack: stopped", file=sys.stderr, flush=True)
    return rc


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.devstack",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="cmd", required=True)
    up = sub.add_parser("up", help="start services, print env exports, wait for SIGTERM/SIGINT")
    up.add_argument("--dir", help="work directory (default: a new temp dir)")
    up.add_argument("--libs", default=str(DEFAULT_KAFKA_LIBS), help="Kafka jars directory")
    up.add_argument(
        "--only",
        default="mosquitto,postgres,kafka",
        help="comma-separated subset of mosquitto,postgres,kafka",
    )
    args = parser.parse_args(argv)
    if args.cmd == "up":
        return _cmd_up(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
