"""Mosquitto (MQTT broker) for tests: start_mosquitto() on a free loopback port."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import struct
import time
from collections.abc import Sequence
from pathlib import Path

from .common import (
    HOST,
    Service,
    ServiceError,
    _abort,
    _fresh_dir,
    _spawn,
    _wait_until,
    _with_retries,
    free_port,
    tail,
)


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


def start_mosquitto(
    workdir: str | os.PathLike[str],
    *,
    timeout: float = 20.0,
    extra_conf: Sequence[str] = (),
) -> Service:
    """Mosquitto on a free port; ``extra_conf`` lines are appended to (and override) its config."""
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
            # Like the compose broker: a larger packet closes the connection (message_size_limit
            # would PUBACK it and drop it silently).
            "max_packet_size 4194304",
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
        lines += [line.replace("{dir}", str(d)) for line in extra_conf]
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
