"""Hour-of-week energy baseline: what a meter normally draws at this hour of the week.

One learner for the alert rules (``detectors/energy.py``) and the reports
(``civicpulse report energy-baseline``). It learns from **hourly means weighted by time**,
not from single readings, so it is the same at any meter interval (1 min, 15 min, 30 min):

* Within a local clock hour, each reading stands for the time since the meter's previous
  reading (at most :data:`MAX_GAP_S`), and the hour's mean is ``m = Σ wᵢxᵢ / Σ wᵢ`` (the
  plain mean of its readings for the very first one, whose gap is unknown). The time-weighted
  mean square ``q = Σ wᵢxᵢ² / Σ wᵢ`` is kept too.
* When a reading of a later hour arrives, the hour is closed and taught, once, to buckets
  ``[mean, deviation, hours]``: its hour of the week (Monday 00:00 local = 0 … 167), its
  hour on its day type (weekday / weekend), and its class (``in`` working hours or ``out``).
  An update with weight ``a = max(alpha, 1/(n+1))`` (a plain average of the hours while a
  bucket is young, an EWMA over hours after) is ``mean += a (m − mean)`` and
  ``dev += a (d − dev)``, where ``d = sqrt(q − 2·mean·m + mean²)`` is the root mean square
  distance of the hour's readings from the bucket's mean before the update: it holds both
  the swing inside the hour (an occupancy ramp) and the change from one week to the next.
* Weekday hours 00–04 local also teach the **base load** bucket (the building asleep).

A bucket is trusted once it has learnt ``warm`` hours. The baseline for a reading is its
hour-of-week bucket, else its day-type hour, else the fallback for an hour never seen: the
working-hours class for a working hour, the base load out of hours (its deviation taken from
the class). Readings the rules alert on are not learnt, so an unseen hour never learns a spike
as its baseline.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

Bucket = list[float]  # [mean W, typical deviation W, hours learnt]

MAX_GAP_S = 3600.0  # a reading never stands for more than an hour of the meter's time
_NIGHT = range(0, 5)  # weekday local hours that teach the base load
_STALE_KEYS = ("how", "day", "base")  # the per-reading learner's buckets (before issue 20)


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


def learn_hour(bucket: Bucket | None, mean_h: float, square_h: float, alpha: float) -> Bucket:
    """``bucket`` updated with one hour whose time-weighted mean is ``mean_h`` and mean
    square ``square_h`` (see the module docstring)."""
    if bucket is None:
        return [mean_h, math.sqrt(max(square_h - mean_h * mean_h, 0.0)), 1.0]
    mean, dev, n = bucket
    d = math.sqrt(max(square_h - 2.0 * mean * mean_h + mean * mean, 0.0))
    a = max(alpha, 1.0 / (n + 1))
    return [mean + a * (mean_h - mean), dev + a * (d - dev), n + 1]


def hour_of_week(local: datetime) -> int:
    """0 for Monday 00:00–00:59 local time … 167 for Sunday 23:00–23:59."""
    return local.weekday() * 24 + local.hour


def _day_key(local: datetime) -> str:
    return f"{int(local.weekday() >= 5)}{local.hour:02d}"


def _hour_start(local: datetime) -> float:
    return local.replace(minute=0, second=0, microsecond=0).timestamp()


class HourOfWeekBaseline:
    """The learner over a JSON-serialisable state dict (a detector's state, or a fresh one).

    Keys: ``hw`` hour-of-week buckets, ``hd`` day-type buckets, ``hc`` class buckets,
    ``hb`` the base load bucket, ``acc`` the open hour's sums, ``lt`` the last reading's
    time. States of the per-reading learner (``how``, ``day``, ``base``) are dropped: their
    means were per reading (at a 1-minute meter, the last minutes of an hour); a meter
    relearns within a day, and is not judged until then.
    """

    def __init__(self, state: dict[str, Any], tz: str = "UTC") -> None:
        for key in _STALE_KEYS:
            state.pop(key, None)
        self._state = state
        self._tz = zone(tz)
        self._hows: dict[str, Bucket] = state.setdefault("hw", {})
        self._days: dict[str, Bucket] = state.setdefault("hd", {})
        self._classes: dict[str, Bucket] = state.setdefault("hc", {})

    def expected(self, local: datetime, cls: str, warm: float) -> tuple[float, float] | None:
        """(baseline W, typical deviation W) for the hour ``local`` falls in, whose class is
        ``cls`` (``in`` / ``out``); None while nothing that could stand in is warm."""
        b_how = self._hows.get(str(hour_of_week(local)))
        b_day = self._days.get(_day_key(local))
        b_cls = self._classes.get(cls)
        day_dev = b_day[1] if b_day is not None and b_day[2] >= warm else 0.0
        for b in (b_how, b_day):
            if b is not None and b[2] >= warm:
                return b[0], max(b[1], day_dev)
        if b_cls is None or b_cls[2] < warm:
            return None
        if cls == "in":
            return b_cls[0], b_cls[1]
        base = self.base(warm)
        return (base[0], max(base[1], b_cls[1])) if base is not None else None

    def base(self, warm: float) -> Bucket | None:
        """The base load bucket (weekday nights), once it has learnt ``warm`` hours."""
        b = self._state.get("hb")
        return b if b is not None and b[2] >= warm else None

    def advance(self, when: datetime, alpha: float) -> None:
        """Close (and learn) the open hour if ``when`` (aware) is in a later one."""
        acc = self._state.get("acc")
        if acc is not None and _hour_start(when.astimezone(self._tz)) > acc["h"]:
            self._close(acc, alpha)

    def add(
        self, when: datetime, value: float, cls: str, alpha: float, *, learn: bool = True
    ) -> None:
        """A reading at ``when`` (aware): closes (and learns) the open hour if ``when`` is in
        a later one, then adds ``value`` to its hour unless ``learn`` is false (a reading the
        rules alerted on: its time still counts as the meter's last reading). ``cls`` is the
        class of ``when``'s hour."""
        self.advance(when, alpha)
        t = when.timestamp()
        last = self._state.get("lt")
        self._state["lt"] = t
        if not learn:
            return
        acc = self._state.get("acc")
        if acc is None:
            start = _hour_start(when.astimezone(self._tz))
            acc = {"h": start, "c": cls, "w": 0.0, "s": 0.0, "q": 0.0, "k": 0, "u": 0.0, "v": 0.0}
            self._state["acc"] = acc
        w = min(max(t - float(last), 0.0), MAX_GAP_S) if last is not None else 0.0
        acc["w"] += w
        acc["s"] += w * value
        acc["q"] += w * value * value
        acc["k"] += 1
        acc["u"] += value
        acc["v"] += value * value

    def flush(self, alpha: float) -> None:
        """Close and learn the open hour now (the end of a report's data)."""
        acc = self._state.get("acc")
        if acc is not None:
            self._close(acc, alpha)

    def _close(self, acc: dict[str, Any], alpha: float) -> None:
        self._state.pop("acc", None)
        if acc["w"] > 0:
            mean_h, square_h = acc["s"] / acc["w"], acc["q"] / acc["w"]
        else:  # the meter's very first reading alone: no gap to weigh it by
            mean_h, square_h = acc["u"] / acc["k"], acc["v"] / acc["k"]
        local = datetime.fromtimestamp(acc["h"], self._tz)
        how, day, cls = str(hour_of_week(local)), _day_key(local), str(acc["c"])
        self._hows[how] = learn_hour(self._hows.get(how), mean_h, square_h, alpha)
        self._days[day] = learn_hour(self._days.get(day), mean_h, square_h, alpha)
        self._classes[cls] = learn_hour(self._classes.get(cls), mean_h, square_h, alpha)
        if local.weekday() < 5 and local.hour in _NIGHT:
            self._state["hb"] = learn_hour(self._state.get("hb"), mean_h, square_h, alpha)

    def profile(self) -> dict[int, tuple[float, int]]:
        """Hour of week → (baseline, hours learnt), for the hours it has seen."""
        return {int(k): (b[0], int(b[2])) for k, b in sorted(self._hows.items(), key=_num)}


def _num(item: tuple[str, Bucket]) -> int:
    return int(item[0])


def learn_profile(
    samples: Iterable[tuple[datetime, float]], tz: str, alpha: float
) -> dict[int, tuple[float, int]]:
    """Feed ``samples`` (aware times, in time order) to a fresh learner; its profile
    (hour of week → (time-weighted baseline W, hours learnt))."""
    baseline = HourOfWeekBaseline({}, tz)
    for when, value in samples:
        baseline.add(when, value, "all", alpha)
    baseline.flush(alpha)
    return baseline.profile()
