"""Net Zero report files: three CSVs and a PDF with charts (matplotlib), factor year on each."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from civicpulse.reports.netzero import Compared, NetZeroReport

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


def _figures(c: Compared) -> list[Any]:
    cur, base = c.current, c.baseline
    return [
        cur.factor_year,
        _num(cur.import_kwh),
        _num(cur.export_kwh),
        _num(cur.scope2_kg),
        _num(cur.scope3_td_kg),
        _num(cur.gross_kg),
        _num(cur.export_avoided_kg),
        c.baseline_label,
        base.factor_year,
        _num(base.import_kwh),
        _num(base.gross_kg),
        _num(c.change_kwh_pct, 2),
        _num(c.change_kg_pct, 2),
    ]


COMPARED_COLUMNS = (
    *FOOTPRINT_COLUMNS,
    "baseline_period",
    "baseline_factor_year",
    "baseline_import_kwh",
    "baseline_total_kgco2e",
    "change_import_pct",
    "change_total_pct",
)


def _write(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_csvs(report: NetZeroReport, out: Path) -> list[Path]:
    """``netzero_<period>_{summary,monthly,sites}.csv`` in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    stem = f"netzero_{report.period.label}"
    summary = [
        ("period", report.period.label),
        ("council", report.council or "all"),
        ("factor_year", report.factors.factors.year),
        ("factor_note", report.factors.note),
        ("baseline_year", report.baseline_year),
        ("baseline_factor_year", report.baseline_factors.factors.year),
        ("baseline_factor_note", report.baseline_factors.note),
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
            out / f"{stem}_sites.csv",
            ("site", "sensor_id", "council", "period", *COMPARED_COLUMNS,
             "register_resets", "ignored_reads"),
            (
                [s.site, s.sensor_id, s.council, s.figures.label, *_figures(s.figures),
                 s.resets, s.ignored_reads]
                for s in report.sites
            ),
        ),
    ]


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.1f} %"


def write_pdf(report: NetZeroReport, path: Path) -> Path:
    """A forwardable PDF: headline figures, monthly trend, solar export, per-site chart."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    path.parent.mkdir(parents=True, exist_ok=True)
    scope = f" — {report.council}" if report.council else ""
    title = f"Net Zero electricity report {report.period.label}{scope}"
    footer = " | ".join(report.notes) + f" | factor file {report.version}"
    pt, ytd = report.period_total, report.ytd_total
    with PdfPages(path, metadata={"Title": title, "Creator": "civicpulse"}) as pdf:
        fig = plt.figure(figsize=(8.27, 11.69))
        fig.suptitle(title, fontsize=15, y=0.97)
        lines = [
            f"Reporting period: {report.period.label}   baseline: {pt.baseline_label}",
            f"Emission factors: DESNZ {pt.current.factor_year} "
            f"(baseline: DESNZ {pt.baseline.factor_year})",
            "",
            f"Electricity imported: {pt.current.import_kwh:,.0f} kWh "
            f"({_pct(pt.change_kwh_pct)} vs baseline)",
            f"Scope 2 (generation): {pt.current.scope2_kg / 1000:,.3f} t CO2e",
            f"Scope 3 (T&D losses): {pt.current.scope3_td_kg / 1000:,.3f} t CO2e",
            f"Total: {pt.current.gross_kg / 1000:,.3f} t CO2e ({_pct(pt.change_kg_pct)} vs "
            f"{pt.baseline.gross_kg / 1000:,.3f} t in {pt.baseline_label})",
            f"Solar exported: {pt.current.export_kwh:,.0f} kWh = "
            f"{pt.current.export_avoided_kg / 1000:,.3f} t CO2e avoided (shown separately, "
            "not netted)",
            "",
            f"Year to date {ytd.label}: {ytd.current.gross_kg / 1000:,.3f} t CO2e "
            f"({_pct(ytd.change_kg_pct)} vs {ytd.baseline_label})",
            *report.notes,
        ]
        fig.text(0.07, 0.9, "\n".join(lines), va="top", fontsize=9.5, family="DejaVu Sans")
        ax = fig.add_axes((0.1, 0.08, 0.85, 0.42))
        labels = [c.label[-2:] for c in report.months]
        xs = list(range(len(labels)))
        ax.bar([x - 0.2 for x in xs], [c.baseline.gross_kg / 1000 for c in report.months],
               0.4, label=f"{report.baseline_year} (DESNZ {pt.baseline.factor_year})",
               color="#9bb7d4")
        ax.bar([x + 0.2 for x in xs], [c.current.gross_kg / 1000 for c in report.months],
               0.4, label=f"{report.period.year} (DESNZ {pt.current.factor_year})",
               color="#1f5f8b")
        ax.set_xticks(xs, labels)
        ax.set_xlabel("month")
        ax.set_ylabel("t CO2e (Scope 2 + Scope 3 T&D)")
        ax.set_title("Monthly emissions against the baseline year")
        ax.legend()
        fig.text(0.5, 0.02, footer, ha="center", fontsize=6.5, wrap=True)
        pdf.savefig(fig)
        plt.close(fig)

        fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8.27, 11.69))
        fig.suptitle(f"{title}: energy and sites", fontsize=13)
        ax1.plot(labels, [c.current.import_kwh for c in report.months], "o-", label="imported")
        ax1.plot(labels, [c.current.export_kwh for c in report.months], "s--",
                 label="solar exported (not netted)")
        ax1.plot(labels, [c.baseline.import_kwh for c in report.months], ":",
                 label=f"imported {report.baseline_year}")
        ax1.set_ylabel("kWh per month")
        ax1.legend()
        top = sorted(report.sites, key=lambda s: s.figures.current.gross_kg, reverse=True)[:25]
        ax2.barh([s.site for s in top][::-1],
                 [s.figures.current.gross_kg / 1000 for s in top][::-1], color="#1f5f8b")
        ax2.set_xlabel(f"t CO2e in {report.period.label} (DESNZ {pt.current.factor_year})")
        ax2.set_title("Sites by emissions (largest 25)")
        fig.tight_layout(rect=(0, 0.04, 1, 0.96))
        fig.text(0.5, 0.015, footer, ha="center", fontsize=6.5, wrap=True)
        pdf.savefig(fig)
        plt.close(fig)
    return path
