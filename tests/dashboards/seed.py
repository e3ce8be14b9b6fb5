"""A seeded civicpulse database for the panel tests: simulated fleet plus chosen edge cases."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg

from civicpulse.reports.waste import forecast_all, store_forecasts
from rules.alerts import Alert, AlertStatus, Severity
from rules.thresholds import Thresholds
from sensors.catalogue import KINDS
from sensors.deadletter import DeadLetter
from sensors.reading import Reading
from simulator.fleet import Fleet
from storage import migrate, publish_thresholds
from storage.alerts_store import (
    deliver_due,
    enqueue_notifications,
    save_alerts,
)
from storage.deadletter_store import DeadLetterStore
from storage.readings_store import ReadingStore
from tests.storage.conformance.seed import insert_batches

HOURS = 8  # of simulated history before "now" (small: the WASM server loads ~300 rows/s)
STALE_SENSOR_GAP = timedelta(hours=3)
CENTRES = {"aberdeen": (57.15, -2.11), "edinburgh": (55.95, -3.19)}


@dataclass(frozen=True)
class Seeded:
    """What the seed put in, for the tests' expectations."""

    url: str
    now: datetime
    sensors: tuple[str, ...]
    stale_sensor: str
    flat_sensor: str
    low_battery_bin: str
    full_bin: str


def _reading(
    sensor: str, council: str, kind: str, metric: str, value: float, t: datetime
) -> Reading:
    unit = KINDS[kind].metrics[metric].unit
    return Reading(
        sensor_id=sensor,
        council=council,
        kind=kind,
        metric=metric,
        value=value,
        unit=unit,
        time=t,
        received_at=t + timedelta(seconds=2),
    )


def fleet_readings(now: datetime) -> tuple[list[Reading], Fleet]:
    """The simulator's fleet of 12 sensors, each reporting every ~150 s for HOURS hours."""
    fleet = Fleet.build(12, seed=7)
    start = now - timedelta(hours=HOURS)
    step = 150.0 / len(fleet.sensors)  # every sensor reports every 150 s
    n = int(HOURS * 3600 / step)
    out = []
    for e in fleet.emissions(n, start=start, rate=1.0 / step):
        for s in e.samples:
            out.append(_reading(e.sensor_id, e.council, e.kind, s.metric, float(s.value), s.time))
    return out, fleet


def edge_cases(now: datetime) -> tuple[list[Reading], dict[str, str]]:
    """A stale sensor, a flatlined one, a bin with a low battery, a bin filling fast."""
    extra: list[Reading] = []
    t0 = now - timedelta(hours=6)
    for i in range(72):  # 6 h, every 5 min: same temperature → flatline
        extra.append(
            _reading(
                "aq-flat",
                "aberdeen",
                "air_quality",
                "temperature",
                11.5,
                t0 + timedelta(minutes=5 * i),
            )
        )
        extra.append(
            _reading(
                "aq-flat",
                "aberdeen",
                "air_quality",
                "pm2_5",
                5.0 + i % 7,
                t0 + timedelta(minutes=5 * i),
            )
        )
    for i in range(48):  # a bin filling ~1.5 %/h since a collection 12 h ago, battery low
        t = now - timedelta(hours=12) + timedelta(minutes=15 * i)
        extra.append(
            _reading("bin-fast", "edinburgh", "waste_bin", "fill_level", 60.0 + 0.375 * i, t)
        )
        extra.append(_reading("bin-fast", "edinburgh", "waste_bin", "battery", 12.0, t))
        extra.append(
            _reading(
                "bin-fast",
                "edinburgh",
                "waste_bin",
                "temperature",
                14.0 + (50.0 if i == 47 else 0.0),
                t,
            )
        )
    for i in range(24):  # before the collection: nearly full
        extra.append(
            _reading(
                "bin-fast",
                "edinburgh",
                "waste_bin",
                "fill_level",
                95.0,
                now - timedelta(hours=18) + timedelta(minutes=15 * i),
            )
        )
    return extra, {"flat": "aq-flat", "bin": "bin-fast"}


def register_history(now: datetime, readings: list[Reading]) -> list[Reading]:
    """Earlier import-register reads of each meter: the previous two months and a year ago."""
    extra = []
    for meter in sorted({r.sensor_id for r in readings if r.metric == "energy_import"}):
        first = min(
            (r for r in readings if r.sensor_id == meter and r.metric == "energy_import"),
            key=lambda r: r.time,
        )
        for back, used in ((2, 2400.0), (1, 1200.0)):  # ~1,200 kWh a month before
            t = now.replace(day=1, hour=12, minute=0, second=0) - timedelta(days=28 * back)
            extra.append(
                _reading(
                    meter, first.council, "energy_meter", "energy_import", first.value - used, t
                )
            )
        last_year = now.replace(year=now.year - 1, day=1, hour=12, minute=0, second=0)
        for day, register in ((0, 5_000.0), (20, 6_500.0)):  # baseline: 1,500 kWh that month
            extra.append(
                _reading(
                    meter,
                    first.council,
                    "energy_meter",
                    "energy_import",
                    register,
                    last_year + timedelta(days=day),
                )
            )
    return extra


