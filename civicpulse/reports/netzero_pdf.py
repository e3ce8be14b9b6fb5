"""Net Zero report PDF (matplotlib): headline figures, trends, sites; factor year on every page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from civicpulse.reports.netzero import Compared, NetZeroReport

A4 = (8.27, 11.69)
DARK, LIGHT, SUN = "#1f5f8b", "#9bb7d4", "#e69f00"


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:+.1f} %"


def _t(kg: float) -> str:
    return f"{kg / 1000:,.2f}"


def _headline(report: NetZeroReport) -> str:
    pt, ytd = report.period_total, report.ytd_total
    cur = pt.current
    return "\n".join(
        [
            f"Reporting period {report.period.label}, compared with {pt.baseline_label}.",
            f"Emission factors: UK Government GHG conversion factors (DESNZ) {cur.factor_year}; "
            f"baseline DESNZ {pt.baseline.factor_year}.",
            "",
            f"Electricity imported: {cur.import_kwh:,.0f} kWh ({_pct(pt.change_kwh_pct)})",
            f"Scope 2, grid generation: {_t(cur.scope2_kg)} t CO2e",
            f"Scope 3, transmission & distribution losses: {_t(cur.scope3_td_kg)} t CO2e",
            f"Total: {_t(cur.gross_kg)} t CO2e ({_pct(pt.change_kg_pct)} against "
            f"{_t(pt.baseline.gross_kg)} t)",
            f"Solar exported: {cur.export_kwh:,.0f} kWh, {_t(cur.export_avoided_kg)} t CO2e "
            "of grid emissions avoided (shown separately, not deducted)",
            f"{ytd.label}: {_t(ytd.current.gross_kg)} t CO2e ({_pct(ytd.change_kg_pct)} against "
            f"{ytd.baseline_label})",
        ]
    )


def _month_table(ax: Any, rows: list[Compared]) -> None:
    ax.axis("off")
    cells = [
        [
            c.label,
            f"{c.current.import_kwh:,.0f}",
            _t(c.current.gross_kg),
            _t(c.baseline.gross_kg),
            _pct(c.change_kg_pct),
            f"{c.current.export_kwh:,.0f}",
        ]
        if c.meter_hours > 0
        else [c.label, "no readings", "", "", "", ""]
        for c in rows
    ]
    cols = ["month", "kWh imported", "t CO2e", "baseline t CO2e", "change", "solar kWh"]
    table = ax.table(cellText=cells, colLabels=cols, loc="upper center", cellLoc="right")
    table.auto_set_font_size(False)
    table.set_fontsize(7.5)
    table.scale(1, 1.15)


def _footer(fig: Any, report: NetZeroReport) -> None:
    text = "\n".join([*report.notes, f"DESNZ factor file version {report.version}"])
    fig.text(0.5, 0.008, text, ha="center", va="bottom", fontsize=6.5)


def write_pdf(report: NetZeroReport, path: Path) -> Path:
    """Write the three-page PDF to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    path.parent.mkdir(parents=True, exist_ok=True)
    scope = f" — {report.council}" if report.council else ""
    title = f"Net Zero electricity report {report.period.label}{scope}"
    pt = report.period_total
    labels = [c.label[-2:] for c in report.months]
    xs = list(range(len(labels)))
    with PdfPages(path, metadata={"Title": title, "Creator": "civicpulse"}) as pdf:
        fig = plt.figure(figsize=A4)
        fig.suptitle(title, fontsize=15, y=0.97)
        fig.text(0.07, 0.925, _headline(report), va="top", fontsize=9)
        _month_table(fig.add_axes((0.07, 0.43, 0.86, 0.3)), report.months)
        ax = fig.add_axes((0.1, 0.1, 0.85, 0.28))
        ax.bar(
            [x - 0.2 for x in xs],
            [c.baseline.gross_kg / 1000 for c in report.months],
            0.4,
            label=f"{report.baseline_year} (DESNZ {pt.baseline.factor_year})",
            color=LIGHT,
        )
        ax.bar(
            [x + 0.2 for x in xs],
            [c.current.gross_kg / 1000 for c in report.months],
            0.4,
            label=f"{report.period.year} (DESNZ {pt.current.factor_year})",
            color=DARK,
        )
        ax.set_xticks(xs, labels)
        ax.set_xlabel("month")
        ax.set_ylabel("t CO2e (Scope 2 + Scope 3 T&D)")
        ax.set_title("Monthly emissions against the baseline year", fontsize=10)
        ax.legend(fontsize=8)
        _footer(fig, report)
        pdf.savefig(fig)
        plt.close(fig)

        fig, (ax1, ax2) = plt.subplots(2, 1, figsize=A4)
        fig.suptitle(f"{title}: trends", fontsize=13)
        ax1.plot(
            labels,
            [c.current.import_kwh for c in report.months],
            "o-",
            color=DARK,
            label=f"imported {report.period.year}",
        )
        ax1.plot(
            labels,
            [c.baseline.import_kwh for c in report.months],
            ":",
            color=LIGHT,
            label=f"imported {report.baseline_year}",
        )
        ax1.plot(
            labels,
            [c.current.export_kwh for c in report.months],
            "s--",
            color=SUN,
            label="solar exported (not deducted)",
        )
        ax1.set_ylabel("kWh per month")
        ax1.set_xlabel("month")
        ax1.legend(fontsize=8)
        years = [c.label for c in report.annual]
        ax2.bar(years, [c.current.gross_kg / 1000 for c in report.annual], color=DARK)
        for i, c in enumerate(report.annual):
            ax2.annotate(
                f"{_pct(c.change_kg_pct)}\nDESNZ {c.current.factor_year}",
                (i, c.current.gross_kg / 1000),
                ha="center",
                va="bottom",
                fontsize=7,
            )
        ax2.set_ylabel("t CO2e")
        ax2.set_title(f"Each year against {report.baseline_year} (same months)", fontsize=10)
        fig.tight_layout(rect=(0, 0.07, 1, 0.96))
        _footer(fig, report)
        pdf.savefig(fig)
        plt.close(fig)

        fig, ax = plt.subplots(figsize=A4)
        top = sorted(report.sites, key=lambda s: s.figures.current.gross_kg, reverse=True)[:30]
        names = [f"{s.site} ({_pct(s.figures.change_kg_pct)})" for s in top][::-1]
        ax.barh(names, [s.figures.current.gross_kg / 1000 for s in top][::-1], color=DARK)
        ax.set_xlabel(
            f"t CO2e in {report.period.label} (DESNZ {pt.current.factor_year}); "
            f"change against {pt.baseline_label}"
        )
        ax.set_title(f"{title}: sites (largest 30)", fontsize=11)
        fig.tight_layout(rect=(0, 0.07, 1, 0.98))
        _footer(fig, report)
        pdf.savefig(fig)
        plt.close(fig)
    return path
