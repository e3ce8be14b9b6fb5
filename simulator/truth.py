"""Labels derived from what a scenario's sensors sent, computed independently with numpy."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

import numpy as np

from sensors.reading import Sample
from simulator.anomaly_labels import Label

HOUR = 3600
FILL_FULL, FILL_EMPTIED = 80.0, 50.0  # issue 4: collection at >= 80 %; emptied below 50 %
NO2_HOURLY_LIMIT, PM10_DAILY_LIMIT = 200.0, 50.0  # Air Quality Standards Regulations 2010
NO2_HIGH = 400.5  # DAQI High starts at 401 µg/m³ (hourly NO2), after rounding to an integer
PER_HOUR = 24  # air sensors report every 150 s
MIN_PER_HOUR = 18  # 75 % data capture for an hourly mean
MIN_HOURS_PER_DAY = 18  # a daily mean needs 18 hourly means (domain.md section 1)


class _Message(Protocol):
    @property
    def sensor_id(self) -> str: ...

    @property
    def samples(self) -> tuple[Sample, ...]: ...


def _series(messages: Sequence[_Message], metric: str) -> dict[str, list[tuple[float, float]]]:
    out: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for m in messages:
        for s in m.samples:
            if s.metric == metric and not isinstance(s.value, bool):
                out[m.sensor_id].append((s.time.timestamp(), float(s.value)))
    return out


def _at(t: float) -> datetime:
    return datetime.fromtimestamp(t, tz=UTC)


def fill_labels(messages: Sequence[_Message]) -> list[Label]:
    """Each run of reported fill >= 80 % until it falls below 50 % is one collection label."""
    labels = []
    for sid, series in _series(messages, "fill_level").items():
        start: float | None = None
        for t, v in series:
            if start is None and FILL_FULL <= v <= 100.0:
                start = t
            elif start is not None and v < FILL_EMPTIED:
                labels.append(
                    Label(sid, "waste_bin", "bin_collection_needed", "natural", _at(start), _at(t))
                )
                start = None
        if start is not None:
            labels.append(
                Label(
                    sid,
                    "waste_bin",
                    "bin_collection_needed",
                    "natural",
                    _at(start),
                    _at(series[-1][0] + 1),
                )
            )
    return labels


def _hourly(series: list[tuple[float, float]]) -> dict[int, float]:
    arr = np.array(series)
    hours = (arr[:, 0] // HOUR).astype(np.int64)
    out = {}
    for h in np.unique(hours):
        vals = arr[hours == h, 1]
        if len(vals) >= MIN_PER_HOUR:
            out[int(h)] = float(np.mean(vals))
    return out


def exceedance_labels(messages: Sequence[_Message], air_ids: Sequence[str]) -> list[Label]:
    """Hours with NO2 mean > 200 and UTC days with PM10 mean > 50, labelled at period end.

    Each label starts when the period ends (the moment it is knowable) and allows one sensor
    interval for the next reading to arrive; a period with no reading after it is unknowable
    and not labelled.
    """
    air = set(air_ids)
    labels = []
    for sid, series in _series(messages, "no2").items():
        if sid not in air:
            continue
        for h, mean in sorted(_hourly(series).items()):
            end = (h + 1) * HOUR
            if mean > NO2_HOURLY_LIMIT and end < series[-1][0]:
                labels.append(
                    Label(
                        sid,
                        "air_quality",
                        "no2_hourly_exceedance",
                        "derived",
                        _at(end),
                        _at(end + 60),
                        150.0,
                    )
                )
            if mean >= NO2_HIGH and end < series[-1][0]:  # DAQI High from NO2 alone
                labels.append(
                    Label(
                        sid, "air_quality", "daqi_high", "derived", _at(end), _at(end + HOUR), 150.0
                    )
                )
    for sid, series in _series(messages, "pm10").items():
        if sid not in air:
            continue
        by_day: dict[int, list[float]] = defaultdict(list)
        for h, mean in _hourly(series).items():
            by_day[h // 24].append(mean)
        for day, means in sorted(by_day.items()):
            if (
                len(means) >= MIN_HOURS_PER_DAY
                and float(np.mean(means)) > PM10_DAILY_LIMIT
                and (day + 1) * 86400 < series[-1][0]
            ):
                end = (day + 1) * 86400
                labels.append(
                    Label(
                        sid,
                        "air_quality",
                        "pm10_daily_exceedance",
                        "derived",
                        _at(end),
                        _at(end + 60),
                        150.0,
                    )
                )
    return labels


def derived_labels(messages: Sequence[_Message], ids: dict[str, list[str]]) -> list[Label]:
    """Every label that follows from the sent values rather than from an injection."""
    return fill_labels(messages) + exceedance_labels(messages, ids.get("air_quality", []))
