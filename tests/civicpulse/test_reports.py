"""`civicpulse report netzero` on real PostgreSQL: figures equal a calculation from raw reads."""

from __future__ import annotations

import csv
import itertools
import json
import subprocess
import sys
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import psycopg
import pytest

from storage import migrate

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FACTOR_FILE = REPO / "rules/data/ghg_factors_uk.json"
LONDON = ZoneInfo("Europe/London")
Row = tuple[datetime, str, str, str, str, float, str]


def insert_readings(url: str, rows: Iterable[Row]) -> None:
    """COPY (time, council, sensor_id, kind, metric, value, unit) rows into `readings`."""
    with (
        psycopg.connect(url) as conn,
        conn.cursor() as cur,
        cur.copy(
            "COPY readings (time, council, sensor_id, kind, metric, value, unit, received_at)"
            " FROM STDIN"
        ) as cp,
    ):
        for r in rows:
            cp.write_row((*r, r[0]))


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "civicpulse.cli", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    return proc


class Meter:
    """Half-hourly register reads built from known per-interval consumption (the truth)."""

    def __init__(self, sensor_id: str, start: datetime, days: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        n = days * 48
        self.sensor_id = sensor_id
        self.times = [start + timedelta(minutes=30 * i) for i in range(n + 1)]
        self.used = rng.gamma(2.0, 1.5, n)  # kWh in each half hour: what really happened
        self.exported = np.where(rng.random(n) < 0.3, rng.uniform(0, 2, n), 0.0)
        self.counted = np.ones(n, dtype=bool)  # intervals the report can know about

    def reads(self, register: np.ndarray, start_kwh: float) -> list[float]:
        return (start_kwh + np.concatenate([[0.0], np.cumsum(register)])).tolist()


def _edges(year: int) -> list[datetime]:
    return [datetime(year, m, 1, tzinfo=LONDON) for m in range(1, 13)] + [
        datetime(year + 1, 1, 1, tzinfo=LONDON)
    ]


def _monthly(times: list[datetime], kwh: np.ndarray, year: int) -> np.ndarray:
    """kWh per local month, intervals split by elapsed time (numpy, independent of the code)."""
    ts = np.array([t.timestamp() for t in times])
    a, b = ts[:-1], ts[1:]
    cuts = np.array([e.timestamp() for e in _edges(year)])
    lo = np.maximum(a[:, None], cuts[None, :-1])
    hi = np.minimum(b[:, None], cuts[None, 1:])
    share = np.clip(hi - lo, 0, None) / (b - a)[:, None]
    return (kwh[:, None] * share).sum(axis=0)


def _year_data(year: int) -> tuple[list[Row], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """Two meters, 1 Sep .. 6 Nov local; B has solar, a glitch, a meter exchange and a gap."""
    start = datetime(year, 9, 1, tzinfo=LONDON).astimezone(UTC)
    rows: list[Row] = []
    truth: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for sid, seed in (("em-a", year), ("em-b", year + 1)):
        m = Meter(sid, start, 66, seed)
        imp = m.reads(m.used, 52_000.0)
        exp = m.reads(m.exported, 800.0)
        times = list(m.times)
        if sid == "em-b":
            imp[100] = imp[99] - 5.0  # a glitch: the register comes back afterwards
            k = 2000  # meter exchanged: the new register starts near zero
            imp[k:] = [v - imp[k] + 3.0 for v in imp[k:]]
            m.counted[k - 1] = False  # energy across the exchange is unknown: not counted
            drop = range(1400, 1700)  # a 6-day gap spanning 30 Sep / 1 Oct
            keep = [i for i in range(len(times)) if i not in drop]
            times = [times[i] for i in keep]
            imp = [imp[i] for i in keep]
            exp = [exp[i] for i in keep]
        truth[sid] = (
            _regrid(m.times, np.where(m.counted, m.used, 0.0), times, year),
            _regrid(m.times, m.exported, times, year),
        )
        for t, v in zip(times, imp, strict=True):
            rows.append((t, "testshire", sid, "energy_meter", "energy_import", v, "kWh"))
        if sid == "em-b":
            for t, v in zip(times, exp, strict=True):
                rows.append((t, "testshire", sid, "energy_meter", "energy_export", v, "kWh"))
    return rows, truth


def _regrid(
    all_times: list[datetime], kwh: np.ndarray, kept: list[datetime], year: int
) -> np.ndarray:
    """Monthly kWh seen through the kept reads: a gap's energy spreads evenly over the gap."""
    index = {t: i for i, t in enumerate(all_times)}
    pos = [index[t] for t in kept]
    merged = np.array([kwh[a:b].sum() for a, b in itertools.pairwise(pos)])
    return _monthly(kept, merged, year)


@pytest.fixture
def netzero_db(fresh_db: str) -> tuple[str, dict[int, dict[str, tuple[np.ndarray, np.ndarray]]]]:
    migrate(fresh_db)
    truths = {}
    for year in (2024, 2026):
        rows, truths[year] = _year_data(year)
        insert_readings(fresh_db, rows)
    with psycopg.connect(fresh_db) as conn:
        conn.execute(
            "INSERT INTO sensor_sites (sensor_id, council, site) VALUES"
            " ('em-a', 'testshire', 'Town Hall'), ('em-b', 'testshire', 'Leisure Centre')"
        )
    return fresh_db, truths


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_netzero_month_figures_equal_independent_calculation(netzero_db, tmp_path: Path) -> None:
    url, truths = netzero_db
    out = tmp_path / "report"
    run_cli(
        "report",
        "netzero",
        "--period",
        "2026-10",
        "--out",
        str(out),
        "--baseline-year",
        "2024",
        "--database-url",
        url,
    )
    factors = json.loads(FACTOR_FILE.read_text())
    gen25 = factors["2025"]["electricity_generated_uk_kwh"]["kgCO2e"]
    td25 = factors["2025"]["electricity_td_losses_uk_kwh"]["kgCO2e"]
    gen24 = factors["2024"]["electricity_generated_uk_kwh"]["kgCO2e"]
    td24 = factors["2024"]["electricity_td_losses_uk_kwh"]["kgCO2e"]

    monthly = {r["month"]: r for r in _csv(out / "netzero_2026-10_monthly.csv")}
    assert list(monthly) == [f"2026-{m:02d}" for m in range(1, 11)]
    for m in (9, 10):
        imp = sum(truths[2026][s][0][m - 1] for s in ("em-a", "em-b"))
        exp = truths[2026]["em-b"][1][m - 1]
        base = sum(truths[2024][s][0][m - 1] for s in ("em-a", "em-b"))
        row = monthly[f"2026-{m:02d}"]
        assert row["factor_year"] == "2025" and row["baseline_factor_year"] == "2024"
        assert float(row["import_kwh"]) == pytest.approx(imp, abs=2e-3)
        assert float(row["export_kwh"]) == pytest.approx(exp, abs=2e-3)
        assert float(row["scope2_kgco2e"]) == pytest.approx(imp * gen25, abs=2e-3)
        assert float(row["scope3_td_kgco2e"]) == pytest.approx(imp * td25, abs=2e-3)
        assert float(row["total_kgco2e"]) == pytest.approx(imp * (gen25 + td25), abs=2e-3)
        assert float(row["solar_export_avoided_kgco2e"]) == pytest.approx(exp * gen25, abs=2e-3)
        assert float(row["baseline_total_kgco2e"]) == pytest.approx(base * (gen24 + td24), abs=2e-3)
        want = (imp * (gen25 + td25) - base * (gen24 + td24)) / (base * (gen24 + td24)) * 100
        assert float(row["change_total_pct"]) == pytest.approx(want, abs=0.01)
    # A month without readings is unknown, not zero: blank figures and a note saying so
    assert monthly["2026-03"]["import_kwh"] == "" and monthly["2026-03"]["total_kgco2e"] == ""
    assert "no readings in 2026-03" in monthly["2026-03"]["note"]
    assert monthly["2026-03"]["meters"] == "0" and monthly["2026-03"]["completeness_pct"] == ""

    sites = {r["sensor_id"]: r for r in _csv(out / "netzero_2026-10_sites.csv")}
    assert sites["em-b"]["site"] == "Leisure Centre" and sites["em-b"]["factor_year"] == "2025"
    assert float(sites["em-b"]["import_kwh"]) == pytest.approx(truths[2026]["em-b"][0][9], abs=2e-3)
    assert (sites["em-b"]["register_resets"], sites["em-b"]["ignored_reads"]) == ("1", "1")
    assert (sites["em-a"]["register_resets"], sites["em-a"]["ignored_reads"]) == ("0", "0")

    summary = {r["key"]: r["value"] for r in _csv(out / "netzero_2026-10_summary.csv")}
    assert "no DESNZ factors published for 2026" in summary["factor_note"]
    assert summary["factor_year"] == "2025" and summary["baseline_factor_year"] == "2024"
    ytd = sum(truths[2026][s][0][:10].sum() for s in ("em-a", "em-b"))
    assert float(summary["year_to_date_import_kwh"]) == pytest.approx(ytd, abs=5e-3)

    annual = {r["year"]: r for r in _csv(out / "netzero_2026-10_annual.csv")}
    assert list(annual) == ["2024 Jan-10", "2025 Jan-10", "2026 Jan-10"]
    assert [r["factor_year"] for r in annual.values()] == ["2024", "2025", "2025"]
    assert annual["2025 Jan-10"]["meter_hours"] == "0.0"
    assert annual["2025 Jan-10"]["change_total_pct"] == ""  # no readings: no % change
    assert "no readings in 2025 Jan-10" in annual["2025 Jan-10"]["note"]
    assert float(annual["2026 Jan-10"]["import_kwh"]) == pytest.approx(ytd, abs=5e-3)
    # October 2026 in London: 745 h; two meters, minus the half hour across the exchange
    assert float(monthly["2026-10"]["meter_hours"]) == pytest.approx(2 * 745 - 0.5)

    pdf = out / "netzero_2026-10.pdf"
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(pdf), str(tmp_path / "page")], check=True)
    pages = sorted(tmp_path.glob("page*.png"))
    assert len(pages) == 3
    from PIL import Image

    for page in pages:
        grey = np.asarray(Image.open(page).convert("L"), dtype=float)
        assert (grey < 200).mean() > 0.01, f"{page.name} is blank"
        assert grey.std() > 10


