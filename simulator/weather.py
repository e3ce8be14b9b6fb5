"""Shared physical building blocks: AR(1) noise, Scottish ambient temperature, daylight."""

from __future__ import annotations

import math
import random
from datetime import datetime

from simulator.profiles import LONDON

_TWO_PI = 2 * math.pi


class AR1:
    """Stationary AR(1) noise in continuous time: spread ``sd``, lag-1 h correlation."""

    __slots__ = ("_last", "rho_hourly", "sd", "z")

    def __init__(self, rng: random.Random, sd: float, rho_hourly: float) -> None:
        self.sd = sd
        self.rho_hourly = rho_hourly
        self.z = rng.gauss(0.0, sd)
        self._last: float | None = None

    def at(self, rng: random.Random, epoch_s: float) -> float:
        """Advance to ``epoch_s`` (non-decreasing) and return the current value."""
        if self._last is not None:
            rho = self.rho_hourly ** (max(epoch_s - self._last, 0.0) / 3600.0)
            self.z = rho * self.z + self.sd * math.sqrt(max(1.0 - rho * rho, 0.0)) * rng.gauss(0, 1)
        self._last = epoch_s
        return self.z


def local_hour(t: datetime) -> float:
    """Fractional hour of the day in UK local time (GMT/BST)."""
    local = t.astimezone(LONDON)
    return local.hour + local.minute / 60 + local.second / 3600


def is_weekend(t: datetime) -> bool:
    """Saturday or Sunday in UK local time."""
    return t.astimezone(LONDON).weekday() >= 5


def season(t: datetime) -> float:
    """+1 in mid-July, -1 in mid-January (cosine of the day of the year)."""
    return math.cos(_TWO_PI * (t.timetuple().tm_yday - 197) / 365.25)


def ambient_mean(t: datetime, council: str) -> float:
    """Expected air temperature (Cel) in a Scottish city: seasonal plus diurnal (peak 15:00)."""
    s = season(t)
    mean = 8.5 + 5.5 * s - (0.8 if council == "aberdeen" else 0.0)
    amplitude = 2.5 + 1.5 * s
    return mean + amplitude * math.cos(_TWO_PI * (local_hour(t) - 15.0) / 24)


def daylight(t: datetime) -> float:
    """Clear-sky solar output fraction 0..1 at about 56.5° N (bell between sunrise and sunset)."""
    s = season(t)
    day_len = 12.0 + 5.2 * s
    hour_utc = t.hour + t.minute / 60 + t.second / 3600
    x = (hour_utc - (12.2 - day_len / 2)) / day_len
    if not 0.0 < x < 1.0:
        return 0.0
    return float((0.55 + 0.45 * s) * math.sin(math.pi * x) ** 1.5)
