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
    state: dict[str, object] = {}
    baseline = HourOfWeekBaseline(state)
    monday_9 = datetime(2026, 11, 23, 9, 0, tzinfo=LONDON)
    tuesday_9 = datetime(2026, 11, 24, 9, 0, tzinfo=LONDON)
    for watts in (1000.0, 3000.0):
        baseline.learn(monday_9, watts, 0.25)
    assert baseline.expected(monday_9, warm=2) == 2000.0
    assert baseline.expected(tuesday_9, warm=2) == 2000.0  # weekday 09:00 stands in
    assert baseline.expected(tuesday_9, warm=3) is None
    assert state["how"] == {"9": [2000.0, 1000.0, 2.0]}  # JSON-serialisable state


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
