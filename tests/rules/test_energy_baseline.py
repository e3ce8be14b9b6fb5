"""The hour-of-week baseline learner, checked against hand calculation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from rules.energy_baseline import (
    HourOfWeekBaseline,
    ewma,
    hour_of_week,
    learn_profile,
)

LONDON = ZoneInfo("Europe/London")


def test_ewma_is_a_plain_average_while_young_then_weights_by_alpha() -> None:
    b = None
    for v in (10.0, 20.0, 30.0, 40.0):
        b = ewma(b, v, 0.25)
    # by hand: mean 10 → 15 (a=1/2) → 20 (a=1/3) → 25 (a=1/4=alpha); deviation 0 → 5 →
    # 5 + (15-5)/3 → that + (20 - that)/4
    dev3 = 5 + (15 - 5) / 3
    assert b == pytest.approx([25.0, dev3 + (20 - dev3) / 4, 4.0])
    b = ewma(b, 45.0, 0.25)  # now alpha wins over 1/(n+1) = 0.2
    assert b[0] == pytest.approx(25 + 0.25 * 20)


def test_hours_of_the_week_are_local_time() -> None:
    assert hour_of_week(datetime(2026, 11, 23, 0, 30, tzinfo=LONDON)) == 0  # Monday
    assert hour_of_week(datetime(2026, 11, 29, 23, 10, tzinfo=LONDON)) == 167  # Sunday
    # Monday 23:30 UTC in July is Tuesday 00:30 BST
    summer = datetime(2026, 7, 6, 23, 30, tzinfo=UTC).astimezone(LONDON)
    assert hour_of_week(summer) == 24


def test_a_cold_hour_falls_back_to_the_same_hour_of_that_day_type() -> None:
    # issue 20: the learner is taught closed hourly means, no longer single readings, so this
    # test feeds whole hours (was: two readings of Monday 09:00 learnt one by one)
    state: dict[str, object] = {}
    baseline = HourOfWeekBaseline(state, "Europe/London")
    monday_9 = datetime(2026, 11, 23, 9, 0, tzinfo=LONDON)
    tuesday_9 = datetime(2026, 11, 24, 9, 0, tzinfo=LONDON)
    # Monday 09:00-10:00 at 1000 W for its first half, 3000 W for its second (1-minute
    # readings, each standing for the minute before it), and one more reading at 10:00
    for m in range(61):
        baseline.add(monday_9 + timedelta(minutes=m), 1000.0 if m <= 30 else 3000.0, "in", 0.25)
    # by hand: minutes 1-30 at 1000, 31-59 at 3000 (the 09:00 reading has no gap: weight 0)
    mean = (30 * 1000.0 + 29 * 3000.0) / 59
    rms = ((30 * 1000.0**2 + 29 * 3000.0**2) / 59 - mean**2) ** 0.5
    assert state["hw"] == {"9": pytest.approx([mean, rms, 1.0])}  # JSON-serialisable state
    assert baseline.expected(monday_9, "in", warm=1) == pytest.approx((mean, rms))
    assert baseline.expected(tuesday_9, "in", warm=1) == pytest.approx((mean, rms))  # day type
    assert baseline.expected(tuesday_9, "in", warm=2) is None  # and no class warm either


def test_an_hour_is_its_time_weighted_mean_at_any_meter_interval() -> None:
    # A pump runs the second half of every hour: 1 kW, then 4 kW. Readings in the middle
    # of each interval (1 min, 15 min, 30 min) all give 2.5 kW, the hour's true mean; the
    # per-reading EWMA (weight 0.25 per reading) gave ~4 kW at 1 minute.
    monday = datetime(2026, 11, 2, tzinfo=UTC)
    for every in (60, 900, 1800):
        samples = [
            (
                monday + timedelta(seconds=every * k + every / 2),
                1000.0 if k * every % 3600 < 1800 else 4000.0,
            )
            for k in range(7 * 86400 // every)
        ]
        profile = learn_profile(samples, "UTC", 0.25)
        assert {how: w for how, (w, n) in profile.items() if how > 0} == pytest.approx(
            dict.fromkeys(range(1, 168), 2500.0)
        ), every


def test_learn_profile_on_a_repeating_week_gives_that_week() -> None:
    monday = datetime(2026, 11, 2, tzinfo=UTC)
    weeks = [
        (monday + timedelta(weeks=w, days=d, hours=h), 100.0 * h + d)
        for w in range(3)
        for d in range(7)
        for h in range(24)
    ]
    profile = learn_profile(weeks, "UTC", 0.25)
    assert profile[0] == (0.0, 3)  # Monday 00:00, seen three times
    assert profile[6 * 24 + 23] == (2306.0, 3)
