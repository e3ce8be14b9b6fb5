"""Building electricity meter model: working-hours load, optional solar, integrated registers."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import UTC, datetime

from simulator.weather import AR1, daylight, is_weekend, local_hour

METER_METRICS = ("energy_import", "power", "energy_export")


@dataclass(frozen=True, slots=True)
class MeterParams:
    """Per-building parameters."""

    base_w: float  # night and weekend base load
    peak_w: float  # weekday working-hours load
    solar_w: float  # peak solar output, 0 when the building has no panels
    import_start_kwh: float
    export_start_kwh: float

    @property
    def has_solar(self) -> bool:
        """Whether the meter has an export register."""
        return self.solar_w > 0

    @staticmethod
    def draw(rng: random.Random) -> MeterParams:
        """A council building: library, school, depot or office block."""
        base = rng.uniform(1500.0, 15000.0)
        solar = rng.uniform(10000.0, 60000.0) if rng.random() < 0.4 else 0.0
        return MeterParams(
            base_w=round(base, 1),
            peak_w=round(base * rng.uniform(2.0, 4.5), 1),
            solar_w=round(solar, 1),
            import_start_kwh=round(rng.uniform(1e4, 5e5), 3),
            export_start_kwh=round(rng.uniform(0.0, 5e4), 3) if solar else 0.0,
        )


def occupancy(t: datetime) -> float:
    """0..1 working-hours weight: weekdays 08-18 full, half-hour ramps either side."""
    if is_weekend(t):
        return 0.0
    h = local_hour(t)
    return min(max(min((h - 7.5) * 2.0, (18.5 - h) * 2.0), 0.0), 1.0)


# Registers are a function of event time, not of when a run started: at a run's first
# reading they stand at their seeded start plus the most the meter could have counted since
# REGISTER_EPOCH at its ceiling power, then integrate the reported power. A later run (the
# demo restarted on the same data) therefore never starts below where an earlier run stopped,
# which the alert rules would rightly call an energy_register_reset.
REGISTER_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
MAX_LOAD_FACTOR = 1.5  # the load noise is capped here (5 standard deviations)


class MeterModel:
    """One meter; registers integrate the reported power over time (trapezoid rule)."""

    def __init__(self, params: MeterParams, rng: random.Random) -> None:
        self.p = params
        self.rng = rng
        self.load_noise = AR1(rng, 0.08, 0.85)
        self.cloud = AR1(rng, 1.0, 0.8)
        self.imported = params.import_start_kwh
        self.exported = params.export_start_kwh
        self._last: tuple[float, float] | None = None  # (epoch_s, power_w)

    def power(self, t: datetime) -> float:
        """Net active power in W at ``t`` (negative when solar exceeds the load)."""
        ts = t.timestamp()
        p = self.p
        noise = min(math.exp(self.load_noise.at(self.rng, ts)), MAX_LOAD_FACTOR)
        load = (p.base_w + (p.peak_w - p.base_w) * occupancy(t)) * noise
        solar = 0.0
        if p.has_solar:
            clear = 1.0 / (1.0 + math.exp(-self.cloud.at(self.rng, ts)))  # 0..1 cloud cover
            solar = p.solar_w * daylight(t) * (0.2 + 0.8 * clear)
        return float(round(load - solar, 1))

    def values(self, t: datetime) -> dict[str, float]:
        """Power and the cumulative registers (kWh) at ``t``."""
        ts = t.timestamp()
        watts = self.power(t)
        if self._last is None:
            hours = max((t - REGISTER_EPOCH).total_seconds(), 0.0) / 3600.0
            self.imported += self.p.peak_w * MAX_LOAD_FACTOR * hours / 1000.0
            self.exported += self.p.solar_w * hours / 1000.0
        else:
            last_ts, last_w = self._last
            hours = max(ts - last_ts, 0.0) / 3600.0
            self.imported += (max(last_w, 0.0) + max(watts, 0.0)) / 2 * hours / 1000.0
            self.exported += (max(-last_w, 0.0) + max(-watts, 0.0)) / 2 * hours / 1000.0
        self._last = (ts, watts)
        out = {"energy_import": float(round(self.imported, 4)), "power": watts}
        if self.p.has_solar:
            out["energy_export"] = float(round(self.exported, 4))
        return out
