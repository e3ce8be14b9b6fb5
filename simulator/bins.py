"""Litter-bin model: fill rises at a street-dependent rate and drops on collection rounds."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime

from simulator.profiles import bin_profile, inverse_cdf
from simulator.weather import ambient_mean, daylight

BIN_METRICS = ("fill_level", "temperature", "battery", "tilt", "fire")
_DIURNAL = 0.6  # litter goes in faster by day: rate x (1 + 0.6 cos(2 pi (h - 14) / 24))
_OMEGA = 2 * math.pi / 86400.0


@dataclass(frozen=True, slots=True)
class BinParams:
    """Per-bin parameters; the collection schedule is a pure function of time."""

    street: str
    interval_h: float  # hours between collection rounds
    phase_h: float  # rounds happen at phase_h + k * interval_h hours after the Unix epoch
    fill_scale: float  # street's typical fill at collection / the city-wide median
    temp_offset: float
    battery_start: float  # percent at the start of a run
    drain_per_day: float  # percent per day

    @staticmethod
    def draw(rng: random.Random) -> BinParams:
        """Random parameters drawn from the Edinburgh collection data."""
        prof = bin_profile()
        street = prof.streets[rng.randrange(len(prof.streets))]
        # Street's median interval with a bin-to-bin spread, kept to the central 90 % of the data.
        lo, hi = prof.interval_quantiles[1], prof.interval_quantiles[-2]
        interval = street.median_interval_h * math.exp(rng.gauss(0.0, 0.25))
        return BinParams(
            street=street.name,
            interval_h=round(min(max(interval, lo), hi), 3),
            phase_h=round(rng.uniform(0.0, interval), 3),
            fill_scale=round(street.median_fill_pct / prof.median_fill_pct, 4),
            temp_offset=round(rng.uniform(-0.5, 1.5), 2),
            battery_start=round(rng.uniform(55.0, 100.0), 2),
            drain_per_day=round(rng.uniform(0.02, 0.08), 4),
        )


def _litter_clock(epoch_s: float) -> float:
    """Integral of the diurnal litter weight: seconds of 'average-rate' filling since the epoch."""
    return epoch_s + _DIURNAL / _OMEGA * math.sin(_OMEGA * (epoch_s - 14 * 3600))


class BinModel:
    """One bin; :meth:`fill` is pure in time, the other metrics add small sensor noise."""

    def __init__(
        self, params: BinParams, council: str, rng: random.Random, seed_key: str, t0: datetime
    ) -> None:
        self.p = params
        self.council = council
        self.rng = rng
        self.seed_key = seed_key
        self.t0 = t0.timestamp()
        self._cycle: tuple[int, float, float] | None = None

    def cycle(self, epoch_s: float) -> int:
        """Index of the collection round that last emptied the bin before ``epoch_s``."""
        return math.floor((epoch_s / 3600.0 - self.p.phase_h) / self.p.interval_h)

    def collection_time(self, k: int) -> float:
        """Unix seconds of collection round ``k``."""
        return (self.p.phase_h + k * self.p.interval_h) * 3600.0

    def _cycle_params(self, k: int) -> tuple[float, float]:
        if self._cycle is None or self._cycle[0] != k:
            r = random.Random(f"{self.seed_key}/cycle/{k}")
            target = inverse_cdf(bin_profile().fill_quantiles, r.uniform(0.05, 1.0))
            target = min(max(target * self.p.fill_scale, 20.0), 100.0)
            start = r.uniform(0.0, 5.0)
            span = _litter_clock(self.collection_time(k + 1)) - _litter_clock(
                self.collection_time(k)
            )
            self._cycle = (k, start, (target - start) / span)
        return self._cycle[1], self._cycle[2]

    def fill(self, epoch_s: float) -> float:
        """Fill level percent at ``epoch_s``: emptied to 0-5 % at each round, then rising."""
        k = self.cycle(epoch_s)
        start, rate = self._cycle_params(k)
        elapsed = _litter_clock(epoch_s) - _litter_clock(self.collection_time(k))
        return float(round(min(max(start + rate * elapsed, 0.0), 100.0), 1))

    def values(self, t: datetime) -> dict[str, float | bool]:
        """All five metrics at ``t`` (flags as booleans)."""
        ts = t.timestamp()
        sun = 4.0 * daylight(t)  # a dark plastic bin warms in the sun
        temp = ambient_mean(t, self.council) + self.p.temp_offset + sun + self.rng.gauss(0.0, 0.3)
        days = max(ts - self.t0, 0.0) / 86400.0
        battery = max(self.p.battery_start - self.p.drain_per_day * days, 0.0)
        return {
            "fill_level": self.fill(ts),
            "temperature": float(round(min(max(temp, -40.0), 60.0), 2)),
            "battery": float(round(battery, 2)),
            "tilt": False,
            "fire": False,
        }
