"""Net Zero report PDF (matplotlib): headline figures, trends, sites; factor year on every page.

Nothing is left as a bare "n/a" or a misleading 0: a side without readings says
"no readings" / "no baseline", and every page's footer defines those words, completeness
and the factor years used.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from civicpulse.reports.netzero import (
    LONDON,
    MONTH_NAMES,
    SLOT_S,
    Compared,
    NetZeroReport,
    factor_words,
)

A4 = (8.27, 11.69)
DARK, LIGHT, SUN, GREY = "#1f5f8b", "#9bb7d4", "#e69f00", "#f0f0f0"
SITES_SHOWN = 40

WORDS = (
    f"Completeness: share of the expected {SLOT_S // 60}-minute intervals with an import-register "
    "read, over the meters with a read in that period (to the report time if the period is not "
    "over). No readings: no meter data for that period, so its figures are unknown (not zero). "
    "No baseline: no meter data for the same months of the baseline year, so no change is given. "
    "Baseline 0 kWh: the baseline was measured as zero, so a % change is undefined."
)


def _t(kg: float) -> str:
    return f"{kg / 1000:,.2f}"


def _change(c: Compared, kwh: bool = False) -> str:
    """The % change, or the reason there is none (never a bare "n/a")."""
    pct = c.change_kwh_pct if kwh else c.change_kg_pct
    if pct is not None:
        return signed_pct(pct)
    return c.no_change_reason or "no baseline"


def signed_pct(pct: float) -> str:
    """``+1.2 %``, ``-13.2 %``; a change that rounds to nothing is ``0.0 %``, never ``-0.0 %``."""
    shown = round(pct, 1)
    return "0.0 %" if shown == 0 else f"{shown:+.1f} %"


def _annual_change(c: Compared, i: int) -> str:
    """The change of an annual row; the first row is the baseline year itself."""
    if i > 0:
        return _change(c)
    return "baseline" if c.measured else "baseline: no readings"


def _share(x: float | None) -> str:
    return "no readings" if x is None else f"{x:.1%}"


def _baseline_t(c: Compared) -> str:
    return _t(c.baseline.gross_kg) if c.has_baseline else "no baseline"


def _headline(report: NetZeroReport) -> str:
    pt, ytd = report.period_total, report.ytd_total
    cur = pt.current
    when = f"Reporting period {report.period.name}, compared with {pt.baseline_label}."
    if report.in_progress:
        when += (
            f" The period is not over: figures to {report.as_of.astimezone(LONDON):%d %b %Y %H:%M}."
        )
    against = (
        f"against {_t(pt.baseline.gross_kg)} t in {pt.baseline_label}"
        if pt.has_baseline
        else f"no readings in {pt.baseline_label}"
    )
    base_meters = (
        f"{pt.baseline_label}: {pt.baseline_meters} meter(s), "
        f"completeness {_share(pt.baseline_completeness)}"
        if pt.baseline_meters
        else f"{pt.baseline_label}: no readings"
    )
    ytd_against = (
        f"against {_t(ytd.baseline.gross_kg)} t in {ytd.baseline_label}"
        if ytd.has_baseline
        else f"no readings in {ytd.baseline_label}"
    )
    lines = [
        when,
        f"Meters: {pt.meters} with readings; data completeness {_share(pt.completeness)}"
        f" ({base_meters}).",
        f"Emission factors (UK Government GHG conversion factors): {report.period.label} "
        f"uses {factor_words(pt.factor)}; {pt.baseline_label} uses "
        f"{factor_words(pt.baseline_factor)}.",
        "",
        f"Electricity imported: {cur.import_kwh:,.0f} kWh (change: {_change(pt, kwh=True)})",
        f"Scope 2, grid generation: {_t(cur.scope2_kg)} t CO2e",
        f"Scope 3, transmission & distribution losses: {_t(cur.scope3_td_kg)} t CO2e",
        f"Total: {_t(cur.gross_kg)} t CO2e (change: {_change(pt)}; {against})",
        f"Solar exported: {cur.export_kwh:,.0f} kWh, {_t(cur.export_avoided_kg)} t CO2e "
        "of grid emissions avoided (shown separately, not deducted)",
        f"Year to date {ytd.label}: {_t(ytd.current.gross_kg)} t CO2e "
        f"(change: {_change(ytd)}; {ytd_against})",
    ]
    return "\n".join(textwrap.fill(line, 118, subsequent_indent="    ") for line in lines)


def _table(
    ax: Any,
    cells: list[list[str]],
    cols: list[str],
    size: float = 7.5,
    widths: Sequence[float] | None = None,
) -> None:
    ax.axis("off")
    if not cells:
        ax.text(0.5, 0.9, "nothing to show", ha="center", fontsize=9)
        return
    if widths is not None:
        total = sum(widths)
        widths = [w / total for w in widths]
    table = ax.table(
        cellText=cells, colLabels=cols, loc="upper center", cellLoc="right", colWidths=widths
    )
    table.auto_set_font_size(False)
    table.set_fontsize(size)
    table.scale(1, 1.2)
    for (row, _col), cell in table.get_celld().items():
        if row == 0:
            cell.set_facecolor(GREY)
            cell.set_text_props(weight="bold")


def _month_cells(rows: list[Compared]) -> list[list[str]]:
    out = []
    for c in rows:
        month = f"{MONTH_NAMES[int(c.label[-2:]) - 1][:3]} {c.label[:4]}"
        if not c.measured:
            out.append([month, "0", "no readings", "—", "—", "—", _baseline_t(c), "no readings"])
            continue
        out.append(
            [
                month,
                str(c.meters),
                _share(c.completeness),
                f"{c.current.import_kwh:,.0f}",
                _t(c.current.gross_kg),
                f"DESNZ {c.current.factor_year}",
                _baseline_t(c),
                _change(c),
            ]
        )
    return out


MONTH_COLS = [
    "month",
    "meters",
    "complete",
    "kWh imported",
    "t CO2e",
    "factors",
    "baseline t CO2e",
    "change",
]


def _footer(fig: Any, report: NetZeroReport, page: int) -> None:
    factors = "; ".join(report.notes)
    lines = [
        *textwrap.wrap(WORDS, 160),
        *textwrap.wrap(
            f"Factors by year: {factors}. DESNZ factor file version {report.version}. "
            "Scope 2 + Scope 3 T&D of imported grid electricity; solar export never deducted.",
            160,
        ),
        f"{report.council_name} — Net Zero electricity report {report.period.label} — "
        f"page {page} of 3 — made {report.as_of.astimezone(LONDON):%d %b %Y %H:%M} by civicpulse",
    ]
    fig.text(0.5, 0.012, "\n".join(lines), ha="center", va="bottom", fontsize=6)


def _header(fig: Any, report: NetZeroReport, what: str) -> None:
    fig.text(
        0.07, 0.965, f"Net Zero electricity report: {what}", fontsize=14, weight="bold", va="top"
    )
    fig.text(0.07, 0.94, report.council_name, fontsize=11, color=DARK, va="top")


def write_pdf(report: NetZeroReport, path: Path) -> Path:
    """Write the three-page PDF to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    path.parent.mkdir(parents=True, exist_ok=True)
    title = f"Net Zero electricity report {report.period.label} — {report.council_name}"
    pt = report.period_total
    labels = [MONTH_NAMES[int(c.label[-2:]) - 1][:3] for c in report.months]
    xs = list(range(len(labels)))
    with PdfPages(path, metadata={"Title": title, "Creator": "civicpulse"}) as pdf:
        # Page 1: headline figures, the monthly table and chart
        fig = plt.figure(figsize=A4)
        _header(fig, report, report.period.name)
        fig.text(0.07, 0.91, _headline(report), va="top", fontsize=8.5, linespacing=1.5)
        _month_table_ax = fig.add_axes((0.05, 0.40, 0.90, 0.30))
        _table(_month_table_ax, _month_cells(report.months), MONTH_COLS)
        ax = fig.add_axes((0.1, 0.12, 0.85, 0.22))
        base_fy, cur_fy = pt.baseline.factor_year, pt.current.factor_year
        ax.bar(
            [x - 0.2 for x in xs],
            [c.baseline.gross_kg / 1000 for c in report.months],
            0.4,
            label=f"{report.baseline_year} (DESNZ {base_fy})",
            color=LIGHT,
        )
        ax.bar(
            [x + 0.2 for x in xs],
            [c.current.gross_kg / 1000 for c in report.months],
            0.4,
            label=f"{report.period.year} (DESNZ {cur_fy})",
            color=DARK,
        )
        ax.set_xticks(xs, labels)
        ax.set_ylabel("t CO2e (Scope 2 + Scope 3 T&D)")
        ax.set_title(
            "Monthly emissions against the baseline year (no bar: no readings)", fontsize=9
        )
        ax.legend(fontsize=7.5)
        _footer(fig, report, 1)
        pdf.savefig(fig)
        plt.close(fig)

        # Page 2: kWh trend, each year against the baseline, with its factor year
        fig = plt.figure(figsize=A4)
        _header(fig, report, f"trends to {report.period.name}")
        ax1 = fig.add_axes((0.1, 0.66, 0.85, 0.24))
        ax1.plot(
            xs,
            [c.current.import_kwh if c.measured else float("nan") for c in report.months],
            "o-",
            color=DARK,
            label=f"imported {report.period.year}",
        )
        ax1.plot(
            xs,
            [c.baseline.import_kwh if c.has_baseline else float("nan") for c in report.months],
            "o:",
            color=LIGHT,
            label=f"imported {report.baseline_year}",
        )
        ax1.plot(
            xs,
            [c.current.export_kwh if c.measured else float("nan") for c in report.months],
            "s--",
            color=SUN,
            label="solar exported (not deducted)",
        )
        ax1.set_xticks(xs, labels)
        ax1.set_xlim(-0.5, len(xs) - 0.5)
        ax1.set_ylim(bottom=0)
        ax1.set_ylabel("kWh per month")
        ax1.set_title("Electricity per month (gaps: no readings)", fontsize=9)
        ax1.legend(fontsize=7.5)
        ax2 = fig.add_axes((0.1, 0.36, 0.85, 0.22))
        years = [c.label for c in report.annual]
        ax2.bar(years, [c.current.gross_kg / 1000 for c in report.annual], color=DARK)
        for i, c in enumerate(report.annual):
            words = _annual_change(c, i)
            ax2.annotate(
                f"{words}\nDESNZ {c.current.factor_year}",
                (i, c.current.gross_kg / 1000),
                ha="center",
                va="bottom",
                fontsize=7,
            )
        ax2.set_ylabel("t CO2e")
        ax2.margins(y=0.25)
        ax2.set_title(
            f"Each year against {report.baseline_year} (same months, each with its own factors)",
            fontsize=9,
        )
        cells = [
            [
                c.label,
                str(c.meters),
                _share(c.completeness),
                f"{c.current.import_kwh:,.0f}" if c.measured else "no readings",
                _t(c.current.gross_kg) if c.measured else "—",
                factor_words(c.factor),
                _annual_change(c, i),
            ]
            for i, c in enumerate(report.annual)
        ]
        cols = ["year", "meters", "complete", "kWh imported", "t CO2e", "factors", "change"]
        _table(
            fig.add_axes((0.05, 0.12, 0.90, 0.18)), cells, cols, widths=(10, 6, 8, 10, 6, 22, 14)
        )
        _footer(fig, report, 2)
        pdf.savefig(fig)
        plt.close(fig)

        # Page 3: every meter (the largest first), with its data quality
        fig = plt.figure(figsize=A4)
        _header(fig, report, f"sites, {report.period.name}")
        top = sorted(report.sites, key=lambda s: s.figures.current.gross_kg, reverse=True)
        show = top[:SITES_SHOWN]
        cells = [
            [
                s.site[:28],
                s.sensor_id[:18],
                _share(s.figures.completeness),
                f"{s.figures.current.import_kwh:,.0f}" if s.figures.measured else "no readings",
                _t(s.figures.current.gross_kg) if s.figures.measured else "—",
                _baseline_t(s.figures),
                _change(s.figures),
                f"{s.resets} / {s.ignored_reads}",
            ]
            for s in show
        ]
        cols = [
            "site",
            "meter",
            "complete",
            "kWh imported",
            "t CO2e",
            "baseline t CO2e",
            "change",
            "resets / ignored",
        ]
        more = len(top) - len(show)
        fig.text(
            0.07,
            0.905,
            f"{len(top)} meter(s), largest emissions first"
            + (f"; {more} more in the sites CSV" if more else "")
            + f". Factors: {factor_words(pt.factor)}; baseline {pt.baseline_label}: "
            f"{factor_words(pt.baseline_factor)}. Resets: meter exchanges or rollovers (energy "
            "across them not counted); ignored: reads the register came back from.",
            fontsize=7.5,
            va="top",
            wrap=True,
        )
        _table(
            fig.add_axes((0.04, 0.12, 0.92, 0.76)),
            cells,
            cols,
            size=7,
            widths=(16, 11, 8, 9, 7, 10, 9, 9),
        )
        _footer(fig, report, 3)
        pdf.savefig(fig)
        plt.close(fig)
    return path
