"""Carbon maths against hand calculations and the DESNZ table in domain.md section 2."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from importlib import resources
from zoneinfo import ZoneInfo

import numpy as np
import pytest

from rules.carbon import (
    CarbonError,
    Interval,
    allocate,
    covered_hours,
    footprint,
    load_factors,
    month_edges,
    parse_factors,
    pct_change,
    register_deltas,
)

LONDON = ZoneInfo("Europe/London")
T0 = datetime(2025, 3, 1, tzinfo=UTC)


def _t(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def test_factor_file_holds_the_domain_md_values() -> None:
    # domain.md section 2 table, typed in by hand: generation (Scope 2) and T&D (Scope 3).
    table = load_factors()
    assert (table.years[2025].generation, table.years[2025].td_losses) == (0.17700, 0.01853)
    assert (table.years[2024].generation, table.years[2024].td_losses) == (0.20705, 0.01830)
    assert "DESNZ" in table.source and table.version


def test_factor_file_equals_the_shared_reference_rows() -> None:
    data = resources.files("rules").joinpath("data", "ghg_factors_uk.json")
    doc = json.loads(data.read_text())
    assert doc["2025"]["electricity_generated_uk_kwh"]["id"] == "7_400_4000_5_1"
    assert doc["2025"]["natural_gas_kwh_gross_cv"]["kgCO2e"] == 0.18296
    assert doc["2024"]["diesel_average_biofuel_blend_litre"]["kgCO2e"] == 2.51279


def test_year_without_factors_uses_latest_earlier_year_and_says_so() -> None:
    table = load_factors()
    exact = table.for_year(2024)
    assert exact.is_exact and exact.factors.year == 2024 and "DESNZ 2024" in exact.note
    later = table.for_year(2026)
    assert not later.is_exact and later.factors.year == 2025
    assert "no DESNZ factors published for 2026" in later.note and "2025" in later.note
    with pytest.raises(CarbonError):
        table.for_year(2023)


def test_parse_factors_reads_new_years_from_the_file() -> None:
    doc = {
        "_source": "test",
        "2030": {
            "electricity_generated_uk_kwh": {"kgCO2e": 0.05},
            "electricity_td_losses_uk_kwh": {"kgCO2e": 0.004},
        },
    }
    choice = parse_factors(doc).for_year(2031)
    assert choice.factors.year == 2030 and choice.factors.generation == 0.05


def test_register_deltas_plain_differences() -> None:
    values = [100.0, 101.5, 101.5, 104.0]
    d = register_deltas([_t(i) for i in range(4)], values)
    assert [iv.kwh for iv in d.intervals] == [1.5, 0.0, 2.5]
    assert d.resets == () and d.glitches == ()


def test_register_glitch_is_skipped_reset_restarts_counting() -> None:
    # 100 -> 99.2 (glitch: comes back) -> 101 -> 103 -> 5 (meter exchanged) -> 7 -> 10
    values = [100.0, 99.2, 101.0, 103.0, 5.0, 7.0, 10.0]
    times = [_t(i) for i in range(len(values))]
    d = register_deltas(times, values)
    assert d.glitches == (times[1],)
    assert d.resets == (times[4],)
    # counted: 100->101 (1), 101->103 (2), 5->7 (2), 7->10 (3); the exchange hour is unknown
    assert sum(iv.kwh for iv in d.intervals) == pytest.approx(8.0)
    assert (d.intervals[0].start, d.intervals[0].end) == (times[0], times[2])


def test_register_deltas_sorts_unordered_reads() -> None:
    d = register_deltas([_t(2), _t(0), _t(1)], [3.0, 1.0, 2.0])
    assert [iv.kwh for iv in d.intervals] == [1.0, 1.0] and d.resets == ()


def test_allocate_splits_intervals_pro_rata_across_buckets() -> None:
    edges = [_t(0), _t(10), _t(20)]
    ivs = [Interval(_t(8), _t(12), 4.0), Interval(_t(1), _t(2), 1.0), Interval(_t(19), _t(25), 6.0)]
    # by hand: 4 kWh over 8..12 h -> 2 + 2; 1 kWh in bucket 0; 6 kWh over 19..25 -> 1 in b1
    assert allocate(ivs, edges) == pytest.approx((3.0, 3.0))


def test_allocate_uses_real_elapsed_time_across_the_clock_change() -> None:
    # October 2025 in London has 31 days + 1 h (BST ends 26 Oct); one interval spans it exactly.
    edges = month_edges(2025, LONDON, 10, 11)
    start, end = edges[0].astimezone(UTC), edges[2].astimezone(UTC)
    hours_oct = 31 * 24 + 1
    hours_nov = 30 * 24
    total = float(hours_oct + hours_nov)
    got = allocate([Interval(start, end, total)], edges)
    assert got == pytest.approx((hours_oct, hours_nov))


def test_month_edges_are_local_midnights() -> None:
    edges = month_edges(2026, LONDON)
    assert len(edges) == 13
    assert edges[6].astimezone(UTC) == datetime(2026, 6, 30, 23, tzinfo=UTC)
    assert edges[-1].astimezone(UTC) == datetime(2027, 1, 1, tzinfo=UTC)


def test_footprint_scope2_scope3_and_export_kept_apart() -> None:
    f = load_factors().years[2025]
    fp = footprint(1234.5, 200.0, f)
    assert fp.factor_year == 2025
    assert fp.scope2_kg == pytest.approx(1234.5 * 0.17700)
    assert fp.scope3_td_kg == pytest.approx(1234.5 * 0.01853)
    assert fp.gross_kg == pytest.approx(1234.5 * (0.17700 + 0.01853))
    assert fp.export_avoided_kg == pytest.approx(200.0 * 0.17700)


def test_pct_change() -> None:
    assert pct_change(90.0, 120.0) == pytest.approx(-25.0)
    assert pct_change(5.0, 0.0) is None


def test_random_register_total_matches_numpy_differences() -> None:
    rng = np.random.default_rng(7)
    steps = rng.exponential(2.0, 500)
    values = 1e4 + np.cumsum(steps)
    d = register_deltas([_t(i / 2) for i in range(500)], values.tolist())
    assert sum(iv.kwh for iv in d.intervals) == pytest.approx(values[-1] - values[0])


def test_covered_hours_per_bucket() -> None:
    edges = [_t(0), _t(10), _t(20)]
    ivs = [Interval(_t(8), _t(12), 4.0), Interval(_t(15), _t(16), 0.0)]
    # by hand: 8..10 -> 2 h in bucket 0; 10..12 and 15..16 -> 3 h in bucket 1
    assert covered_hours(ivs, edges) == pytest.approx((2.0, 3.0))
    assert covered_hours([], edges) == (0.0, 0.0)
