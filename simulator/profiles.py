"""The real-data profiles the simulator's models draw from (package JSON in ``simulator/data``)."""

from __future__ import annotations

import bisect
import json
import math
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")


@dataclass(frozen=True, slots=True)
class AirSite:
    """Hour-of-day means (local, hour-beginning) and hourly log-noise of one reference site."""

    name: str
    weekday: dict[str, tuple[float, ...]]
    weekend: dict[str, tuple[float, ...]]
    log_sd: dict[str, float]
    ar1_hourly: dict[str, float]
    pm25_pm10_ratio: float

    def mean(self, metric: str, t: datetime) -> float:
        """Profile mean for ``metric`` at ``t``, linearly interpolated between hour centres."""
        local = t.astimezone(LONDON)
        x = local.hour + local.minute / 60 + local.second / 3600 - 0.5
        lo = math.floor(x)
        frac = x - lo
        table = (self.weekend if local.weekday() >= 5 else self.weekday)[metric]
        return table[lo % 24] * (1 - frac) + table[(lo + 1) % 24] * frac


@dataclass(frozen=True, slots=True)
class Street:
    """A street's typical collection interval and fill at collection (Edinburgh data)."""

    name: str
    collections: int
    median_interval_h: float
    median_fill_pct: float


@dataclass(frozen=True, slots=True)
class BinProfile:
    """Distributions of fill-at-collection and collection interval, and the streets."""

    fill_quantiles: tuple[float, ...]
    interval_quantiles: tuple[float, ...]
    streets: tuple[Street, ...]
    median_fill_pct: float
    median_interval_h: float


def inverse_cdf(cuts: tuple[float, ...], u: float) -> float:
    """Sample a distribution given by evenly spaced quantile cut points, at probability ``u``."""
    x = min(max(u, 0.0), 1.0) * (len(cuts) - 1)
    i = min(int(x), len(cuts) - 2)
    return cuts[i] + (cuts[i + 1] - cuts[i]) * (x - i)


def weighted_index(weights: list[float], u: float) -> int:
    """Index chosen with probability proportional to ``weights`` for uniform ``u``."""
    acc: list[float] = []
    total = 0.0
    for w in weights:
        total += w
        acc.append(total)
    return min(bisect.bisect_right(acc, u * total), len(weights) - 1)


def _load(name: str) -> Any:
    return json.loads(resources.files("simulator").joinpath("data", name).read_text("utf-8"))


@cache
def air_sites() -> tuple[AirSite, ...]:
    """The Aberdeen council reference sites, roadside first."""
    doc = _load("air_profile.json")
    return tuple(
        AirSite(
            name=name,
            weekday={m: tuple(v) for m, v in site["weekday"].items()},
            weekend={m: tuple(v) for m, v in site["weekend"].items()},
            log_sd=dict(site["log_sd"]),
            ar1_hourly=dict(site["ar1_hourly"]),
            pm25_pm10_ratio=float(site["pm25_pm10_ratio_median"]),
        )
        for name, site in doc["sites"].items()
    )


@cache
def sds011_log_sd() -> tuple[float, float]:
    """Median reading-to-reading log noise of the SDS011 nodes: (PM10, PM2.5)."""
    nodes = _load("air_profile.json")["sds011_noise"].values()
    p10 = sorted(n["pm10_log_sd"] for n in nodes)
    p25 = sorted(n["pm25_log_sd"] for n in nodes)
    return p10[len(p10) // 2], p25[len(p25) // 2]


@cache
def bin_profile() -> BinProfile:
    """The Edinburgh litter-bin collection profile."""
    doc = _load("bin_profile.json")
    fills = tuple(float(v) for v in doc["fill_at_collection_pct_quantiles"])
    intervals = tuple(float(v) for v in doc["collection_interval_h_quantiles"])
    return BinProfile(
        fill_quantiles=fills,
        interval_quantiles=intervals,
        streets=tuple(
            Street(s["street"], s["collections"], s["median_interval_h"], s["median_fill_pct"])
            for s in doc["streets"]
        ),
        median_fill_pct=inverse_cdf(fills, 0.5),
        median_interval_h=inverse_cdf(intervals, 0.5),
    )
