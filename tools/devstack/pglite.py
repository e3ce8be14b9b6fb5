"""WASM PostgreSQL 17 + TimescaleDB for tests: start_pglite() runs tools/pglite/server.mjs."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from .common import (
    HOST,
    REPO_ROOT,
    Service,
    ServiceError,
    _abort,
    _fresh_dir,
    _spawn,
    _wait_until,
    _with_retries,
    free_port,
)

DEFAULT_PGLITE_MODULES = REPO_ROOT / ".cache" / "pglite" / "node_modules"


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
