"""Per-meter hour-of-week baselines for a year, learnt by the alert rules' own learner."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from rules.energy_baseline import learn_profile
from rules.thresholds import Thresholds

_METERS = """
SELECT DISTINCT council, sensor_id FROM readings
 WHERE kind = 'energy_meter' AND metric = 'power' AND time >= %(start)s AND time < %(end)s
   AND (%(council)s::text IS NULL OR council = %(council)s)
 ORDER BY council, sensor_id
"""
_POWER = """
SELECT time, value FROM readings
 WHERE sensor_id = %s AND metric = 'power' AND time >= %s AND time < %s ORDER BY time
"""


@dataclass(frozen=True, slots=True)
class MeterBaseline:
    """One meter's learnt profile: hour of week (Monday 00:00 local = 0) → (watts, values)."""

    council: str
    sensor_id: str
    timezone: str
    profile: dict[int, tuple[float, int]]


def energy_baselines(
    conn: psycopg.Connection, year: int, thresholds: Thresholds, council: str | None = None
) -> list[MeterBaseline]:
    """Each meter's hour-of-week power baseline over ``year`` (UTC), learnt in time order.

    The learner and its weight (``energy.baseline_alpha``) and time zone
    (``energy.timezone``) are the energy alert rules' own, per council and sensor; unlike the
    rules, which skip readings they alerted on, the report learns from every reading.
    """
    start, end = datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
    meters = conn.execute(_METERS, {"start": start, "end": end, "council": council}).fetchall()
    out = []
    for meter_council, sensor_id in meters:
        params = thresholds.for_sensor(meter_council, sensor_id)
        tz, alpha = str(params["energy.timezone"]), float(params["energy.baseline_alpha"])
        rows = conn.execute(_POWER, (sensor_id, start, end)).fetchall()
        out.append(MeterBaseline(meter_council, sensor_id, tz, learn_profile(rows, tz, alpha)))
    return out
