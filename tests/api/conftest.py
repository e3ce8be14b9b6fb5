"""API test fixtures: a migrated, seeded database and a real uvicorn server on 127.0.0.1.

Fixtures (all session-scoped: the seeded database is read-only for the API tests)
--------
``api_seed``            the seed rows (:class:`ApiSeed`): readings, sites, locations — the
                        truth tests compare against (compute expectations from these, never
                        from the API's own output)
``seeded_db``           URL of a database migrated by ``storage.migrations.migrate`` and loaded
                        with ``api_seed`` through the readings store (rollups kept by the store)
``api_server_factory``  ``start(public_url_path="", **ApiConfig fields) -> base URL``: another
                        real uvicorn server on a free port of 127.0.0.1 (stopped at session end)
``api_server``          base URL of the default server (``public_url`` == its own base URL,
                        through the tenancy views; the seed's councils share all with the public)
``api_client``          an ``httpx.Client`` on ``api_server``
"""

from __future__ import annotations

import math
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
import uvicorn

from api.app import ApiConfig, create_app
from sensors.catalogue import KINDS
from sensors.reading import Reading
from storage.migrations import migrate
from storage.readings_store import ReadingStore
from tests.api.sharing_seed import register_and_open

START = datetime(2026, 3, 2, tzinfo=UTC)
HOURS = 72  # three days of hourly readings per sensor and metric
# council → sensors: (sensor_id, kind, metrics, site, (lat, lon))
COUNCIL_SENSORS: dict[
    str, tuple[tuple[str, str, tuple[str, ...], str, tuple[float, float]], ...]
] = {
    "aberdeen": (
        (
            "abd-air-1",
            "air_quality",
            ("pm2_5", "no2", "temperature"),
            "Union Street",
            (57.1445, -2.1080),
        ),
        (
            "abd-air-2",
            "air_quality",
            ("pm2_5", "no2", "temperature"),
            "King Street",
            (57.1590, -2.0950),
        ),
        ("abd-bin-1", "waste_bin", ("fill_level", "battery"), "Union Street", (57.1445, -2.1080)),
        ("abd-nrg-1", "energy_meter", ("power",), "Town House", (57.1480, -2.0930)),
    ),
    "dundee": (
        (
            "dnd-air-1",
            "air_quality",
            ("pm2_5", "no2", "temperature"),
            "Seagate",
            (56.4620, -2.9670),
        ),
        ("dnd-bin-1", "waste_bin", ("fill_level", "battery"), "Murraygate", (56.4625, -2.9700)),
        ("dnd-nrg-1", "energy_meter", ("power",), "City Chambers", (56.4610, -2.9690)),
    ),
}


@dataclass(frozen=True)
class SeedSensor:
    """One seeded device and where it is."""

    sensor_id: str
    council: str
    kind: str
    metrics: tuple[str, ...]
    site: str
    latitude: float
    longitude: float


@dataclass(frozen=True)
class ApiSeed:
    """The seed: its sensors and readings (sorted by sensor, metric, time)."""

    sensors: tuple[SeedSensor, ...]
    readings: tuple[Reading, ...]
    start: datetime = START
    councils: tuple[str, ...] = field(default=tuple(COUNCIL_SENSORS))

    def sensor(self, sensor_id: str) -> SeedSensor:
        return next(s for s in self.sensors if s.sensor_id == sensor_id)

    def of(self, sensor_id: str, metric: str) -> list[Reading]:
        """One datastream's readings, oldest first."""
        return [r for r in self.readings if r.sensor_id == sensor_id and r.metric == metric]


def _value(metric: str, s: int, i: int) -> float:
    """A deterministic, varied value in the metric's plausible range."""
    wave = math.sin(i / 5.0 + s) + 0.5 * math.cos(i / 11.0 + 2 * s)
    base = {
        "pm2_5": (12.0, 6.0),
        "no2": (30.0, 15.0),
        "temperature": (8.0, 4.0),
        "fill_level": (50.0, 30.0),
        "battery": (80.0, 10.0),
        "power": (1500.0, 900.0),
    }[metric]
    return round(base[0] + base[1] * wave, 3)


