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

from .cli import main
from .common import HOST, REPO_ROOT, Service, ServiceError, free_port, tail
from .kafka import DEFAULT_KAFKA_LIBS, kafka_metadata_brokers, start_kafka
from .mosquitto import start_mosquitto
from .pglite import DEFAULT_PGLITE_MODULES, start_pglite
from .postgres import PG_BIN_DEFAULT, start_postgres
from .stack import ENV_NAMES, start, start_many

__all__ = [
    "DEFAULT_KAFKA_LIBS",
    "DEFAULT_PGLITE_MODULES",
    "ENV_NAMES",
    "HOST",
    "PG_BIN_DEFAULT",
    "REPO_ROOT",
    "Service",
    "ServiceError",
    "free_port",
    "kafka_metadata_brokers",
    "main",
    "start",
    "start_kafka",
    "start_many",
    "start_mosquitto",
    "start_pglite",
    "start_postgres",
    "tail",
]
