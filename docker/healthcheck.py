"""Container healthcheck: can this process reach the services it needs (TCP connect)?

``registry`` is no endpoint but the registry-sync loop's heartbeat: its files in
``REGISTRY_SYNC_DIR`` are rewritten on every successful pass, so they must be younger than
three passes (and at least a minute).
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883, "tcp": 1883, "postgresql": 5432, "postgres": 5432}


def endpoints(service: str, environ: dict[str, str]) -> list[tuple[str, int]]:
    """Host/port pairs of ``service`` (mqtt, kafka or database) from CIVICPULSE_* variables."""
    if service == "kafka":
        servers = environ.get("CIVICPULSE_KAFKA_BOOTSTRAP", "127.0.0.1:9092").split(",")
        return [_host_port(s.strip(), 9092) for s in servers if s.strip()]
    variable = {"mqtt": "CIVICPULSE_MQTT_URL", "database": "CIVICPULSE_DATABASE_URL"}[service]
    parts = urlsplit(environ[variable])
    return [(parts.hostname or "127.0.0.1", parts.port or DEFAULT_PORTS.get(parts.scheme, 0))]


def _host_port(text: str, default_port: int) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return (host, int(port)) if host else (text, default_port)


def registry_problems(environ: dict[str, str], now: float | None = None) -> list[str]:
    """What is wrong with the registry-sync loop's files (empty when they are fresh)."""
    directory = Path(environ.get("REGISTRY_SYNC_DIR", "/var/lib/civicpulse-broker"))
    max_age = max(60.0, 3 * float(environ.get("REGISTRY_SYNC_INTERVAL_S", "10")))
    now = time.time() if now is None else now
    problems = []
    for name in ("passwd", "acl"):
        try:
            age = now - (directory / name).stat().st_mtime
        except OSError as exc:
            problems.append(f"registry {directory / name}: {exc.strerror or exc}")
            continue
        if age > max_age:
            problems.append(f"registry {directory / name}: last synced {age:.0f} s ago")
    return problems


def check(services: list[str], environ: dict[str, str], timeout: float = 3.0) -> list[str]:
    """Problems found (empty when every endpoint of every service accepts a connection)."""
    problems = []
    for service in services:
        if service == "registry":
            problems += registry_problems(environ)
            continue
        for host, port in endpoints(service, environ):
            try:
                socket.create_connection((host, port), timeout=timeout).close()
            except OSError as exc:
                problems.append(f"{service} {host}:{port}: {exc}")
    return problems


if __name__ == "__main__":
    found = check(sys.argv[1:], dict(os.environ))
    for line in found:
        print(line, file=sys.stderr)
    sys.exit(1 if found else 0)
