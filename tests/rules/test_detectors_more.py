"""Pure detector tests: energy baseline rules, the robust z-score, and DAQI alerts."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy as np

from rules.alerts import Severity, Signal
from rules.detectors import default_detectors, robust_z, run_detectors
from rules.thresholds import Thresholds
from sensors.reading import Reading

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # Monday; GMT, so local = UTC
UNITS = {
    "power": "W",
    "energy_import": "kWh",
    "temperature": "Cel",
    "pm2_5": "ug/m3",
    "pm10": "ug/m3",
    "no2": "ug/m3",
}


def rd(sensor: str, kind: str, metric: str, value: float, seconds: float) -> Reading:
    t = T0 + timedelta(seconds=seconds)
    return Reading(
        sensor_id=sensor,
        council="aberdeen",
        kind=kind,
        metric=metric,
        value=value,
        unit=UNITS[metric],
        time=t,
        received_at=t,
    )


def run(readings: list[Reading]) -> list[Signal]:
    return run_detectors(default_detectors(), {}, readings, Thresholds(), T0)[1]


def hours(signals: list[Signal], rule: str, active: bool = True) -> list[float]:
    return [
        (s.at - T0).total_seconds() / 3600 for s in signals if s.rule == rule and s.active is active
    ]


def meter_week(days: int, extra: dict[float, float]) -> list[Reading]:
    """Half-hourly power: 3 kW base, 9 kW weekdays 08-18, +-2 % noise; ``extra`` W by hour."""
    rng = random.Random(4)
    out = []
    for i in range(days * 48):
        h = i / 2
        local = T0 + timedelta(hours=h)
        working = local.weekday() < 5 and 8 <= local.hour < 18
        watts = (9000.0 if working else 3000.0) * (1 + rng.gauss(0, 0.02)) + extra.get(h, 0.0)
        out.append(rd("em-1", "energy_meter", "power", round(watts, 1), h * 3600))
    return out


def test_out_of_hours_use_alerts_after_two_readings_and_clears() -> None:
    night = 9 * 24 + 1  # Wednesday of week 2, 01:00
    extra = {night + k / 2: 3000.0 for k in range(4)}  # +100 % of base for 2 h
    out = run(meter_week(10, extra))
    assert hours(out, "energy_out_of_hours") == [night + 0.5, night + 1.0, night + 1.5]
    assert hours(out, "energy_out_of_hours", False) == [night + 2.0]
    assert hours(out, "energy_spike") == []


def test_normal_working_hours_and_weekends_raise_nothing() -> None:
    out = run(meter_week(14, {}))
    assert [s for s in out if s.active] == []


def test_spike_far_above_the_hour_of_week_baseline_is_an_event() -> None:
    at = 8 * 24 + 11  # Tuesday week 2, 11:00 (working hours)
    out = run(meter_week(9, {at: 20000.0}))
    assert hours(out, "energy_spike") == [at]
    assert hours(out, "energy_out_of_hours") == []


def test_register_going_backwards_is_a_reset_but_equal_or_rising_is_not() -> None:
    values = [100.0, 100.5, 100.5, 101.0, 3.0, 3.5]
    out = run(
        [rd("em-1", "energy_meter", "energy_import", v, i * 1800) for i, v in enumerate(values)]
    )
    [reset] = [s for s in out if s.rule == "energy_register_reset"]
    assert reset.at == T0 + timedelta(seconds=4 * 1800)
    assert reset.details["previous_kwh"] == 101.0


def test_robust_z_matches_numpy_median_and_mad() -> None:
    rng = np.random.default_rng(3)
    window = list(rng.normal(10, 2, 41))
    med = np.median(window)
    mad = np.median(np.abs(np.array(window) - med))
    assert robust_z(window, 17.0) == np.float64((17.0 - med) / (1.4826 * mad))


def test_statistical_outlier_only_after_warm_up_and_clears_when_back() -> None:
    rng = random.Random(8)
    values = [10 + rng.gauss(0, 0.3) for _ in range(60)]
    values[5] = 40.0  # inside the warm-up: not judged
    values[40] = 25.0
    out = run([rd("aq-1", "air_quality", "temperature", v, i * 150) for i, v in enumerate(values)])
    assert [round(h * 3600 / 150) for h in hours(out, "statistical_outlier")] == [40]
    assert [round(h * 3600 / 150) for h in hours(out, "statistical_outlier", False)] == [41]


def air_day(pm25: float, hours_: int = 30, no2: float = 40.0) -> list[Reading]:
    out = []
    for i in range(hours_ * 24):  # every 150 s
        s = i * 150
        out.append(rd("aq-1", "air_quality", "pm2_5", pm25, s))
        out.append(rd("aq-1", "air_quality", "no2", no2, s))
    return out


def test_daqi_high_needs_a_full_24_hour_pm25_mean_and_very_high_at_71() -> None:
    out = run(air_day(60.0))  # 60 µg/m³ → index 8 (59-64), High
    # The 24 h running mean needs 18 valid hours (DEFRA data capture): first at 18:00.
    assert hours(out, "daqi_high")[0] == 18.0
    assert hours(out, "daqi_very_high") == []
    assert {s.details["daqi"] for s in out if s.rule == "daqi_high"} == {8}
    out = run(air_day(71.0, hours_=20))
    assert hours(out, "daqi_very_high")[0] == 18.0
    assert all(s.details["band"] == "Very High" for s in out if s.rule == "daqi_very_high")


def test_daqi_moderate_raises_nothing() -> None:
    out = run(air_day(53.4, hours_=26))  # rounds to 53 → index 6, Moderate
    assert [s for s in out if s.rule.startswith("daqi")] == []


def test_no2_hourly_exceedances_are_counted_and_critical_past_the_allowance() -> None:
    out = run(air_day(5.0, hours_=22, no2=201.0))
    exc = [s for s in out if s.rule == "no2_hourly_exceedance"]
    assert len(exc) == 21  # one per complete hour (the 22nd hour is not complete)
    assert [s.details["count_this_year"] for s in exc] == list(range(1, 22))
    assert [s.severity for s in exc] == [None] * 18 + [Severity.CRITICAL] * 3
    none = run(air_day(5.0, hours_=5, no2=200.0))  # equal to the limit complies
    assert [s for s in none if s.rule == "no2_hourly_exceedance"] == []


def test_fire_rise_is_the_value_above_the_window_minimum_whatever_the_state_keeps() -> None:
    """The waste detector keeps only possible minima of the fire-rise window; each rise equals
    the value less numpy's minimum of every earlier reading still in the window, and a state
    that kept all of them (before the sliding minimum) gives the same rises."""
    from rules.detectors.waste import WasteDetector

    rng = random.Random(5)
    times = np.cumsum(rng.choices([10.0] * 20 + [60.0, 900.0], k=600))
    values = np.round([20 + 15 * np.sin(k / 40) + rng.gauss(0, 3) for k in range(600)], 2)
    window = 1800.0
    lean: dict = {}
    full: dict = {"temps": []}
    for k, (t, v) in enumerate(zip(times, values, strict=True)):
        earlier = values[:k][times[:k] >= t - window]
        truth = v - earlier.min() if earlier.size else 0.0  # below them all: negative
        assert WasteDetector._rise(lean, float(t), float(v), window) == truth
        assert WasteDetector._rise(dict(full), float(t), float(v), window) == truth
        full["temps"] = [p for p in full["temps"] if t - p[0] <= window] + [[float(t), float(v)]]
    assert len(full["temps"]) > 50 and len(lean["temps"]) < 20