def _insert_readings(url: str, readings: list[Reading]) -> None:
    """For the WASM TimescaleDB (no COPY): INSERT-staged batches of 2,000 readings."""
    insert_batches(url, (readings[i : i + 2000] for i in range(0, len(readings), 2000)))


def seed(url: str, now: datetime | None = None, *, copy: bool = True) -> Seeded:
    """Migrate ``url`` and fill it; returns what was put in. ``copy=False``: INSERTs only."""
    now = (now or datetime.now(UTC)).replace(microsecond=0)
    migrate(url)
    readings, fleet = fleet_readings(now)
    stale = next(s for s in fleet.sensors if s.kind == "air_quality")
    readings = [
        r for r in readings if r.sensor_id != stale.sensor_id or r.time < now - STALE_SENSOR_GAP
    ]
    extra, names = edge_cases(now)
    extra += register_history(now, readings)
    batch = readings + extra
    if copy:
        store = ReadingStore(url)
        try:
            for i in range(0, len(batch), 5000):
                store.write(batch[i : i + 5000])
        finally:
            store.close()
    else:
        _insert_readings(url, batch)
    letters = DeadLetterStore(url)
    try:
        letters.write(
            [
                (
                    DeadLetter(
                        reason=reason,
                        detail=f"seeded {reason}",
                        payload=b"{not json",
                        mqtt_topic="civicpulse/aberdeen/air_quality/aq-0001",
                        received_at=now - timedelta(minutes=7 * i),
                    ),
                    f"seed-{i}",
                )
                for i, reason in enumerate(["malformed_json", "out_of_range", "malformed_json"])
            ]
        )
    finally:
        letters.close()
    sensors = sorted({r.sensor_id for r in readings + extra})
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        publish_thresholds(cur, Thresholds())  # what a running engine's first tick does
        for i, sensor_id in enumerate(sensors):
            council = (
                "edinburgh"
                if sensor_id == "bin-fast"
                else next(
                    (s.council for s in fleet.sensors if s.sensor_id == sensor_id), "aberdeen"
                )
            )
            lat, lon = CENTRES[council]
            cur.execute(
                "INSERT INTO sensor_sites (sensor_id, council, site, ward, threshold_pct)"
                " VALUES (%s, %s, %s, %s, %s)",
                (
                    sensor_id,
                    council,
                    f"Site {i + 1}",
                    f"Ward {1 + i % 3}",
                    75.0 if sensor_id == "bin-fast" else None,
                ),
            )
            cur.execute(
                "INSERT INTO sensor_locations (sensor_id, latitude, longitude) VALUES (%s, %s, %s)",
                (sensor_id, lat + 0.01 * i, lon + 0.01 * i),
            )
        saved = save_alerts(
            cur,
            [
                Alert(
                    None,
                    "edinburgh",
                    "bin-fast",
                    "bin-fast",
                    "waste_bin",
                    "bin_fire_risk",
                    Severity.CRITICAL,
                    AlertStatus.OPEN,
                    now - timedelta(minutes=10),
                    now,
                    details={"temperature": 64.0},
                ),
                Alert(
                    None,
                    stale.council,
                    stale.sensor_id,
                    stale.sensor_id,
                    "air_quality",
                    "sensor_stale",
                    Severity.WARNING,
                    AlertStatus.ACKNOWLEDGED,
                    now - timedelta(hours=2),
                    now,
                    acknowledged_at=now - timedelta(hours=1),
                ),
                Alert(
                    None,
                    "aberdeen",
                    "aq-flat",
                    "aq-flat",
                    "air_quality",
                    "sensor_flatline",
                    Severity.WARNING,
                    AlertStatus.RESOLVED,
                    now - timedelta(hours=5),
                    now - timedelta(hours=4),
                    resolved_at=now - timedelta(hours=4),
                    resolved_by="auto",
                ),
            ],
        )
    with psycopg.connect(url) as conn:  # the webhook outbox: one given up on, one pending
        with conn.cursor() as cur:
            enqueue_notifications(cur, [(a, "opened") for a in saved[:2]])
            # queued at the seed's "now", not the server's clock: both databases are seeded
            # minutes apart in a test run, and the undelivered panel shows these times
            cur.execute(
                "UPDATE alert_notifications SET created_at = %s, next_attempt_at = %s",
                (now - timedelta(seconds=1), now - timedelta(seconds=1)),
            )
        conn.commit()

        def refuse(body: dict[str, object]) -> None:
            raise ConnectionRefusedError("seeded receiver is down")

        deliver_due(conn, refuse, now + timedelta(seconds=1), limit=1, max_attempts=1)
    with psycopg.connect(url) as conn:  # what `civicpulse waste forecast` does on its timer
        found, _ = forecast_all(conn, now + timedelta(seconds=1))
        store_forecasts(conn, found)
    return Seeded(
        url, now, tuple(sensors), stale.sensor_id, names["flat"], names["bin"], names["bin"]
    )
