"""DAQI bands at every boundary, DEFRA averaging windows, data capture, and streaming state."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta, timezone
from fractions import Fraction

import numpy as np
import pytest

from rules.daqi import (
    AVERAGING,
    LONGEST_WINDOW,
    POLLUTANTS,
    DaqiState,
    band_for,
    daqi_at,
    fifteen_minute_means,
    hourly_means,
    index_for,
    pollutant_concentration,
    round_concentration,
    running_mean,
    site_index,
)

# Typed by hand from shared/reference/domain.md §1 (DEFRA DAQI table), NOT read from the
# packaged JSON, so a wrong data file fails these tests. (lo, hi) per index 1..10.
DOMAIN_TABLE: dict[str, list[tuple[int, int | None]]] = {
    "pm2_5": [(0, 11), (12, 23), (24, 35), (36, 41), (42, 47), (48, 53), (54, 58), (59, 64),
              (65, 70), (71, None)],
    "pm10": [(0, 16), (17, 33), (34, 50), (51, 58), (59, 66), (67, 75), (76, 83), (84, 91),
             (92, 100), (101, None)],
    "no2": [(0, 67), (68, 134), (135, 200), (201, 267), (268, 334), (335, 400), (401, 467),
            (468, 534), (535, 600), (601, None)],
    "o3": [(0, 33), (34, 66), (67, 100), (101, 120), (121, 140), (141, 160), (161, 187),
           (188, 213), (214, 240), (241, None)],
    "so2": [(0, 88), (89, 177), (178, 266), (267, 354), (355, 443), (444, 532), (533, 710),
            (711, 887), (888, 1064), (1065, None)],
}  # fmt: skip

BOUNDARY_CASES = []
for _p, _bands in DOMAIN_TABLE.items():
    for _i, (_lo, _hi) in enumerate(_bands, start=1):
        BOUNDARY_CASES.append((_p, float(_lo), _i))
        if _i > 1:
            BOUNDARY_CASES.append((_p, _lo - 0.51, _i - 1))
        if _hi is not None:
            BOUNDARY_CASES += [(_p, float(_hi), _i), (_p, _hi + 0.49, _i), (_p, _hi + 0.5, _i + 1)]
        else:
            BOUNDARY_CASES += [(_p, _lo + 0.49, 10), (_p, _lo * 10.0, 10)]

T0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday, on the hour


@pytest.mark.parametrize(("pollutant", "concentration", "expected"), BOUNDARY_CASES)
def test_every_band_boundary_of_every_pollutant(
    pollutant: str, concentration: float, expected: int
) -> None:
    assert index_for(pollutant, concentration) == expected


def test_boundary_table_is_complete() -> None:
    # 10 bands x 5 pollutants: lo, (lo-0.51 for 2..10), hi/hi+0.49/hi+0.5 or two above 10's lo
    assert len(BOUNDARY_CASES) == 5 * (10 + 9 + 9 * 3 + 2)


def test_issue_example_pm25_rounding() -> None:
    assert index_for("pm2_5", 35.4) == 3
    assert index_for("pm2_5", 35.5) == 4


@pytest.mark.parametrize(
    ("x", "expected"),
    [(35.5, 36), (35.4999, 35), (0.5, 1), (2.5, 3), (3.5, 4), (0.0, 0), (0.49999999999999994, 0),
     (1e6 + 0.5, 1_000_001)],
)  # fmt: skip
def test_round_half_up_not_bankers(x: float, expected: int) -> None:
    assert round_concentration(x) == expected


@pytest.mark.parametrize("bad", [-0.01, -1.0, float("nan"), float("inf")])
def test_round_rejects_negative_and_non_finite(bad: float) -> None:
    with pytest.raises(ValueError):
        round_concentration(bad)
    with pytest.raises(ValueError):
        index_for("no2", bad)


def test_unknown_pollutant_is_rejected() -> None:
    with pytest.raises(ValueError, match="not a DAQI pollutant"):
        index_for("co", 1.0)
    with pytest.raises(ValueError):
        DaqiState(150).add("temperature", T0, 1.0)


def test_bands_and_site_index() -> None:
    expected = ["Low"] * 3 + ["Moderate"] * 3 + ["High"] * 3 + ["Very High"]
    assert [band_for(i) for i in range(1, 11)] == expected
    for bad in (0, 11, -1):
        with pytest.raises(ValueError):
            band_for(bad)
    assert site_index({"no2": 3, "pm10": 7, "o3": 2}) == 7
    assert site_index({}) is None


def test_averaging_descriptions_match_defra() -> None:
    assert POLLUTANTS == ("pm2_5", "pm10", "no2", "o3", "so2")
    windows = {p: AVERAGING[p].window for p in POLLUTANTS}
    assert windows == {"pm2_5": timedelta(hours=24), "pm10": timedelta(hours=24),
                       "no2": timedelta(hours=1), "o3": timedelta(hours=8),
                       "so2": timedelta(minutes=15)}  # fmt: skip
    assert (AVERAGING["pm10"].min_valid, AVERAGING["o3"].min_valid) == (18, 6)
    assert LONGEST_WINDOW.total_seconds() == 24 * 3600


def _stream(start: datetime, n: int, step_s: int, value: float) -> list[tuple[datetime, float]]:
    return [(start + timedelta(seconds=k * step_s), value) for k in range(n)]


def test_hourly_means_are_hour_beginning_and_need_75_percent() -> None:
    # 18 of 24 expected (exactly 75 %) at 10:00 -> a mean; 17 of 24 at 11:00 -> none.
    ten = [(T0 + timedelta(hours=10, seconds=150 * k), float(k)) for k in range(18)]
    eleven = _stream(T0 + timedelta(hours=11), 17, 150, 5.0)
    edge = [(T0 + timedelta(hours=12, minutes=59, seconds=59), 9.0)]  # belongs to 12:00
    means = hourly_means(ten + eleven + edge, expected_per_hour=24)
    assert means == {T0 + timedelta(hours=10): pytest.approx(np.mean(np.arange(18.0)))}
    assert hourly_means(edge, 1) == {T0 + timedelta(hours=12): 9.0}


def test_repeated_timestamp_counts_once_first_wins() -> None:
    samples = [*_stream(T0, 18, 150, 4.0), (T0, 100.0)]
    assert hourly_means(samples, 24) == {T0: 4.0}
    assert hourly_means(samples[:17] + samples[:1], 24) == {}  # 17 distinct, not 18


def test_other_timezones_and_naive_times() -> None:
    bst = timezone(timedelta(hours=1))
    local = [(datetime(2026, 6, 1, 11, 30, tzinfo=bst), 2.0)]  # 10:30 UTC
    assert hourly_means(local, 1) == {datetime(2026, 6, 1, 10, tzinfo=UTC): 2.0}
    with pytest.raises(ValueError, match="naive"):
        hourly_means([(datetime(2026, 6, 1, 10), 1.0)], 1)


def test_fifteen_minute_means_need_five_of_six() -> None:
    # 150-s interval -> 6 expected per 15 min; 75 % of 6 = 4.5, so 5 are needed.
    five = _stream(T0, 5, 150, 3.0)
    four = _stream(T0 + timedelta(minutes=15), 4, 150, 7.0)
    assert fifteen_minute_means(five + four, 6) == {T0: 3.0}


def test_running_mean_window_and_min_hours() -> None:
    hourly = {T0 + timedelta(hours=h): float(h * h) for h in range(30)}
    end = T0 + timedelta(hours=20)  # window = hours starting 12:00 .. 19:00
    assert running_mean(hourly, end, 8, 6) == pytest.approx(np.mean(np.arange(12, 20) ** 2.0))
    six = {t: v for t, v in hourly.items() if t.hour in (12, 13, 14, 15, 16, 17)}
    assert running_mean(six, end, 8, 6) == pytest.approx((144 + 169 + 196 + 225 + 256 + 289) / 6)
    five = {t: v for t, v in six.items() if t.hour != 17}
    assert running_mean(five, end, 8, 6) is None
    day = {t: v for t, v in hourly.items() if 0 <= t.hour < 18}  # 18 valid of 24
    assert running_mean(day, T0 + timedelta(hours=24), 24, 18) == pytest.approx(
        np.mean(np.arange(18) ** 2.0)
    )
    day.pop(T0 + timedelta(hours=3))  # 17 valid hours
    assert running_mean(day, T0 + timedelta(hours=24), 24, 18) is None
    with pytest.raises(ValueError, match="boundary"):
        running_mean(hourly, end + timedelta(minutes=1), 8, 6)


def test_no2_uses_latest_complete_hour_only() -> None:
    samples = _stream(T0, 24, 150, 100.0) + _stream(T0 + timedelta(hours=1), 24, 150, 250.0)
    at = T0 + timedelta(hours=1, minutes=30)  # 01:00 hour incomplete -> 00:00 hour counts
    assert pollutant_concentration("no2", samples, at, 150) == 100.0
    assert pollutant_concentration("no2", samples, T0 + timedelta(hours=2), 150) == 250.0
    assert pollutant_concentration("no2", samples, T0 + timedelta(hours=3), 150) is None


def test_pm_24h_running_mean_with_capture_gap() -> None:
    samples: list[tuple[datetime, float]] = []
    for h in range(24):
        n = 17 if h == 5 else 24  # hour 5 fails the 75 % rule
        samples += _stream(T0 + timedelta(hours=h), n, 150, float(h))
    at = T0 + timedelta(hours=24, minutes=7)
    expected = np.mean([h for h in range(24) if h != 5])
    assert pollutant_concentration("pm10", samples, at, 150) == pytest.approx(expected)
    # Keep only 17 valid hours: no 24-hour mean.
    short = [(t, v) for t, v in samples if t < T0 + timedelta(hours=18) and t.hour != 5]
    assert pollutant_concentration("pm2_5", short, at, 150) is None


def test_o3_8h_and_so2_15min() -> None:
    o3 = [s for h in range(10) for s in _stream(T0 + timedelta(hours=h), 24, 150, 10.0 * h)]
    at = T0 + timedelta(hours=10)
    assert pollutant_concentration("o3", o3, at, 150) == pytest.approx(
        np.mean(np.arange(2, 10)) * 10
    )
    so2 = _stream(T0, 6, 150, 90.0) + _stream(T0 + timedelta(minutes=15), 6, 150, 300.0)
    assert pollutant_concentration("so2", so2, T0 + timedelta(minutes=29), 150) == 90.0
    assert pollutant_concentration("so2", so2, T0 + timedelta(minutes=30), 150) == 300.0


def test_daqi_at_takes_the_highest_pollutant() -> None:
    at = T0 + timedelta(hours=24)
    by_pollutant = {
        "pm2_5": [s for h in range(24) for s in _stream(T0 + timedelta(hours=h), 24, 150, 35.5)],
        "no2": _stream(T0 + timedelta(hours=23), 24, 150, 401.0),
        "so2": _stream(T0, 6, 150, 2000.0),  # long ago: no current 15-min mean
    }
    result = daqi_at(by_pollutant, at, 150)
    assert result.per_pollutant == {"pm2_5": (35.5, 4), "no2": (401.0, 7)}
    assert (result.site_index, result.band) == (7, "High")
    assert daqi_at({}, at, 150) == daqi_at({"o3": []}, at, 150)
    assert daqi_at({}, at, 150).site_index is None and daqi_at({}, at, 150).band is None


def _random_site(rng: random.Random) -> dict[str, list[tuple[datetime, float]]]:
    out: dict[str, list[tuple[datetime, float]]] = {}
    for p in POLLUTANTS:
        t, samples = T0, []
        while t < T0 + timedelta(hours=40):
            if rng.random() > 0.2:  # ~20 % loss gives a mix of valid and invalid periods
                samples.append((t, round(rng.uniform(0, 150), 3)))
            t += timedelta(seconds=150 + rng.randint(-3, 3), microseconds=rng.randint(0, 999))
        out[p] = samples
    return out


@pytest.mark.parametrize("seed", range(4))
def test_incremental_state_equals_batch_in_any_order(seed: int) -> None:
    # each sample once, as the pipeline delivers them (the store drops redeliveries)
    rng = random.Random(seed)
    site = _random_site(rng)
    events = [(p, t, v) for p, samples in site.items() for t, v in samples]
    rng.shuffle(events)
    state = DaqiState(150)
    cut = sorted(rng.sample(range(len(events)), 5))
    for lo, hi in zip([0, *cut], [*cut, len(events)], strict=True):
        for p, t, v in events[lo:hi]:
            state.add(p, t, v)
        state = DaqiState.from_json(json.loads(json.dumps(state.to_json())))  # restart
    checks = [T0 + timedelta(minutes=rng.randint(0, 42 * 60)) for _ in range(15)]
    results = [state.evaluate(at) for at in checks]
    assert results == [daqi_at(site, at, 150) for at in checks]
    assert any(r.site_index is not None for r in results)


def test_prune_bounds_memory_and_keeps_later_results() -> None:
    site = _random_site(random.Random(42))
    state = DaqiState(150)
    for p, samples in site.items():
        for t, v in samples:
            state.add(p, t, v)
    at = T0 + timedelta(hours=30, minutes=20)
    state.prune(at - LONGEST_WINDOW)
    for later in (at, at + timedelta(hours=3, minutes=5)):
        assert state.evaluate(later) == daqi_at(site, later, 150)
    hours = {b[0] for rows in state.to_json()["buckets"].values() for b in rows}
    assert min(hours) >= int((T0 + timedelta(hours=6)).timestamp()) * 1_000_000
    assert state.add("no2", at - timedelta(hours=25), 10.0) is False  # before the horizon
    with pytest.raises(ValueError, match="version"):
        DaqiState.from_json({"version": 99})


def test_state_size_is_bounded_by_its_buckets_not_by_its_samples() -> None:
    """A 10-second monitor for two days: the state holds ~25 hourly buckets per pollutant."""
    state = DaqiState(10)
    rng = random.Random(7)
    t = T0
    for _ in range(2 * 24 * 360):
        for p in ("no2", "pm10"):
            state.add(p, t, round(rng.uniform(0, 90), 1))
        t += timedelta(seconds=10)
        if t.minute == 0 and t.second == 0:
            state.prune(t - LONGEST_WINDOW)
    doc = state.to_json()
    assert all(len(rows) <= 26 for rows in doc["buckets"].values())
    assert len(json.dumps(doc)) < 8_000  # version 1 kept 8,640 offsets per pollutant: ~200 KB


def test_a_version_1_state_with_offsets_reads_as_counts() -> None:
    site = _random_site(random.Random(3))
    state = DaqiState(150)
    for p, samples in site.items():
        for t, v in samples:
            state.add(p, t, v)
    v2 = state.to_json()
    v1 = {**v2, "version": 1}
    v1["buckets"] = {  # what version 1 stored: each sample's offset instead of the count
        p: [[s, total, list(range(n))] for s, total, n in rows] for p, rows in v2["buckets"].items()
    }
    restored = DaqiState.from_json(json.loads(json.dumps(v1)))
    checks = [T0 + timedelta(hours=h, minutes=7) for h in range(0, 40, 3)]
    assert [restored.evaluate(at) for at in checks] == [daqi_at(site, at, 150) for at in checks]
    assert restored.to_json() == v2
    with pytest.raises(ValueError, match="version"):
        DaqiState.from_json({**v2, "version": 3})


def test_stored_sums_are_the_exact_fraction_sums_of_the_samples() -> None:
    """Sums kept as integers of 2**-1074 write the same "n/d" text as summing Fractions
    (the state format before them), and a mean is that exact fraction rounded once."""
    rng = random.Random(11)
    values = [rng.uniform(0, 500) for _ in range(300)]
    values += [0.1, 1e-300, 5e-324, 2.0**-1074 * 3, 1e300, 123456.789, 0.0, -0.0]
    state = DaqiState(10)
    for k, v in enumerate(values):  # one bucket: all in the same hour
        state.add("no2", T0 + timedelta(seconds=k), v)
    [[_start, text, n]] = state.to_json()["buckets"]["no2"]
    exact = sum((Fraction(v) for v in values), Fraction(0))
    assert (text, n) == (str(exact), len(values))
    no2 = state.evaluate(T0 + timedelta(hours=1)).per_pollutant["no2"]
    assert no2[0] == float(exact / len(values))
    restored = DaqiState.from_json(json.loads(json.dumps(state.to_json())))
    restored.add("no2", T0 + timedelta(seconds=len(values)), 0.3)
    [[_start, text2, _n]] = restored.to_json()["buckets"]["no2"]
    assert text2 == str(exact + Fraction(0.3))
    bad = {**state.to_json(), "buckets": {"no2": [[_start, "1/3", 1]]}}
    with pytest.raises(ValueError, match="not a sum of doubles"):
        DaqiState.from_json(bad).add("no2", T0, 1.0)


def test_sum_text_is_what_fraction_writes_and_reads_back() -> None:
    from rules.daqi import _text_of_units, _units_of_text

    rng = random.Random(12)
    unit = Fraction(1, 2**1074)
    cases = [0, 1, -1, 2**1074, -(2**1074) * 3, 2**1100 + 2**1074]
    cases += [rng.randrange(-(2**1200), 2**1200) << rng.randrange(0, 1200) for _ in range(300)]
    for units in cases:
        text = _text_of_units(units)
        assert text == str(units * unit)
        assert _units_of_text(text) == units
    assert _units_of_text("1.5") == 3 * 2**1073  # any exact form Fraction reads
    with pytest.raises(ValueError, match="not a sum of doubles"):
        _units_of_text("2/3")
