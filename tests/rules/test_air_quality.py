"""UK legal limits, daily means, exceedances and annual compliance, checked on Aberdeen data."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from rules.air_quality import (
    ENGLAND_PM25_TARGET_2040,
    LEGAL_LIMITS,
    WHO_2021_GUIDELINES,
    annual_compliance,
    count_exceedances,
    daily_means,
)
from rules.daqi import hourly_means

ABERDEEN = Path(__file__).resolve().parents[1] / "fixtures" / "aberdeen"
SITES = ("union-street-roadside", "wellington-road")
H = timedelta(hours=1)


def test_legal_limits_are_domain_md_numbers() -> None:
    got = {(x.metric, x.averaging, x.value_ug_m3, x.allowed_per_year) for x in LEGAL_LIMITS}
    assert got == {
        ("no2", "1 hour", 200.0, 18),
        ("no2", "calendar year", 40.0, None),
        ("pm10", "24 hours", 50.0, 35),
        ("pm10", "calendar year", 40.0, None),
        ("pm2_5", "calendar year", 25.0, None),
    }
    assert all("Air Quality Standards Regulations 2010" in x.source for x in LEGAL_LIMITS)
    assert ENGLAND_PM25_TARGET_2040.value_ug_m3 == 10.0
    assert "SI 2023/96" in ENGLAND_PM25_TARGET_2040.source
    who = {(x.metric, x.averaging.split()[0], x.value_ug_m3) for x in WHO_2021_GUIDELINES}
    assert who == {("pm2_5", "calendar", 5.0), ("pm2_5", "24", 15.0), ("pm10", "calendar", 15.0),
                   ("pm10", "24", 45.0), ("no2", "calendar", 10.0), ("no2", "24", 25.0),
                   ("o3", "8", 100.0)}  # fmt: skip


def test_exceedance_is_strictly_greater() -> None:
    assert count_exceedances([200.0, 200.0001, 199.9, 350.0], 200.0) == 2
    assert count_exceedances([], 50.0) == 0


def test_daily_means_need_18_hours_and_use_hour_starts() -> None:
    day = datetime(2026, 1, 5, tzinfo=UTC)
    hourly = {day + k * H: float(k) for k in range(18)}  # 00:00 .. 17:00 starts
    hourly |= {day + 23 * H + k * H: 1.0 for k in range(1, 18)}  # 17 hours of the next day
    hourly[day + 23 * H] = 100.0  # starts 23:00: still 5 January
    assert daily_means(hourly) == {date(2026, 1, 5): pytest.approx((153 + 100) / 19)}
    assert daily_means(hourly, min_hours=17)[date(2026, 1, 6)] == 1.0
    with pytest.raises(ValueError, match="hour starts"):
        daily_means({day + timedelta(minutes=30): 1.0})
    with pytest.raises(ValueError, match="naive"):
        daily_means({datetime(2026, 1, 5): 1.0})


def _council(site: str) -> tuple[np.ndarray, np.ndarray]:
    """(hour-start times as datetime64[h], values[n, 3] for NO2, PM10, PM2.5) via numpy only."""
    path = ABERDEEN / f"council_hourly_{site}.csv"
    raw = np.loadtxt(path, delimiter=";", skiprows=1, dtype=str)
    # README: local time, hour-ending. January is GMT = UTC, so the hour starts 1 h earlier.
    starts = np.array([np.datetime64(s.replace(" ", "T"), "h") for s in raw[:, 0]]) - 1
    return starts, raw[:, 1:].astype(float)


def _as_hourly(starts: np.ndarray, column: np.ndarray) -> dict[datetime, float]:
    return {
        datetime.fromisoformat(str(t)).replace(tzinfo=UTC): float(v)
        for t, v in zip(starts, column, strict=True)
    }


@pytest.mark.parametrize("site", SITES)
def test_aberdeen_daily_means_and_exceedances_match_numpy(site: str) -> None:
    starts, values = _council(site)
    assert len(starts) == 14 * 24 and str(starts[0]) == "2018-01-07T23"
    # First row is the hour 23:00-24:00 of 7 Jan (1 hour, no daily mean); then 13 full days;
    # 21 Jan has 23 hours (its last hour is labelled 00:00 on 22 Jan, outside the excerpt).
    for col, metric in enumerate(("no2", "pm10", "pm2_5")):
        series = values[:, col]
        np_daily = np.append(series[1:313].reshape(13, 24).mean(axis=1), series[313:].mean())
        daily = daily_means(_as_hourly(starts, series))
        assert list(daily) == [date(2018, 1, d) for d in range(8, 22)], metric
        assert list(daily.values()) == pytest.approx(np_daily, rel=1e-12)
        for threshold in (5.0, 10.0, 20.0, 50.0):
            want = int(np.sum(np_daily > threshold))
            assert count_exceedances(daily.values(), threshold) == want
    no2 = values[:, 0]
    # Counted by hand with awk over the CSV: hourly NO2 > 100 µg/m³.
    assert count_exceedances(no2, 100.0) == {SITES[0]: 19, SITES[1]: 29}[site]
    assert count_exceedances(no2, 200.0) == int(np.sum(no2 > 200.0)) == 0


@pytest.mark.parametrize("site", SITES)
def test_aberdeen_two_weeks_compliance_matches_numpy(site: str) -> None:
    starts, values = _council(site)
    metrics = ("no2", "pm10", "pm2_5")
    rows = annual_compliance(
        2018, {m: _as_hourly(starts, values[:, i]) for i, m in enumerate(metrics)}
    )
    assert [r.metric for r in rows] == ["no2", "pm10", "pm2_5"]
    for row, col in zip(rows, values.T, strict=True):
        assert row.year == 2018 and row.hours_with_data == 336
        assert row.data_capture == pytest.approx(336 / 8760)
        assert row.annual_mean == pytest.approx(col.mean(), rel=1e-12)
    no2, pm10, pm25 = rows
    assert (no2.exceedances, no2.allowed, no2.short_term_limit) == (0, 18, 200.0)
    assert no2.passes == bool(values[:, 0].mean() <= 40.0)
    np_pm10_daily = np.append(values[1:313, 1].reshape(13, 24).mean(axis=1), values[313:, 1].mean())
    assert (pm10.exceedances, pm10.allowed) == (int(np.sum(np_pm10_daily > 50.0)), 35)
    assert pm25.exceedances is None and pm25.target_2040 == 10.0
    assert pm25.meets_2040_target == bool(values[:, 2].mean() <= 10.0)
    assert no2.target_2040 is None and no2.meets_2040_target is None


def test_sds011_hourly_means_match_numpy() -> None:
    path = ABERDEEN / "sds011_sensor_5331_2018-02-05_06-10.csv"
    raw = np.loadtxt(path, delimiter=";", skiprows=1, usecols=(5, 6, 9), dtype=str)
    times = np.array([np.datetime64(t, "s") for t in raw[:, 0]])  # README: UTC
    for col in (1, 2):  # P1 = PM10, P2 = PM2.5
        vals = raw[:, col].astype(float)
        hours = times.astype("datetime64[h]")
        want = {}
        for h in np.unique(hours):
            sel = vals[hours == h]
            if len(sel) >= 18:  # 75 % of 24 expected at a 150-s interval
                want[datetime.fromisoformat(str(h)).replace(tzinfo=UTC)] = sel.mean()
        samples = [
            (datetime.fromisoformat(str(t)).replace(tzinfo=UTC), float(v))
            for t, v in zip(times, vals, strict=True)
        ]
        got = hourly_means(samples, expected_per_hour=24)
        assert len(want) == 4 and list(got) == list(want)
        assert list(got.values()) == pytest.approx(list(want.values()), rel=1e-12)
        # Thin 07:00 to 17 samples: that hour loses its mean.
        seven = [s for s in samples if s[0].hour == 7][:17]
        thinned = [s for s in samples if s[0].hour != 7] + seven
        assert datetime(2018, 2, 5, 7, tzinfo=UTC) not in hourly_means(thinned, 24)


def _year(value: float, start: datetime, hours: int = 8760) -> dict[datetime, float]:
    return {start + k * H: value for k in range(hours)}


def test_annual_compliance_allowances_and_targets() -> None:
    y0 = datetime(2025, 1, 1, tzinfo=UTC)
    no2 = _year(20.0, y0)
    for k in range(18):
        no2[y0 + k * 10 * H] = 201.0
    no2[y0 + 500 * H] = 200.0  # equal to the limit: not an exceedance
    no2[y0 - H] = 999.0  # 2024-12-31 23:00 start: outside 2025
    no2[y0 + 8760 * H] = 999.0  # 2026-01-01 00:00 start: outside 2025
    pm10 = _year(10.0, y0)
    for d in range(36):  # 36 whole days at 52 µg/m³ (> 50)
        for h in range(24):
            pm10[y0 + (d * 24 + h) * H] = 52.0
    pm25 = _year(10.0, y0)
    rows = {r.metric: r for r in annual_compliance(2025, {"no2": no2, "pm10": pm10, "pm2_5": pm25})}
    assert (rows["no2"].exceedances, rows["no2"].passes) == (18, True)
    assert rows["no2"].hours_with_data == 8760 and rows["no2"].data_capture == 1.0
    no2[y0 + 7 * H] = 200.5
    assert annual_compliance(2025, {"no2": no2})[0].passes is False  # 19 > 18
    assert (rows["pm10"].exceedances, rows["pm10"].passes) == (36, False)
    expected_pm10 = (36 * 24 * 52.0 + (8760 - 36 * 24) * 10.0) / 8760
    assert rows["pm10"].annual_mean == pytest.approx(expected_pm10)
    assert (rows["pm2_5"].passes, rows["pm2_5"].meets_2040_target) == (True, True)
    pm25[y0] = 10.0 + 8760 * 0.01  # lifts the annual mean to 10.01
    row = annual_compliance(2025, {"pm2_5": pm25})[0]
    assert row.annual_mean == pytest.approx(10.01)
    assert (row.passes, row.meets_2040_target) == (True, False)
    assert annual_compliance(2024, {"pm2_5": _year(26.0, y0 - 8784 * H, 8784)})[0].passes is False
    empty = annual_compliance(2025, {"no2": {}})[0]
    assert (empty.annual_mean, empty.passes, empty.exceedances) == (None, None, 0)
    assert annual_compliance(2025, {"o3": no2}) == []
