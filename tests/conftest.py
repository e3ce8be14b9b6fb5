"""Shared pytest fixtures: real MQTT (Mosquitto), Kafka and PostgreSQL for integration tests.

Fixtures
--------
``mqtt_url``        (session) ``mqtt://127.0.0.1:PORT``
``kafka_bootstrap`` (session) ``127.0.0.1:PORT``
``database_url``    (session) ``postgresql://postgres@127.0.0.1:PORT/civicpulse``
``services``        (session) an object with ``.mqtt_url``, ``.kafka_bootstrap``, ``.database_url``
``fresh_db``        (function) URL of a new, empty database, dropped after the test
``timescale_url``   (session) WASM PostgreSQL 17 + TimescaleDB (tools/pglite), empty database;
                    ONE connection at a time, no background workers, no COPY FROM STDIN
``fresh_timescale_url`` (function) the same, a new server per test (for tests that mutate)
``contract_dbs``    (session) PostgreSQL 15 and the WASM TimescaleDB, both migrated and loaded
                    with tests/storage/conformance/seed.py; run a dashboard's SQL on each of
                    ``contract_dbs.urls`` and compare with ``same_rows`` of
                    tests/storage/conformance/contract.py

If CIVICPULSE_MQTT_URL, CIVICPULSE_KAFKA_BOOTSTRAP and CIVICPULSE_DATABASE_URL are ALL set,
those services are used as they are. Otherwise each service is started on demand with
tools/devstack/ (a test that needs only PostgreSQL does not start Kafka) in a work dir under
CIVICPULSE_DEVSTACK_DIR (set by scripts/test.sh) and stopped at the end of the session.
A service that cannot start FAILS the tests that need it (with its log tail); nothing skips.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tools import devstack  # noqa: E402

if TYPE_CHECKING:
    from tests.storage.conformance.contract import ContractDatabases

ENV_VARS = {
    "mosquitto": "CIVICPULSE_MQTT_URL",
    "kafka": "CIVICPULSE_KAFKA_BOOTSTRAP",
    "postgres": "CIVICPULSE_DATABASE_URL",
}


@dataclass(frozen=True)
class Services:
    mqtt_url: str
    kafka_bootstrap: str
    database_url: str


class _Stack:
    """Starts devstack services lazily, once per session, and stops them at the end."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._services: dict[str, devstack.Service] = {}
        self._failures: dict[str, str] = {}
        self._workdir: Path | None = None
        self.external = all(os.environ.get(v) for v in ENV_VARS.values())

    @property
    def workdir(self) -> Path:
        if self._workdir is None:
            base = os.environ.get("CIVICPULSE_DEVSTACK_DIR")
            if base:
                Path(base).mkdir(parents=True, exist_ok=True)
            self._workdir = Path(tempfile.mkdtemp(prefix="devstack-", dir=base or None))
            # The `postgres` OS user (initdb/postgres run as it when we are root) must be able
            # to reach its data dir inside.
            os.chmod(self._workdir, 0o755)
        return self._workdir

    def url(self, name: str) -> str:
        return self.urls([name])[name]

    def urls(self, names: list[str]) -> dict[str, str]:
        if self.external and all(n in ENV_VARS for n in names):
            return {n: os.environ[ENV_VARS[n]] for n in names}
        with self._lock:
            failed = [n for n in names if n in self._failures]
            if failed:
                pytest.fail(self._failures[failed[0]], pytrace=False)
            missing = [n for n in names if n not in self._services]
            if missing:
                errors: list[str] = []
                threads = [
                    threading.Thread(target=self._start, args=(n, errors), daemon=True)
                    for n in missing
                ]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                if errors:
                    pytest.fail("\n\n".join(errors), pytrace=False)
            return {n: self._services[n].url for n in names}

    def _start(self, name: str, errors: list[str]) -> None:
        try:
            self._services[name] = devstack.start(name, self.workdir)
        except Exception as e:  # any failure to start is a test failure, never a skip
            msg = f"could not start {name} for the tests: {e}"
            self._failures[name] = msg
            errors.append(msg)

    def startup_report(self) -> str:
        return ", ".join(f"{n} {s.startup_seconds:.1f}s" for n, s in self._services.items())

    def close(self) -> None:
        with self._lock:
            for svc in list(self._services.values()):
                try:
                    svc.stop()
                except Exception as e:
                    print(f"devstack: stopping {svc.name} failed: {e}", file=sys.stderr)
            self._services.clear()
            if self._workdir is not None and not os.environ.get("CIVICPULSE_KEEP_DEVSTACK"):
                shutil.rmtree(self._workdir, ignore_errors=True)
                self._workdir = None


@pytest.fixture(scope="session")
def _devstack() -> Iterator[_Stack]:
    stack = _Stack()
    atexit.register(stack.close)  # also on an interrupted session
    try:
        yield stack
    finally:
        stack.close()


@pytest.fixture(scope="session")
def mqtt_url(_devstack: _Stack) -> str:
    return _devstack.url("mosquitto")


@pytest.fixture(scope="session")
def kafka_bootstrap(_devstack: _Stack) -> str:
    return _devstack.url("kafka")


@pytest.fixture(scope="session")
def database_url(_devstack: _Stack) -> str:
    return _devstack.url("postgres")


@pytest.fixture(scope="session")
def services(_devstack: _Stack) -> Services:
    # Start all three in parallel (the separate fixtures start them one at a time).
    urls = _devstack.urls(["mosquitto", "kafka", "postgres"])
    return Services(
        mqtt_url=urls["mosquitto"],
        kafka_bootstrap=urls["kafka"],
        database_url=urls["postgres"],
    )


@pytest.fixture
def fresh_db(database_url: str) -> Iterator[str]:
    """URL of a new, empty database on the test server; dropped after the test."""
    import psycopg

    name = f"test_{uuid.uuid4().hex}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(database_url)
    url = urlunsplit(parts._replace(path=f"/{name}"))
    try:
        yield url
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def timescale_url(_devstack: _Stack) -> str:
    """WASM TimescaleDB for the whole session (never skipped: a failed start fails)."""
    return _devstack.url("pglite")


@pytest.fixture
def fresh_timescale_url(_devstack: _Stack) -> Iterator[str]:
    """A WASM TimescaleDB server of its own, stopped after the test."""
    try:
        svc = devstack.start_pglite(_devstack.workdir)
    except devstack.ServiceError as e:
        pytest.fail(f"could not start the WASM TimescaleDB: {e}", pytrace=False)
    try:
        yield svc.url
    finally:
        svc.stop()


@pytest.fixture(scope="session")
def contract_dbs(database_url: str, timescale_url: str) -> Iterator[ContractDatabases]:
    """Both databases with the same seeded read contract (see tests/storage/conformance)."""
    import psycopg

    from storage.rollups import ROLLUPS
    from tests.storage.conformance.contract import build
    from tests.storage.conformance.seed import make_seed

    name = f"contract_{uuid.uuid4().hex}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    postgres = urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))
    try:
        yield build(postgres, timescale_url, make_seed(), ROLLUPS)
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


RINGS = ("core", "adapter", "integration")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test not marked for ring 2 or 3 is in ring 1: ``pytest -m core`` runs it alone."""
    for item in items:
        if not any(item.get_closest_marker(ring) for ring in RINGS):
            item.add_marker(pytest.mark.core)