def test_netzero_year_without_earlier_factors_fails_clearly(netzero_db, tmp_path: Path) -> None:
    url, _ = netzero_db
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "civicpulse.cli",
            "report",
            "netzero",
            "--period",
            "2026",
            "--baseline-year",
            "2019",
            "--out",
            str(tmp_path),
            "--database-url",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert proc.returncode == 1
    assert "no DESNZ factors for 2019" in proc.stderr


def test_netzero_year_period_sites_total_the_year(netzero_db, tmp_path: Path) -> None:
    url, truths = netzero_db
    run_cli(
        "report",
        "netzero",
        "--period",
        "2026",
        "--out",
        str(tmp_path),
        "--baseline-year",
        "2024",
        "--database-url",
        url,
    )
    sites = {r["sensor_id"]: r for r in _csv(tmp_path / "netzero_2026_sites.csv")}
    for sid in ("em-a", "em-b"):
        want, base = truths[2026][sid][0].sum(), truths[2024][sid][0].sum()
        assert float(sites[sid]["import_kwh"]) == pytest.approx(want, abs=5e-3)
        assert float(sites[sid]["baseline_import_kwh"]) == pytest.approx(base, abs=5e-3)
    summary = {r["key"]: r["value"] for r in _csv(tmp_path / "netzero_2026_summary.csv")}
    total = sum(truths[2026][s][0].sum() for s in ("em-a", "em-b"))
    assert float(summary["period_import_kwh"]) == pytest.approx(total, abs=5e-3)
    assert len(_csv(tmp_path / "netzero_2026_monthly.csv")) == 12


