"""Open-data test fixtures: a database seeded with readings up to now, and a server on it.

``opendata_seed`` (session) the seed (:class:`OpenDataSeed`): readings that end just before the
                  seeding moment (so statuses are live and the DAQI "now" has data), sites and
                  locations; expectations are computed from these rows, never from the API.
``opendata_db``   (session) URL of a migrated database loaded with the seed by the readings store.
``opendata_server`` (session) base URL of a real uvicorn server (``api_server_factory`` of
                  tests/api/conftest.py) on ``opendata_db``, ``tenancy=False``.
Test modules import the fixtures by name; one database and one server serve them all.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from rules.thresholds import Thresholds
from sensors.catalogue import KINDS
from sensors.reading import Reading
from storage.migrations import migrate
from storage.readings_store import ReadingStore
from storage.rule_settings import publish_thresholds
from tests.api.sharing_seed import register_and_open

SPAN = timedelta(hours=30)


@dataclass(frozen=True)
class SeedSensor:
    """A seeded device: where it is (``None``: no location row) and its reporting interval."""

    sensor_id: str
    council: str
    kind: str
    site: str
    location: tuple[float, float] | None  # (lat, lon)
    interval_s: int
    level: float  # scales the pollutant values: some sites are dirtier


SENSORS = (
    SeedSensor("od-aq-1", "aberdeen", "air_quality", "Union Street", (57.1445, -2.1080), 150, 1.0),
    SeedSensor("od-aq-2", "aberdeen", "air_quality", "Union Street", (57.1447, -2.1075), 150, 1.2),
    SeedSensor("od-aq-3", "aberdeen", "air_quality", "Wellington Rd", (57.1230, -2.0900), 150, 0.6),
    SeedSensor("od-aq-4", "leeds", "air_quality", "Headingley", (53.8190, -1.5760), 150, 3.0),
    SeedSensor("od-bin-1", "aberdeen", "waste_bin", "Castlegate", (57.1490, -2.0930), 900, 1.0),
    SeedSensor("od-bin-2", "leeds", "waste_bin", "Briggate", (53.7990, -1.5430), 900, 1.0),
    SeedSensor("od-em-1", "leeds", "energy_meter", "Civic Hall", None, 1800, 1.0),
)

# (low, high) of each metric's seeded values before the sensor's level.
_RANGES = {
    "pm2_5": (4.0, 30.0),
    "pm10": (8.0, 40.0),
    "no2": (10.0, 90.0),
    "o3": (20.0, 60.0),
    "so2": (5.0, 120.0),
    "temperature": (2.0, 18.0),
    "humidity": (40.0, 95.0),
    "fill_level": (0.0, 100.0),
    "battery": (60.0, 100.0),
    "tilt": (0.0, 1.0),
    "fire": (0.0, 1.0),
    "energy_import": (1000.0, 2000.0),
    "power": (-500.0, 4000.0),
    "energy_export": (0.0, 300.0),
}


@dataclass(frozen=True)
class OpenDataSeed:
    """The seed: sensors and readings (sorted by sensor, metric, time); ``end`` is its now."""

    sensors: tuple[SeedSensor, ...]
    readings: tuple[Reading, ...]
    end: datetime

    def sensor(self, sensor_id: str) -> SeedSensor:
        return next(s for s in self.sensors if s.sensor_id == sensor_id)


def _value(rng: random.Random, metric: str, level: float) -> float:
    lo, hi = _RANGES[metric]
    if metric in ("tilt", "fire"):
        return float(rng.random() < 0.05)
    v = rng.uniform(lo, hi)
    if metric in ("pm2_5", "pm10", "no2", "o3", "so2"):
        v *= level
    return round(v, 4) if metric != "power" else v  # some full-precision doubles too


def make_seed(end: datetime, seed: int = 19) -> OpenDataSeed:
    """Readings from ``end - SPAN`` to just before ``end``; od-aq-3 misses half its samples
    in three hours (below DEFRA's 75 % capture), at sub-second offsets."""
    rng = random.Random(seed)
    readings: list[Reading] = []
    for n, s in enumerate(SENSORS):
        kind = KINDS[s.kind]
        offset = timedelta(seconds=n * 7 + 1, microseconds=137_000 * (n + 1))
        steps = int(SPAN.total_seconds()) // s.interval_s
        for metric in kind.metrics.values():
            for i in range(steps):
                t = end - SPAN + i * timedelta(seconds=s.interval_s) + offset
                if t >= end:
                    break
                gap = end - timedelta(hours=9) <= t < end - timedelta(hours=6)
                if s.sensor_id == "od-aq-3" and gap and i % 2:
                    continue
                readings.append(
                    Reading(
                        sensor_id=s.sensor_id,
                        council=s.council,
                        kind=s.kind,
                        metric=metric.name,
                        value=_value(rng, metric.name, s.level),
                        unit=metric.unit,
                        time=t,
                        received_at=t + timedelta(seconds=1),
                    )
                )
    readings.sort(key=lambda r: (r.sensor_id, r.metric, r.time))
    return OpenDataSeed(SENSORS, tuple(readings), end)


def load_seed(url: str, seed: OpenDataSeed) -> None:
    """Readings through the readings store (which keeps the rollups); sites, locations by SQL."""
    store = ReadingStore(url)
    try:
        batch = sorted(seed.readings, key=lambda r: r.time)
        for i in range(0, len(batch), 2_000):
            store.write(batch[i : i + 2_000])
    finally:
        store.close()
    with psycopg.connect(url, autocommit=True) as conn:
        with conn.cursor() as cur:
            publish_thresholds(cur, Thresholds())  # what a running engine's first tick does
        for s in seed.sensors:
            conn.execute(
                "INSERT INTO sensor_sites (sensor_id, council, site, ward) VALUES (%s, %s, %s, %s)",
                (s.sensor_id, s.council, s.site, f"{s.council}-central"),
            )
            if s.location is not None:
                conn.execute(
                    "INSERT INTO sensor_locations (sensor_id, latitude, longitude)"
                    " VALUES (%s, %s, %s)",
                    (s.sensor_id, *s.location),
                )


_SHARED: dict[str, Any] = {}


def _shared(key: str, make: Callable[[], Any]) -> Any:
    if key not in _SHARED:
        _SHARED[key] = make()
    return _SHARED[key]


@pytest.fixture(scope="session")
def opendata_seed() -> OpenDataSeed:
    end = datetime.now(UTC).replace(microsecond=0)
    return _shared("seed", lambda: make_seed(end))  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
def opendata_db(database_url: str, opendata_seed: OpenDataSeed) -> Iterator[str]:
    if "db" in _SHARED:  # another test module made it; its fixture drops it
        yield _SHARED["db"]
        return
    name = f"opendata_{uuid.uuid4().hex}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))
    _SHARED["db"] = url
    try:
        migrate(url)
        load_seed(url, opendata_seed)
        register_and_open(url, {s.council for s in opendata_seed.sensors})
        yield url
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def opendata_server(opendata_db: str, api_server_factory: Callable[..., str]) -> str:
    return _shared(  # type: ignore[no-any-return]
        "server", lambda: api_server_factory(database_url=opendata_db)
    )
