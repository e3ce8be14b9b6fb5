"""Pure detector tests: waste and health rules, thresholds, and batching independence."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from rules.alerts import Signal, SiteInfo
from rules.detectors import (
    HealthDetector,
    WasteDetector,
    default_detectors,
    run_detectors,
    stale_signals,
)
from rules.thresholds import DEFAULTS, ThresholdError, Thresholds, parse_thresholds
from sensors.catalogue import KINDS
from sensors.reading import Reading

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # a Monday


def rd(
    sensor: str, kind: str, metric: str, value: float, seconds: float, council: str = "aberdeen"
) -> Reading:
    t = T0 + timedelta(seconds=seconds)
    unit = KINDS[kind].metrics[metric].unit
    return Reading(
        sensor_id=sensor,
        council=council,
        kind=kind,
        metric=metric,
        value=value,
        unit=unit,
        time=t,
        received_at=t,
    )


def run(
    readings: list[Reading], thresholds: Thresholds | None = None, states: dict | None = None
) -> tuple[dict, list[Signal]]:
    out = run_detectors(default_detectors(), states or {}, readings, thresholds or Thresholds(), T0)
    return out.states, out.signals


def rules(signals: list[Signal], active: bool = True) -> list[tuple[str, float]]:
    return [(s.rule, (s.at - T0).total_seconds()) for s in signals if s.active is active]


def bin_fill(values: list[float], step: float = 900.0) -> list[Reading]:
    return [rd("bin-1", "waste_bin", "fill_level", v, i * step) for i, v in enumerate(values)]


def test_collection_needed_opens_at_threshold_and_clears_below_the_clear_level() -> None:
    _, out = run(bin_fill([70, 79.9, 80, 85, 60, 90, 40, 45]))
    assert [r for r in rules(out) if r[0] == "bin_collection_needed"] == [
        ("bin_collection_needed", 2 * 900),
        ("bin_collection_needed", 3 * 900),
        ("bin_collection_needed", 5 * 900),
    ]
    assert rules(out, active=False) == [("bin_collection_needed", 6 * 900)]


def test_fill_threshold_is_configurable_per_sensor_over_council() -> None:
    th = parse_thresholds("""
        [councils.aberdeen.waste]
        fill_threshold_pct = 90
        [sensors."bin-1".waste]
        fill_threshold_pct = 60
    """)
    assert th.for_sensor("aberdeen", "bin-2")["waste.fill_threshold_pct"] == 90.0
    _, out = run(bin_fill([50, 65]), th)
    assert rules(out) == [("bin_collection_needed", 900)]


def test_site_layers_come_from_the_site_registry_and_a_bins_own_threshold() -> None:
    th = parse_thresholds("""
        [councils.aberdeen.waste]
        fill_threshold_pct = 90
        [sites.depot.waste]
        fill_threshold_pct = 85
        fire_temp_c = 70
        [sensors."bin-3".waste]
        fill_threshold_pct = 95
    """)
    sites = {
        "bin-1": SiteInfo("depot"),
        "bin-2": SiteInfo("depot", fill_threshold_pct=60.0),
        "bin-3": SiteInfo("depot", fill_threshold_pct=60.0),
    }
    p1, p2, p3 = (th.for_sensor("aberdeen", f"bin-{i}", sites) for i in (1, 2, 3))
    p4 = th.for_sensor("aberdeen", "bin-4", sites)  # not in the registry: its own site
    assert [p["waste.fill_threshold_pct"] for p in (p1, p2, p3, p4)] == [85.0, 60.0, 95.0, 90.0]
    assert [p["waste.fire_temp_c"] for p in (p1, p2, p3)] == [70.0, 70.0, 70.0]
    assert p4["waste.fire_temp_c"] == DEFAULTS["waste.fire_temp_c"]
    # a lowered bin threshold keeps 30 points of hysteresis under it
    assert p2["waste.fill_clear_pct"] == 30.0 and p1["waste.fill_clear_pct"] == 50.0
    out = run_detectors(default_detectors(), {}, bin_fill([50, 65]), th, T0, sites=sites)
    # bin-1 (the helper's sensor) is at the depot: 65 % is under its 85 %
    assert rules(out.signals) == []
    sites["bin-1"] = SiteInfo("depot", fill_threshold_pct=60.0)
    out = run_detectors(default_detectors(), {}, bin_fill([50, 65]), th, T0, sites=sites)
    assert rules(out.signals) == [("bin_collection_needed", 900)]


@pytest.mark.parametrize(
    "text, message",
    [
        ("[defaults.waste]\nfill_threshold = 80", "unknown parameter"),
        ("[defaults.waste]\nfill_threshold_pct = 'high'", "expected float"),
        ("[site.x.waste]\nfill_threshold_pct = 1", "unknown top-level"),
        ("[defaults.waste\n", "not valid TOML"),
    ],
)
def test_bad_threshold_files_are_rejected_with_the_key_named(text: str, message: str) -> None:
    with pytest.raises(ThresholdError, match=message):
        parse_thresholds(text)


def test_shipped_example_thresholds_file_parses_and_matches_the_defaults() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "config/thresholds.example.toml").read_text()
    th = parse_thresholds(text)
    assert th.defaults == dict(DEFAULTS)


def test_fire_risk_by_limit_by_fast_rise_and_by_device_flag() -> None:
    temps = [
        rd("bin-1", "waste_bin", "temperature", v, i * 900)
        for i, v in enumerate([12, 13, 30, 31, 20, 12, 61, 30, 12])
    ]
    _, out = run(temps)
    # a rise counts against every reading in the 30-min window, so it lasts two readings
    assert [t / 900 for _, t in rules(out)] == [2, 3, 6, 7]
    assert [t / 900 for _, t in rules(out, active=False)] == [4, 8]
    flag = [rd("bin-1", "waste_bin", "fire", v, i * 900) for i, v in enumerate([0, 1, 1, 0])]
    _, out = run(flag)
    assert rules(out) == [("bin_fire_risk", 900), ("bin_fire_risk", 1800)]
    assert rules(out, active=False) == [("bin_fire_risk", 2700)]


def test_tilt_flag_opens_and_clears() -> None:
    _, out = run([rd("bin-1", "waste_bin", "tilt", v, i * 900) for i, v in enumerate([0, 1, 0])])
    assert rules(out) == [("bin_tilted", 900)] and rules(out, False) == [("bin_tilted", 1800)]


def test_fill_drop_is_a_collection_on_the_learnt_round_and_a_review_off_it() -> None:
    day = 86400 / 900  # readings per day
    fills: list[float] = []
    for i in range(int(4 * day)):  # collected every 24 h at i % day == 0
        fills.append(2 + 60 * ((i % day) / day))
    fills[int(3.5 * day)] = 1.0  # half-way through day 4: emptied off schedule
    _, out = run(bin_fill(fills))
    assert rules(out) == [("bin_fill_drop_review", 3.5 * 86400)]


def test_flatline_after_n_equal_values_and_clear_when_it_moves() -> None:
    n = int(DEFAULTS["health.flatline_count"])
    values = [10.0, 11.0] + [12.0] * (n + 1) + [12.5]
    _, out = run([rd("aq-1", "air_quality", "no2", v, i * 150) for i, v in enumerate(values)])
    flat = [r for r in rules(out) if r[0] == "sensor_flatline"]
    assert flat == [("sensor_flatline", (1 + n) * 150), ("sensor_flatline", (2 + n) * 150)]
    assert ("sensor_flatline", (len(values) - 1) * 150) in rules(out, False)


def test_low_battery_with_hysteresis() -> None:
    vals = [30, 14.9, 16, 19.9, 20, 14]
    _, out = run([rd("bin-1", "waste_bin", "battery", v, i * 900) for i, v in enumerate(vals)])
    assert [t for r, t in rules(out) if r == "sensor_low_battery"] == [900, 5 * 900]
    assert rules(out, False) == [("sensor_low_battery", 4 * 900)]


def test_stale_after_three_intervals_once_and_cleared_by_the_next_reading() -> None:
    states, _ = run([rd("bin-1", "waste_bin", "battery", 90, 0)])
    health = [("bin-1", states[("bin-1", "health")])]
    interval = KINDS["waste_bin"].expected_interval_s
    assert stale_signals(health, Thresholds(), T0 + timedelta(seconds=3 * interval))[1] == []
    changed, out = stale_signals(health, Thresholds(), T0 + timedelta(seconds=3 * interval + 1))
    assert [s.rule for s in out] == ["sensor_stale"]
    marked = [("bin-1", changed["bin-1"])]
    assert stale_signals(marked, Thresholds(), T0 + timedelta(days=1))[1] == []  # once
    states[("bin-1", "health")] = changed["bin-1"]
    _, back = run([rd("bin-1", "waste_bin", "battery", 90, 4 * interval)], states=states)
    assert rules(back, False) == [("sensor_stale", 4 * interval)]


def _mixed_stream(seed: int) -> list[Reading]:
    rng = random.Random(seed)
    out = []
    for i in range(400):
        t = i * 300
        out.append(rd("bin-1", "waste_bin", "fill_level", float(min(100, (i % 150) * 0.9)), t))
        out.append(rd("bin-1", "waste_bin", "temperature", rng.choice([10, 11, 40, 70]), t))
        out.append(rd("bin-1", "waste_bin", "battery", 30 - i * 0.05, t))
        out.append(
            rd(
                "aq-1",
                "air_quality",
                "temperature",
                10 + rng.gauss(0, 1) + (15 if i % 97 == 0 else 0),
                t,
            )
        )
        out.append(rd("aq-1", "air_quality", "no2", float(rng.choice([30, 30, 31])), t))
        out.append(
            rd(
                "em-1",
                "energy_meter",
                "power",
                3000 + rng.gauss(0, 100) + (20000 if i % 131 == 0 else 0),
                t,
            )
        )
        out.append(
            rd("em-1", "energy_meter", "energy_import", 1000 + i - (500 if i == 300 else 0), t)
        )
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_signals_and_state_do_not_depend_on_how_the_stream_is_batched(seed: int) -> None:
    # in detector order (time, metric): a cut inside one instant out of that order is a late
    # group, replayed from the stored history (tests/rules/test_late_readings.py)
    stream = sorted(_mixed_stream(seed), key=lambda r: (r.time, r.metric))
    whole_states, whole = run(stream)
    rng = random.Random(seed)
    states: dict = {}
    pieces: list[Signal] = []
    i = 0
    while i < len(stream):
        n = rng.randint(1, 60)
        batch = stream[i : i + n]
        rng.shuffle(batch)  # arrival order inside a batch does not matter either
        new, out = run(batch, states=states)
        states.update(new)
        pieces.extend(out)
        i += n
    key = lambda s: (s.at, s.sensor_id, s.rule, s.active)  # noqa: E731
    assert sorted(pieces, key=key) == sorted(whole, key=key)
    assert states == whole_states
    assert {s.rule for s in whole} >= {
        "bin_fire_risk",
        "sensor_flatline",
        "sensor_low_battery",
        "energy_register_reset",
        "bin_collection_needed",
    }


def test_detectors_only_see_their_kinds_and_do_not_mutate_the_given_state() -> None:
    state = {"fill": 90.0, "active": {"bin_collection_needed": True}}
    frozen = {"fill": 90.0, "active": {"bin_collection_needed": True}}
    new, out = WasteDetector().step(state, bin_fill([10.0]), DEFAULTS, T0)
    assert state == frozen and new["active"]["bin_collection_needed"] is False
    assert [(s.rule, s.active) for s in out] == [("bin_collection_needed", False)]
    assert "energy_meter" not in WasteDetector.kinds and HealthDetector.kinds == set(KINDS)
