"""Embedded PostgreSQL (pgserver) in a data directory, reused after crashes, stopped on exit."""

from __future__ import annotations

import json
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from storage import StoreUnavailable, connect

log = logging.getLogger(__name__)

DATABASE = "civicpulse"


@dataclass(slots=True)
class EmbeddedPostgres:
    """A running pgserver instance and the URL of the ``civicpulse`` database in it."""

    pgdata: Path
    url: str
    _server: Any

    def stop(self) -> None:
        """Stop the server if this process holds the last handle to it (pgserver's rule)."""
        self._server.cleanup()


def _forget_dead_handles(pgdata: Path) -> None:
    """Drop pids of processes that died (``kill -9``) from pgserver's handle list.

    pgserver stops the server when its *last* handle closes; a dead process's pid left in
    ``.handle_pids.json`` would otherwise keep the server running forever after a clean stop.
    """
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    try:
        pids = json.loads(handles.read_text())
    except ValueError:
        pids = []
    alive = [p for p in pids if isinstance(p, int) and psutil.pid_exists(p)]
    if alive != pids:
        handles.write_text(json.dumps(alive))


def start_embedded_postgres(data_dir: Path) -> EmbeddedPostgres:
    """Start (or join) PostgreSQL in ``data_dir/pgdata``; create the ``civicpulse`` database."""
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = (data_dir / "pgdata").resolve()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        from pgserver.postgres_server import PostgresServer, get_server

        with PostgresServer._lock:  # the lock pgserver itself takes
            if pgdata.exists():
                _forget_dead_handles(pgdata)
        try:
            server = get_server(pgdata, cleanup_mode="stop")
        except Exception as exc:  # pgserver raises bare subprocess/assert errors
            log_file = pgdata / "log"
            raise StoreUnavailable(
                f"embedded PostgreSQL did not start in {pgdata} ({exc}); see {log_file}"
            ) from exc
    with connect(server.get_uri(), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
        if exists.fetchone() is None:
            conn.execute(f"CREATE DATABASE {DATABASE}")
    return EmbeddedPostgres(pgdata, server.get_uri(DATABASE), server)
