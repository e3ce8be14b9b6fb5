"""PostgreSQL 15 for tests: start_postgres() runs initdb and a postmaster on a free port."""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from .common import (
    HOST,
    Service,
    ServiceError,
    _abort,
    _fresh_dir,
    _run_tracked,
    _spawn,
    _wait_until,
    _with_retries,
    free_port,
)

PG_BIN_DEFAULT = Path("/usr/lib/postgresql/15/bin")


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