def make_api_seed() -> ApiSeed:
    """Every sensor reports each metric hourly for three days, each at its own offset.

    Offsets carry milliseconds and microseconds (e.g. 61.250031 s) so that ids and time
    filters are tested at full timestamp precision.
    """
    sensors: list[SeedSensor] = []
    readings: list[Reading] = []
    n = 0
    for council, rows in COUNCIL_SENSORS.items():
        for sensor_id, kind, metrics, site, (lat, lon) in rows:
            sensors.append(SeedSensor(sensor_id, council, kind, metrics, site, lat, lon))
            offset = timedelta(seconds=61 * n + 7, microseconds=250_031 * (n + 1) % 1_000_000)
            for m, metric in enumerate(metrics):
                unit = KINDS[kind].metrics[metric].unit
                for i in range(HOURS):
                    t = START + timedelta(hours=i) + offset
                    readings.append(
                        Reading(
                            sensor_id=sensor_id,
                            council=council,
                            kind=kind,
                            metric=metric,
                            value=_value(metric, n * 3 + m, i),
                            unit=unit,
                            time=t,
                            received_at=t + timedelta(seconds=2),
                        )
                    )
            n += 1
    readings.sort(key=lambda r: (r.sensor_id, r.metric, r.time))
    return ApiSeed(tuple(sensors), tuple(readings))


def load_api_seed(url: str, seed: ApiSeed) -> None:
    """Readings through the project's readings store; sites and locations by plain SQL."""
    store = ReadingStore(url)
    try:
        batch = sorted(seed.readings, key=lambda r: r.time)
        for i in range(0, len(batch), 500):
            store.write(batch[i : i + 500])
    finally:
        store.close()
    with psycopg.connect(url, autocommit=True) as conn:
        for s in seed.sensors:
            conn.execute(
                "INSERT INTO sensor_sites (sensor_id, council, site, ward) VALUES (%s, %s, %s, %s)",
                (s.sensor_id, s.council, s.site, f"{s.council}-central"),
            )
            conn.execute(
                "INSERT INTO sensor_locations (sensor_id, latitude, longitude) VALUES (%s, %s, %s)",
                (s.sensor_id, s.latitude, s.longitude),
            )


@pytest.fixture(scope="session")
def api_seed() -> ApiSeed:
    return make_api_seed()


@pytest.fixture(scope="session")
def seeded_db(database_url: str, api_seed: ApiSeed) -> Iterator[str]:
    """Like ``fresh_db`` (tests/conftest.py) but once per session: the API only reads it."""
    name = f"api_{uuid.uuid4().hex}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))
    try:
        migrate(url)
        load_api_seed(url, api_seed)
        register_and_open(url, api_seed.councils)
        yield url
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class _ServerThread:
    """A real uvicorn server in a background thread, on a socket bound before it starts."""

    def __init__(self, config: ApiConfig, sock: socket.socket) -> None:
        self.sock = sock
        self.server = uvicorn.Server(
            uvicorn.Config(create_app(config), log_level="warning", lifespan="on")
        )
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [sock]}, daemon=True
        )

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the API server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


ServerFactory = Callable[..., str]


@pytest.fixture(scope="session")
def api_server_factory(seeded_db: str) -> Iterator[ServerFactory]:
    """``start(public_url_path="", **config)``: base URL of a new server on the seeded DB.

    ``public_url`` is the server's own ``http://127.0.0.1:PORT`` plus ``public_url_path``
    (unless ``public_url`` is given); other keyword arguments are ``ApiConfig`` fields.
    """
    servers: list[_ServerThread] = []

    def start(public_url_path: str = "", **config: Any) -> str:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        base = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config.setdefault("public_url", base + public_url_path)
        config.setdefault("tenancy", True)
        config.setdefault("database_url", seeded_db)
        server = _ServerThread(ApiConfig(**config), sock)
        server.start()
        servers.append(server)
        return base

    try:
        yield start
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="session")
def api_server(api_server_factory: ServerFactory) -> str:
    return api_server_factory()


@pytest.fixture(scope="session")
def api_client(api_server: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_server, timeout=30) as client:
        yield client