def _netzero(*args: str) -> subprocess.CompletedProcess[str]:
    """`civicpulse report netzero ARGS` in a process, whatever its exit code."""
    return subprocess.run(
        [sys.executable, "-m", "civicpulse.cli", "report", "netzero", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )


def _pdf_text(pdf: Path) -> str:
    return subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout


def _completeness(rows: list[Row], start: datetime, end: datetime) -> tuple[int, float]:
    """Meters and % of their half-hours holding an import read, counted from the seeded rows."""
    slots: dict[str, set[int]] = {}
    for t, _council, sid, _kind, metric, _v, _unit in rows:
        if metric == "energy_import" and start <= t < end:
            slots.setdefault(sid, set()).add(int(t.timestamp()) // 1800)
    half_hours = int(end.timestamp() - start.timestamp()) // 1800  # October: 745 h, not 744
    return len(slots), 100 * sum(map(len, slots.values())) / (len(slots) * half_hours)


def test_netzero_completeness_council_name_and_no_baseline(netzero_db, tmp_path: Path) -> None:
    url, _ = netzero_db
    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO councils (slug, name) VALUES ('testshire', 'Testshire Council')")
    out = tmp_path / "report"
    proc = run_cli(
        *("report", "netzero", "--period", "2026-10", "--out", str(out)),
        *("--council", "testshire", "--database-url", url),  # baseline 2025: no readings
    )
    assert "Testshire Council, October 2026: 2 meter(s)" in proc.stderr

    rows, _ = _year_data(2026)
    monthly = {r["month"]: r for r in _csv(out / "netzero_2026-10_monthly.csv")}
    for m in (9, 10):
        start = datetime(2026, m, 1, tzinfo=LONDON)
        n, pct = _completeness(rows, start, datetime(2026, m + 1, 1, tzinfo=LONDON))
        assert monthly[f"2026-{m:02d}"]["meters"] == str(n) == "2"
        assert float(monthly[f"2026-{m:02d}"]["completeness_pct"]) == pytest.approx(pct, abs=0.05)
    assert float(monthly["2026-10"]["completeness_pct"]) < 100  # em-b's gap into October

    summary = {r["key"]: r["value"] for r in _csv(out / "netzero_2026-10_summary.csv")}
    assert summary["council_name"] == "Testshire Council"
    assert summary["period_baseline_total_kgco2e"] == ""  # not 0.000: there is no baseline
    assert summary["period_change_total_pct"] == ""
    assert "no baseline: no readings in 2025-10" in summary["period_note"]
    assert summary["period_meters"] == "2" and summary["period_baseline_meters"] == "0"

    text = _pdf_text(out / "netzero_2026-10.pdf")
    pages = text.split("\f")
    assert all("Testshire Council" in page for page in pages if page.strip())
    assert "change: no baseline" in text and "no readings in 2025-10" in text
    assert "0.00 t" not in text and "n/a" not in text
    assert f"data completeness {float(monthly['2026-10']['completeness_pct']):.1f}%" in text
    assert "2026-10 uses DESNZ 2025 (2026 not published)" in text


@pytest.fixture
def netzero_2024_2025(fresh_db: str) -> tuple[str, dict[int, dict[str, Any]]]:
    """The same two meters in 2024 and 2025: two years with their own DESNZ factors."""
    migrate(fresh_db)
    truths = {}
    for year in (2024, 2025):
        rows, truths[year] = _year_data(year)
        insert_readings(fresh_db, rows)
    return fresh_db, truths


def test_netzero_each_period_uses_its_own_years_factors(netzero_2024_2025, tmp_path: Path) -> None:
    url, truths = netzero_2024_2025
    factors = json.loads(FACTOR_FILE.read_text())

    def per_kwh(year: int) -> float:
        f = factors[str(year)]
        return (
            f["electricity_generated_uk_kwh"]["kgCO2e"]
            + f["electricity_td_losses_uk_kwh"]["kgCO2e"]
        )

    run_cli(
        *("report", "netzero", "--period", "2025-10", "--baseline-year", "2024"),
        *("--out", str(tmp_path), "--database-url", url),
    )
    monthly = {r["month"]: r for r in _csv(tmp_path / "netzero_2025-10_monthly.csv")}
    for m in (9, 10):
        kwh = {y: sum(truths[y][s][0][m - 1] for s in ("em-a", "em-b")) for y in (2024, 2025)}
        row = monthly[f"2025-{m:02d}"]
        assert (row["factor_year"], row["baseline_factor_year"]) == ("2025", "2024")
        assert float(row["total_kgco2e"]) / 1000 == pytest.approx(
            kwh[2025] * per_kwh(2025) / 1000, abs=1e-5
        )
        assert float(row["baseline_total_kgco2e"]) / 1000 == pytest.approx(
            kwh[2024] * per_kwh(2024) / 1000, abs=1e-5
        )
        assert row["note"] == ""  # both years have their own published factors
    annual = {r["year"]: r for r in _csv(tmp_path / "netzero_2025-10_annual.csv")}
    assert [(r["factor_year"], r["baseline_factor_year"]) for r in annual.values()] == [
        ("2024", "2024"),
        ("2025", "2024"),
    ]
    text = _pdf_text(tmp_path / "netzero_2025-10.pdf")
    assert "2025-10 uses DESNZ 2025; 2024-10 uses DESNZ 2024." in text
    total = sum(truths[2025][s][0][9] for s in ("em-a", "em-b")) * per_kwh(2025)
    assert f"Total: {total / 1000:,.2f} t CO2e" in text


def test_netzero_impossible_requests_are_one_usage_line(netzero_db, tmp_path: Path) -> None:
    url, _ = netzero_db
    next_year = datetime.now(UTC).year + 1
    cases = [
        (["--period", f"{next_year}-01"], "'--period'", "has not started yet"),
        (["--period", "2026-10", "--baseline-year", "2027"], "'--baseline-year'", "is after"),
        (["--period", "2026-10", "--council", "atlantis"], "'--council'", "unknown council"),
        (["--period", "2025-03"], "'--period'", "no energy-meter readings in March 2025"),
        (["--period", "2026-13"], "'--period'", "YYYY-MM or YYYY"),
        (["--period", "0999"], "'--period'", "1990-2100"),
    ]
    for args, option, words in cases:
        out = tmp_path / "none"
        proc = _netzero(*args, "--out", str(out), "--database-url", url)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2, (args, proc.stderr)
        assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
        assert option in lines[0] and words in lines[0], lines[0]
        assert not out.exists() or not any(out.iterdir()), "no empty report is written"
    with psycopg.connect(url) as conn:  # a registered council without meters
        conn.execute("INSERT INTO councils (slug, name) VALUES ('quiet', 'Quiet Council')")
    proc = _netzero("--period", "2026-10", "--council", "quiet", "--out", str(tmp_path / "q"),
                    "--database-url", url)  # fmt: skip
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert "'quiet' has no energy-meter readings" in proc.stderr
    assert "testshire" in proc.stderr  # names the councils that have meters


@pytest.mark.parametrize(
    ("pct", "shown"),
    [(-13.24, "-13.2 %"), (1.25, "+1.2 %"), (-0.00001, "0.0 %"), (0.04, "0.0 %"), (0.0, "0.0 %")],
)
def test_pdf_changes_are_signed_and_never_minus_zero(pct: float, shown: str) -> None:
    from civicpulse.reports.netzero_pdf import signed_pct

    assert signed_pct(pct) == shown
