"""Start services by name: start() one, start_many() several in parallel threads."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from .common import Service
from .kafka import DEFAULT_KAFKA_LIBS, start_kafka
from .mosquitto import start_mosquitto
from .pglite import start_pglite
from .postgres import start_postgres

ENV_NAMES = {
    "mosquitto": "CIVICPULSE_MQTT_URL",
    "kafka": "CIVICPULSE_KAFKA_BOOTSTRAP",
    "postgres": "CIVICPULSE_DATABASE_URL",
    "pglite": "CIVICPULSE_TIMESCALE_URL",
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
