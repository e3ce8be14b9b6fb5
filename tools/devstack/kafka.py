"""Apache Kafka (KRaft, one node) for tests: start_kafka() from the jars in .cache/kafka/libs."""

from __future__ import annotations

import base64
import os
import shutil
import socket
import struct
import time
import uuid
from pathlib import Path

from .common import (
    HOST,
    REPO_ROOT,
    Service,
    ServiceError,
    _abort,
    _fresh_dir,
    _port_open,
    _run_tracked,
    _spawn,
    _wait_until,
    _with_retries,
    free_port,
)

DEFAULT_KAFKA_LIBS = REPO_ROOT / ".cache" / "kafka" / "libs"


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
