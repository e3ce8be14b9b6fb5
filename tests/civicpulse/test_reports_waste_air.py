"""`civicpulse waste due` and `report air-quality` on real PostgreSQL against hand/numpy truth."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
import pytest

from storage import migrate
from tests.civicpulse.test_reports import Row, insert_readings, run_cli

pytestmark = pytest.mark.integration

DAY_START = datetime(2026, 10, 5, 23, 0, tzinfo=UTC)  # 6 Oct 2026 00:00 BST
DAY_END = DAY_START + timedelta(hours=24)


def _bin(sid: str, council: str, collected: datetime, start: float, rate: float) -> list[Row]:
    """Fill reads every 15 min: 70 % before ``collected``, then ``start + rate * hours``."""
    rows: list[Row] = []
    t = collected - timedelta(days=2)
    while t < DAY_START + timedelta(hours=12):
        h = (t - collected).total_seconds() / 3600
        fill = 70.0 if h < 0 else min(start + rate * h, 100.0)
        rows.append((t, council, sid, "waste_bin", "fill_level", fill, "%"))
        t += timedelta(minutes=15)
    return rows


C = DAY_START - timedelta(hours=60)  # the bins' last collection, 60 h before the day


def _load_bins(url: str) -> None:
    migrate(url)
    c = C
    rows = (
        _bin("bin-fast", "edinburgh", c, 2.0, 1.0)  # 80 % at c + 78 h = day start + 18 h
        + _bin("bin-slow", "edinburgh", c, 2.0, 0.5)  # 80 % at c + 156 h: not due
        + _bin("bin-full", "edinburgh", c, 60.0, 1.0)  # 80 % at c + 20 h: already full
        + _bin("bin-own", "edinburgh", c, 2.0, 0.7)  # own threshold 50 %: c + 48/0.7 h
        + _bin("bin-away", "aberdeen", c, 2.0, 1.0)  # another council
    )
    # After the day starts bin-fast is emptied: a plan made for the day must not see it.
    rows = [r for r in rows if not (r[2] == "bin-fast" and r[0] >= DAY_START + timedelta(hours=2))]
    rows.append(
        (
            DAY_START + timedelta(hours=2),
            "edinburgh",
            "bin-fast",
            "waste_bin",
            "fill_level",
            1.0,
            "%",
        )
    )
    insert_readings(url, rows)
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO sensor_sites (sensor_id, council, site, threshold_pct)"
            " VALUES ('bin-own', 'edinburgh', 'Princes St 98', 50)"
        )


def test_waste_due_lists_bins_full_by_end_of_day(fresh_db: str) -> None:
    _load_bins(fresh_db)
    c = C
    got = json.loads(
        run_cli(
            "waste",
            "due",
            "--date",
            "2026-10-06",
            "--council",
            "edinburgh",
            "--json",
            "--database-url",
            fresh_db,
        ).stdout
    )
    assert got["as_of"] == DAY_START.isoformat() and got["due_by"] == DAY_END.isoformat()
    due = {d["sensor_id"]: d for d in got["due"]}
    assert list(due) == ["bin-full", "bin-own", "bin-fast"]  # soonest first
    assert {d["sensor_id"] for d in got["not_due"]} == {"bin-slow"}
    assert due["bin-fast"]["full_at"] == (c + timedelta(hours=78)).isoformat()
    own_at = datetime.fromisoformat(due["bin-own"]["full_at"])
    assert own_at.timestamp() == pytest.approx((c + timedelta(hours=48 / 0.7)).timestamp())
    assert due["bin-own"]["threshold_pct"] == 50 and due["bin-own"]["site"] == "Princes St 98"
    assert due["bin-full"]["method"] == "full"
    assert due["bin-full"]["full_at"] == (c + timedelta(hours=20)).isoformat()
    assert due["bin-fast"]["rate_pct_per_h"] == pytest.approx(1.0)
    assert due["bin-fast"]["last_read_age_h"] == 0.2  # 15 min before the day
    assert due["bin-fast"]["fill_pct"] == pytest.approx(2.0 + 1.0 * 59.75, abs=0.05)
    assert due["bin-fast"]["hours_to_full"] == pytest.approx(18.25, abs=0.06)  # from 22:45


def _air_rows(rng: np.random.Generator) -> tuple[list[Row], dict[str, np.ndarray]]:
    """24 reads an hour for 3 days; NO2 over 200 for five hours; one thin hour."""
    t0 = datetime(2026, 1, 10, tzinfo=UTC)
    rows: list[Row] = []
    samples: dict[str, list[tuple[int, float]]] = {"no2": [], "pm10": [], "pm2_5": []}
    for hour in range(72):
        per_hour = 10 if hour == 30 else 24  # hour 30 under 75 % capture: no hourly mean
        for k in range(per_hour):
            t = t0 + timedelta(hours=hour, seconds=150 * k)
            values = {
                "no2": rng.uniform(230, 260) if 40 <= hour < 45 else rng.uniform(10, 60),
                "pm10": rng.uniform(45, 70) if hour < 24 else rng.uniform(5, 25),
                "pm2_5": rng.uniform(3, 15),
            }
            for metric, v in values.items():
                v = round(float(v), 2)
                rows.append((t, "aberdeen", "aq-1", "air_quality", metric, v, "ug/m3"))
                samples[metric].append((hour, v))
    hourly: dict[str, np.ndarray] = {}
    for metric, pairs in samples.items():
        arr = np.array(pairs)
        means = []
        for hour in range(72):
            vals = arr[arr[:, 0] == hour, 1]
            if len(vals) >= 18:
                means.append((hour, vals.mean()))
        hourly[metric] = np.array(means)
    return rows, hourly


def test_air_quality_compliance_from_raw_reads(fresh_db: str) -> None:
    migrate(fresh_db)
    rows, hourly = _air_rows(np.random.default_rng(11))
    insert_readings(fresh_db, rows)
    got = json.loads(
        run_cli(
            "report", "air-quality", "--year", "2026", "--json", "--database-url", fresh_db
        ).stdout
    )
    assert got["year"] == 2026 and "2010" in got["limits_source"]
    (site,) = got["sites"]
    rows_by_metric = {m["metric"]: m for m in site["metrics"]}
    for metric, h in hourly.items():
        r = rows_by_metric[metric]
        assert r["hours_with_data"] == len(h) == 71
        assert r["annual_mean"] == pytest.approx(h[:, 1].mean(), rel=1e-9)
        assert r["data_capture"] == pytest.approx(71 / 8760)
    assert rows_by_metric["no2"]["exceedances"] == int((hourly["no2"][:, 1] > 200).sum()) == 5
    pm10 = hourly["pm10"]
    days = [pm10[(pm10[:, 0] >= 24 * d) & (pm10[:, 0] < 24 * (d + 1)), 1] for d in range(3)]
    daily = [d.mean() for d in days if len(d) >= 18]
    assert rows_by_metric["pm10"]["exceedances"] == sum(m > 50 for m in daily) == 1
    pm25 = rows_by_metric["pm2_5"]
    assert pm25["target_2040"] == 10.0
    assert pm25["meets_2040_target"] == (hourly["pm2_5"][:, 1].mean() <= 10.0)


def test_unmigrated_database_says_what_to_do(fresh_db: str) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "civicpulse.cli",
            "waste",
            "due",
            "--date",
            "2026-10-06",
            "--database-url",
            fresh_db,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert "civicpulse db migrate" in proc.stderr and "Traceback" not in proc.stderr


def test_waste_forecast_stores_forecasts_idempotently(fresh_db: str) -> None:
    _load_bins(fresh_db)
    for _ in range(2):  # re-running for the same reads upserts
        run_cli("waste", "forecast", "--as-of", DAY_START.isoformat(), "--database-url", fresh_db)
    with psycopg.connect(fresh_db) as conn:
        rows = conn.execute(
            "SELECT sensor_id, as_of, full_at, method FROM bin_forecasts_latest ORDER BY 1"
        ).fetchall()
        assert conn.execute("SELECT count(*) FROM bin_forecasts").fetchone() == (5,)
    got = {r[0]: r for r in rows}
    assert set(got) == {"bin-away", "bin-fast", "bin-full", "bin-own", "bin-slow"}
    assert got["bin-fast"][1] == DAY_START - timedelta(minutes=15)  # its last read
    assert got["bin-fast"][2] == C + timedelta(hours=78)
    assert got["bin-full"][3] == "full" and got["bin-slow"][2] == C + timedelta(hours=156)


AIR_CLI = (sys.executable, "-m", "civicpulse.cli", "report", "air-quality")


def test_air_quality_table_says_words_not_true_false_none(fresh_db: str) -> None:
    from civicpulse.reports.air import NOT_APPLICABLE, NOT_MEASURED, table_cells
    from rules.air_quality import annual_compliance

    hour = datetime(2026, 3, 1, tzinfo=UTC)
    rows = annual_compliance(2026, {"no2": {}, "pm2_5": {hour: 12.0}, "pm10": {hour: 20.0}})
    cells = {r.metric: table_cells(r) for r in rows}
    # metric, capture, mean, limit, exceedances, passes, 2040 target
    assert cells["no2"][2:] == [NOT_MEASURED, "40", NOT_MEASURED, NOT_MEASURED, NOT_APPLICABLE]
    assert cells["pm2_5"][2:] == ["12.0", "25", NOT_APPLICABLE, "yes", "no"]
    assert cells["pm10"][4:] == ["0 of 35 allowed", "yes", NOT_APPLICABLE]

    migrate(fresh_db)
    insert_readings(fresh_db, _air_rows(np.random.default_rng(11))[0])
    proc = subprocess.run(
        [*AIR_CLI, "--year", "2026", "--database-url", fresh_db],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "160"},
    )
    assert proc.returncode == 0, proc.stderr
    assert not {"True", "False", "None"} & set(proc.stdout.replace("│", " ").split())
    assert " yes " in proc.stdout and "5 of 18 allowed" in proc.stdout
    assert f"{NOT_APPLICABLE}: no such limit or target" in proc.stdout


def test_air_quality_without_readings_is_one_usage_line(fresh_db: str) -> None:
    migrate(fresh_db)
    for args, words in (
        (["--year", "2026"], "no air-quality readings in 2026"),
        (["--year", str(datetime.now(UTC).year + 1)], "has not started yet"),
        (["--year", "2026", "--council", "atlantis"], "unknown council 'atlantis'"),
    ):
        proc = subprocess.run(
            [*AIR_CLI, *args, "--database-url", fresh_db],
            capture_output=True,
            text=True,
            timeout=120,
        )
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and words in lines[0], proc.stderr
