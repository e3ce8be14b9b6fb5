"""Hour-of-week energy baseline: what a meter normally draws at this hour of the week.

One learner for the alert rules (``detectors/energy.py``) and the reports
(``civicpulse report energy-baseline``). Each bucket is ``[mean, mean absolute deviation,
n]``, updated with an EWMA whose weight is ``max(alpha, 1/(n+1))``: a plain average while a
bucket is young, an exponentially weighted one once it has seen ``1/alpha`` values. A bucket
is per hour of the week (Monday 00:00 local = 0 … Sunday 23:00 = 167); until it has
``warm`` values, the same hour on the same day type (weekday/weekend) stands in.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

Bucket = list[float]


@lru_cache(maxsize=8)
def zone(name: str) -> ZoneInfo:
    """The time zone called ``name`` (cached)."""
    return ZoneInfo(name)


def ewma(bucket: Bucket | None, value: float, alpha: float) -> Bucket:
    """``bucket`` ([mean, mean absolute deviation, n]) updated with ``value``."""
    if bucket is None:
        return [value, 0.0, 1.0]
    mean, dev, n = bucket
    a = max(alpha, 1.0 / (n + 1))  # plain average while young, EWMA after
    return [mean + a * (value - mean), dev + a * (abs(value - mean) - dev), n + 1]


def hour_of_week(local: datetime) -> int:
    """0 for Monday 00:00–00:59 local time … 167 for Sunday 23:00–23:59."""
    return local.weekday() * 24 + local.hour


def _day_key(local: datetime) -> str:
    return f"{int(local.weekday() >= 5)}{local.hour:02d}"


class HourOfWeekBaseline:
    """The learner over a JSON-serialisable state dict (``{"how": …, "day": …}``)."""

    def __init__(self, state: dict[str, Any]) -> None:
        self._hows: dict[str, Bucket] = state.setdefault("how", {})
        self._days: dict[str, Bucket] = state.setdefault("day", {})

    def expected(self, local: datetime, warm: float) -> float | None:
        """The baseline for the hour ``local`` falls in; None while nothing is warm."""
        b_how = self._hows.get(str(hour_of_week(local)))
        if b_how is not None and b_how[2] >= warm:
            return b_how[0]
        b_day = self._days.get(_day_key(local))
        return b_day[0] if b_day is not None and b_day[2] >= warm else None

    def typical_deviation(self, local: datetime, warm: float) -> float:
        """The day-type hour's mean absolute deviation (0 while it is not warm)."""
        b_day = self._days.get(_day_key(local))
        return b_day[1] if b_day is not None and b_day[2] >= warm else 0.0

    def learn(self, local: datetime, value: float, alpha: float) -> None:
        """Teach the hour-of-week and the day-type buckets ``value``."""
        how, day = str(hour_of_week(local)), _day_key(local)
        self._hows[how] = ewma(self._hows.get(how), value, alpha)
        self._days[day] = ewma(self._days.get(day), value, alpha)

    def profile(self) -> dict[int, tuple[float, int]]:
        """Hour of week → (baseline, values learnt), for the hours it has seen."""
        return {int(k): (b[0], int(b[2])) for k, b in sorted(self._hows.items(), key=_num)}


def _num(item: tuple[str, Bucket]) -> int:
    return int(item[0])


def learn_profile(
    samples: Iterable[tuple[datetime, float]], tz: str, alpha: float
) -> dict[int, tuple[float, int]]:
    """Feed ``samples`` (aware times, in time order) to a fresh learner; its profile."""
    baseline = HourOfWeekBaseline({})
    for when, value in samples:
        baseline.learn(when.astimezone(zone(tz)), value, alpha)
    return baseline.profile()
