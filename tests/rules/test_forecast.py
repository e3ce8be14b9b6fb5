"""Bin forecasts against hand-computed crossings and a brute-force Theil–Sen."""

from __future__ import annotations

import itertools
import statistics
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from rules.forecast import (
    Cycle,
    collection_due,
    cycle_rate,
    forecast_bin,
    hours_to_reach,
    split_cycles,
    theil_sen,
    typical_rate,
)

T0 = datetime(2026, 10, 5, 6, 0, tzinfo=UTC)


def _t(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def _brute_theil_sen(x: list[float], y: list[float]) -> tuple[float, float]:
    slopes = [(y[j] - y[i]) / (x[j] - x[i]) for i, j in itertools.combinations(range(len(x)), 2)]
    m = statistics.median(slopes)
    return m, statistics.median([b - m * a for a, b in zip(x, y, strict=True)])


def test_theil_sen_equals_brute_force_on_noisy_data() -> None:
    rng = np.random.default_rng(3)
    x = sorted(rng.uniform(0, 48, 60).tolist())
    y = (4 + 1.3 * np.asarray(x) + rng.normal(0, 3, 60)).tolist()
    y[10] = 99.0  # an ultrasonic mis-read
    slope, intercept = theil_sen(x, y)
    want = _brute_theil_sen(x, y)
    assert slope == pytest.approx(want[0], rel=1e-12)
    assert intercept == pytest.approx(want[1], rel=1e-12)


def test_split_cycles_cuts_at_collections_not_at_spikes() -> None:
    fills = [30, 35, 40, 95, 45, 50, 55, 3, 60, 65, 70, 2, 3, 5, 8, 11]
    # 95 is an up-spike, 3 a down-spike: neither is a collection; 70 -> 2 is.
    cycles = split_cycles([_t(h) for h in range(len(fills))], fills)
    assert [len(c.fills) for c in cycles] == [11, 5]
    assert cycles[1].fills[0] == 2


def test_forecast_fit_crossing_by_hand_despite_outliers() -> None:
    # Previous cycle, collection at h=10, then fill = 5 + 2 h since the collection.
    hours = list(range(10)) + [10 + h for h in range(30)]
    fills = [40 + 4 * h for h in range(10)] + [5 + 2 * h for h in range(30)]
    fills[15] = 97.0
    fills[22] = 1.0
    f = forecast_bin("bin-1", [_t(h) for h in hours], fills, council="edinburgh")
    assert f is not None and f.method == "fit"
    assert f.rate_per_h == pytest.approx(2.0)
    # 5 + 2 h = 80  ->  h = 37.5 after the collection at T0 + 10 h
    assert f.full_at == _t(10 + 37.5)
    assert f.as_of == _t(39) and f.hours_to_full == pytest.approx(47.5 - 39)
    assert f.cycle_start == _t(10) and f.points == 30


def test_forecast_just_after_collection_uses_typical_rate_of_past_cycles() -> None:
    # Three past cycles rising at 1, 3 and 2 %/h; one read since the last collection.
    times: list[datetime] = []
    fills: list[float] = []
    start = 0.0
    for rate in (1.0, 3.0, 2.0):
        for h in range(24):
            times.append(_t(start + h))
            fills.append(min(4 + rate * h, 100.0))
        start += 24
    times.append(_t(start))
    fills.append(6.0)
    f = forecast_bin("bin-2", times, fills, threshold=50.0)
    assert f is not None and f.method == "history"
    assert f.rate_per_h == pytest.approx(2.0)  # median of 1, 3 and 2
    assert f.full_at == _t(start + (50 - 6) / 2.0)


def test_short_cycle_without_history_has_no_forecast() -> None:
    # Under a day of reads and no past cycle: a time-of-day-biased line is not extrapolated.
    f = forecast_bin("s", [_t(h) for h in range(6)], [10, 20, 30, 40, 50, 60])
    assert f is not None and f.method == "none" and f.full_at is None


def test_already_full_bin_and_flat_bin() -> None:
    full = forecast_bin("b", [_t(h) for h in range(6)], [60, 70, 79, 81, 85, 90])
    assert full is not None and full.method == "full" and full.full_at == _t(3)
    assert full.hours_to_full == 0.0
    misread = forecast_bin("m", [_t(h) for h in range(6)], [10, 20, 30, 40, 50, 99])
    assert misread is not None and misread.method != "full"  # one wild read is not "full"
    flat = forecast_bin("c", [_t(h) for h in range(6)], [30.0] * 6)
    assert flat is not None and flat.method == "none" and flat.full_at is None
    assert forecast_bin("d", [], []) is None


def test_collection_due_by_end_of_day() -> None:
    hours = [_t(h) for h in range(6)]
    a = forecast_bin("a", hours, [10, 20, 30, 40, 50, 60], min_span_h=5)  # 80 at h=7
    b = forecast_bin("b", hours, [0, 1, 2, 3, 4, 5], min_span_h=5)  # 80 at h=80
    c = forecast_bin("c", hours, [60, 70, 80, 90, 95, 95])  # full at h=2
    due = collection_due([a, b, c, None], by=_t(24))
    assert [f.sensor_id for f in due] == ["c", "a"]
    assert due[1].full_at == _t(7)


def test_rate_helpers() -> None:
    c = Cycle(times=(0.0, 3600.0, 7200.0), fills=(10.0, 12.0, 14.0))
    assert cycle_rate(c) == pytest.approx(2.0)
    assert cycle_rate(Cycle((0.0,), (5.0,))) is None
    assert typical_rate([c, Cycle((0.0, 3600.0), (9.0, 5.0))]) == pytest.approx(2.0)
    assert hours_to_reach(80, 20, 3) == 20.0
    assert hours_to_reach(80, 85, 3) == 0.0
    assert hours_to_reach(80, 20, 0) is None
