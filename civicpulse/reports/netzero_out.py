"""Net Zero report CSVs: summary, monthly, annual and per-site figures, factor year on each row."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from civicpulse.reports.netzero import SLOT_S, Compared, NetZeroReport, explain

FOOTPRINT_COLUMNS = (
    "factor_year",
    "import_kwh",
    "export_kwh",
    "scope2_kgco2e",
    "scope3_td_kgco2e",
    "total_kgco2e",
    "solar_export_avoided_kgco2e",
)


def _num(x: float | None, places: int = 3) -> str:
    return "" if x is None else f"{x:.{places}f}"


def _pct(share: float | None) -> str:
    return "" if share is None else f"{share * 100:.1f}"


def _figures(c: Compared) -> list[Any]:
    """A row's figures; a side without readings is blank (unknown), and ``note`` says why."""
    cur, base = c.current, c.baseline
    now = c.measured
    old = c.has_baseline
    return [
        cur.factor_year,
        _num(cur.import_kwh if now else None),
        _num(cur.export_kwh if now else None),
        _num(cur.scope2_kg if now else None),
        _num(cur.scope3_td_kg if now else None),
        _num(cur.gross_kg if now else None),
        _num(cur.export_avoided_kg if now else None),
        c.baseline_label,
        base.factor_year,
        _num(base.import_kwh if old else None),
        _num(base.gross_kg if old else None),
        _num(c.change_kwh_pct, 2),
        _num(c.change_kg_pct, 2),
        _num(c.meter_hours, 1),
        _num(c.baseline_meter_hours, 1),
        c.meters,
        _pct(c.completeness),
        c.baseline_meters,
        _pct(c.baseline_completeness),
        "; ".join(explain(c)),
    ]


COMPARED_COLUMNS = (
    *FOOTPRINT_COLUMNS,
    "baseline_period",
    "baseline_factor_year",
    "baseline_import_kwh",
    "baseline_total_kgco2e",
    "change_import_pct",  # blank when either side has no readings (``note`` says which)
    "change_total_pct",
    "meter_hours",  # register-covered meter-hours
    "baseline_meter_hours",
    "meters",  # meters with an import read in the period
    "completeness_pct",  # % of their expected half-hours with a read
    "baseline_meters",
    "baseline_completeness_pct",
    "note",  # why a figure is blank, which factor year was borrowed
)


def _write(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_csvs(report: NetZeroReport, out: Path) -> list[Path]:
    """``netzero_<period>_{summary,monthly,annual,sites}.csv`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    stem = f"netzero_{report.period.label}"
    summary = [
        ("period", report.period.label),
        ("council", report.council or "all"),
        ("council_name", report.council_name),
        ("as_of", report.as_of.isoformat(timespec="seconds")),
        ("period_complete", "no: figures to as_of" if report.in_progress else "yes"),
        (
            "completeness_definition",
            f"share of the expected {SLOT_S // 60}-minute intervals (up to as_of) with an "
            "import-register read, over the meters with a read in the period",
        ),
        ("factor_year", report.factors.factors.year),
        ("factor_note", report.factors.note),
        ("baseline_year", report.baseline_year),
        ("baseline_factor_year", report.baseline_factors.factors.year),
        ("baseline_factor_note", report.baseline_factors.note),
        *((f"factor_note_{c.reporting_year}", c.note) for c in report.year_factors),
        ("factor_source", report.source),
        ("factor_file_version", report.version),
        ("solar_export", "shown separately as avoided grid emissions; never netted off"),
    ]
    for prefix, c in (("period", report.period_total), ("year_to_date", report.ytd_total)):
        pairs = zip(COMPARED_COLUMNS, _figures(c), strict=True)
        summary += [(f"{prefix}_{k}", v) for k, v in pairs]
    return [
        _write(out / f"{stem}_summary.csv", ("key", "value"), summary),
        _write(
            out / f"{stem}_monthly.csv",
            ("month", *COMPARED_COLUMNS),
            ([c.label, *_figures(c)] for c in report.months),
        ),
        _write(
            out / f"{stem}_annual.csv",
            ("year", *COMPARED_COLUMNS),
            ([c.label, *_figures(c)] for c in report.annual),
        ),
        _write(
            out / f"{stem}_sites.csv",
            (
                "site",
                "sensor_id",
                "council",
                "period",
                *COMPARED_COLUMNS,
                "register_resets",
                "ignored_reads",
            ),
            (
                [
                    s.site,
                    s.sensor_id,
                    s.council,
                    s.figures.label,
                    *_figures(s.figures),
                    s.resets,
                    s.ignored_reads,
                ]
                for s in report.sites
            ),
        ),
    ]
