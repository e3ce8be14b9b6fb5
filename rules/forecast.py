"""Bin fill forecasts: fill curves split at collections, Theil–Sen fits, a collection-due list."""

from __future__ import annotations

import itertools
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

import numpy as np

from rules.thresholds import DEFAULTS

# percent fill at which a bin is due: the collection alert rule's threshold
DEFAULT_THRESHOLD = float(DEFAULTS["waste.fill_threshold_pct"])
DEFAULT_MIN_DROP = 20.0  # percentage points a fill must fall, and stay down, to be a collection
MAX_FIT_POINTS = 600  # Theil–Sen is O(n^2): longer cycles are thinned evenly to this many
_WINDOW = 3  # reads before a drop whose median it must also undercut (spikes do not count)


@dataclass(frozen=True, slots=True)
class Cycle:
    """Fill reads (Unix seconds, percent) between two collections, in time order."""

    times: tuple[float, ...]
    fills: tuple[float, ...]

    @property
    def span_h(self) -> float:
        """Hours from the first to the last read."""
        return (self.times[-1] - self.times[0]) / 3600.0 if self.times else 0.0


def split_cycles(
    times: Sequence[datetime], fills: Sequence[float], min_drop: float = DEFAULT_MIN_DROP
) -> list[Cycle]:
    """Reads cut into fill cycles at collections.

    A collection is a step down of at least ``min_drop`` points, also below the median of
    the ``_WINDOW`` reads before it (so an up-spike is not one), after which the next read
    stays at least ``min_drop / 2`` below that median (so a down-spike is not one either).
    """
    if len(times) != len(fills):
        raise ValueError("times and fills differ in length")
    pairs = sorted((t.timestamp(), float(f)) for t, f in zip(times, fills, strict=True))
    xs = [p[0] for p in pairs]
    ys = [p[1] for p in pairs]
    cuts = [0]
    for i in range(1, len(ys)):
        if ys[i - 1] - ys[i] < min_drop:
            continue
        before = statistics.median(ys[max(cuts[-1], i - _WINDOW) : i])
        stays_down = i + 1 == len(ys) or before - ys[i + 1] >= min_drop / 2
        if before - ys[i] >= min_drop and stays_down:
            cuts.append(i)
    cuts.append(len(ys))
    return [Cycle(tuple(xs[a:b]), tuple(ys[a:b])) for a, b in itertools.pairwise(cuts) if b > a]


def theil_sen(x: Sequence[float], y: Sequence[float]) -> tuple[float, float]:
    """Theil–Sen line ``y = intercept + slope * x``: median pairwise slope, median intercept."""
    xa = np.asarray(x, dtype=np.float64)
    ya = np.asarray(y, dtype=np.float64)
    if len(xa) > MAX_FIT_POINTS:
        keep = np.unique(np.linspace(0, len(xa) - 1, MAX_FIT_POINTS).round().astype(np.int64))
        xa, ya = xa[keep], ya[keep]
    i, j = np.triu_indices(len(xa), k=1)
    dx = xa[j] - xa[i]
    ok = dx != 0
    if not ok.any():
        raise ValueError("Theil–Sen needs at least two distinct x values")
    slope = float(np.median((ya[j] - ya[i])[ok] / dx[ok]))
    intercept = float(np.median(ya - slope * xa))
    return slope, intercept


def cycle_rate(cycle: Cycle) -> float | None:
    """Robust fill rate of a cycle in percentage points per hour; ``None`` if unfittable."""
    if len(cycle.times) < 2 or cycle.span_h <= 0:
        return None
    origin = cycle.times[0]
    slope, _ = theil_sen([(t - origin) / 3600.0 for t in cycle.times], cycle.fills)
    return slope


def typical_rate(cycles: Iterable[Cycle], history: int = 8) -> float | None:
    """Median positive rate of the last ``history`` cycles (a bin's usual filling speed)."""
    rates = [r for r in (cycle_rate(c) for c in cycles) if r is not None and r > 0]
    return statistics.median(rates[-history:]) if rates else None


def hours_to_reach(level: float, from_fill: float, rate_per_h: float) -> float | None:
    """Hours for a bin at ``from_fill`` to reach ``level`` at ``rate_per_h`` (0 if there)."""
    if from_fill >= level:
        return 0.0
    if rate_per_h <= 0:
        return None
    return (level - from_fill) / rate_per_h


@dataclass(frozen=True, slots=True)
class BinForecast:
    """When one bin reaches its threshold, as of its last read.

    ``method``: ``full`` (the median of the last reads is at/over the threshold),
    ``fit`` (Theil–Sen on this cycle), ``history`` (too few reads since the collection: the
    bin's typical rate from past cycles) or ``none`` (nothing rising to extrapolate;
    ``full_at`` is ``None``).
    """

    sensor_id: str
    council: str
    as_of: datetime
    fill: float
    threshold: float
    rate_per_h: float | None
    full_at: datetime | None
    method: str
    cycle_start: datetime
    points: int

    @property
    def hours_to_full(self) -> float | None:
        """Hours from the last read to the threshold (0 when already there)."""
        if self.full_at is None:
            return None
        return max((self.full_at - self.as_of).total_seconds() / 3600.0, 0.0)


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


def forecast_bin(
    sensor_id: str,
    times: Sequence[datetime],
    fills: Sequence[float],
    *,
    council: str = "",
    threshold: float = DEFAULT_THRESHOLD,
    min_drop: float = DEFAULT_MIN_DROP,
    min_points: int = 4,
    min_span_h: float = 24.0,
) -> BinForecast | None:
    """Forecast one bin from its fill reads (any order); ``None`` when there are none.

    Litter goes in faster by day, so a line fitted to less than ``min_span_h`` (a day) of
    the current cycle is biased by the time of day: until then the bin's typical rate from
    its past cycles is used (see benchmarks/bin_backtest.py for the effect on the error).
    """
    cycles = split_cycles(times, fills, min_drop)
    if not cycles:
        return None
    cur = cycles[-1]
    as_of, fill = cur.times[-1], cur.fills[-1]
    base = BinForecast(
        sensor_id=sensor_id,
        council=council,
        as_of=_utc(as_of),
        fill=fill,
        threshold=threshold,
        rate_per_h=None,
        full_at=None,
        method="none",
        cycle_start=_utc(cur.times[0]),
        points=len(cur.times),
    )
    # Full when the median of the last reads is over the threshold (one mis-read is not).
    if statistics.median(cur.fills[-_WINDOW:]) >= threshold:
        first = next(
            t
            for i, t in enumerate(cur.times)
            if cur.fills[i] >= threshold
            and statistics.median(cur.fills[i : i + _WINDOW]) >= threshold
        )
        return replace(base, rate_per_h=cycle_rate(cur), full_at=_utc(first), method="full")
    if len(cur.times) >= min_points and cur.span_h >= min_span_h:
        origin = cur.times[0]
        hours = [(t - origin) / 3600.0 for t in cur.times]
        slope, intercept = theil_sen(hours, cur.fills)
        if slope > 0:
            # The fitted line, not the last (possibly noisy) read, says when it crosses.
            at_h = max((threshold - intercept) / slope, hours[-1])
            full = _utc(origin) + timedelta(hours=at_h)
            return replace(base, rate_per_h=slope, full_at=full, method="fit")
    rate = typical_rate(cycles[:-1])
    if rate is not None:
        wait = hours_to_reach(threshold, fill, rate)
        if wait is not None:
            full = _utc(as_of) + timedelta(hours=wait)
            return replace(base, rate_per_h=rate, full_at=full, method="history")
    return replace(base, rate_per_h=rate)


def collection_due(forecasts: Iterable[BinForecast | None], by: datetime) -> list[BinForecast]:
    """Bins at or over their threshold by ``by`` (already full first), soonest first."""
    due = [f for f in forecasts if f is not None and f.full_at is not None and f.full_at <= by]
    return sorted(due, key=lambda f: (f.full_at or by, f.sensor_id))
