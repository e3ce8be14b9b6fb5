"""Net Zero electricity report: register reads → monthly kWh → kg CO2e against a baseline year."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta, tzinfo
from zoneinfo import ZoneInfo

import psycopg

from rules.carbon import (
    FactorChoice,
    FactorTable,
    Footprint,
    allocate,
    covered_hours,
    footprint,
    load_factors,
    month_edges,
    pct_change,
    register_deltas,
)
from storage.report_queries import series

LONDON = ZoneInfo("Europe/London")
MARGIN = timedelta(days=7)  # reads either side of the period, to split boundary intervals
REGISTERS = ("energy_import", "energy_export")


@dataclass(frozen=True, slots=True)
class Period:
    """A reporting month (``month`` set) or calendar year (``month`` is ``None``)."""

    year: int
    month: int | None = None

    @classmethod
    def parse(cls, text: str) -> Period:
        """``YYYY-MM`` or ``YYYY``."""
        m = re.fullmatch(r"(\d{4})(?:-(\d{2}))?", text.strip())
        if not m or (m.group(2) and not 1 <= int(m.group(2)) <= 12):
            raise ValueError(f"period must be YYYY-MM or YYYY, got {text!r}")
        return cls(int(m.group(1)), int(m.group(2)) if m.group(2) else None)

    @property
    def label(self) -> str:
        """``2026-10`` or ``2026``."""
        return f"{self.year}" if self.month is None else f"{self.year}-{self.month:02d}"

    @property
    def months(self) -> range:
        """Months of the trend: January to the period's month (year to date) or all 12."""
        return range(1, (self.month or 12) + 1)


@dataclass(frozen=True, slots=True)
class Meter:
    """One meter's kWh per month of one year (index 0 = January) and its data quality."""

    sensor_id: str
    council: str
    site: str
    import_kwh: tuple[float, ...]
    export_kwh: tuple[float, ...]
    hours: tuple[float, ...]  # hours covered by import-register intervals, per month
    resets: int
    ignored_reads: int


@dataclass(frozen=True, slots=True)
class Compared:
    """A footprint beside the baseline year's footprint of the same months."""

    label: str
    current: Footprint
    baseline_label: str
    baseline: Footprint
    meter_hours: float  # register-covered hours behind ``current`` (0: no data at all)
    baseline_meter_hours: float

    @property
    def comparable(self) -> bool:
        """Both sides have readings: a change against no data is not reported."""
        return self.meter_hours > 0 and self.baseline_meter_hours > 0

    @property
    def change_kwh_pct(self) -> float | None:
        """% change in imported kWh from the baseline."""
        if not self.comparable:
            return None
        return pct_change(self.current.import_kwh, self.baseline.import_kwh)

    @property
    def change_kg_pct(self) -> float | None:
        """% change in gross kg CO2e from the baseline (each with its own year's factors)."""
        if not self.comparable:
            return None
        return pct_change(self.current.gross_kg, self.baseline.gross_kg)


@dataclass(frozen=True, slots=True)
class SiteRow:
    """A meter's period figures against the baseline, with its data-quality counts."""

    sensor_id: str
    council: str
    site: str
    figures: Compared
    resets: int
    ignored_reads: int


@dataclass(frozen=True, slots=True)
class NetZeroReport:
    """Everything the CSVs and the PDF show; every figure's factor year is in its footprint."""

    period: Period
    baseline_year: int
    council: str | None
    factors: FactorChoice
    baseline_factors: FactorChoice
    year_factors: list[FactorChoice]  # baseline year .. period year
    source: str
    version: str
    months: list[Compared]  # the monthly trend: Jan..period month (or the whole year)
    period_total: Compared
    ytd_total: Compared  # Jan..period month of the period year (the whole year for a year)
    annual: list[Compared]  # each year baseline..period over the same months, vs baseline
    sites: list[SiteRow]

    @property
    def notes(self) -> list[str]:
        """The factor-year sentences every output carries, one per year in the report."""
        return [c.note for c in self.year_factors]


def meters(
    conn: psycopg.Connection, year: int, last_month: int, council: str | None, tz: tzinfo
) -> dict[str, Meter]:
    """kWh per local calendar month Jan..``last_month`` of ``year``, per meter."""
    edges = month_edges(year, tz, 1, last_month)
    found = series(conn, "energy_meter", REGISTERS, edges[0] - MARGIN, edges[-1] + MARGIN, council)
    zero = (0.0,) * last_month
    out: dict[str, Meter] = {}
    for s in found.values():
        d = register_deltas(s.times, s.values)
        kwh = allocate(d.intervals, edges)
        m = out.get(s.sensor_id) or Meter(s.sensor_id, s.council, s.site, zero, zero, zero, 0, 0)
        imp = s.metric == "energy_import"
        out[s.sensor_id] = Meter(
            m.sensor_id,
            m.council,
            m.site,
            kwh if imp else m.import_kwh,
            m.export_kwh if imp else kwh,
            covered_hours(d.intervals, edges) if imp else m.hours,
            m.resets + len(d.resets),
            m.ignored_reads + len(d.glitches),
        )
    return out


def _sum(ms: list[Meter], months: range, export: bool) -> float:
    return sum((m.export_kwh if export else m.import_kwh)[i - 1] for m in ms for i in months)


def _hours(ms: list[Meter], months: range) -> float:
    return sum(m.hours[i - 1] for m in ms for i in months)


MAX_YEARS = 12  # years from the baseline to the period in one report


def build_netzero(
    conn: psycopg.Connection,
    period: Period,
    baseline_year: int,
    *,
    council: str | None = None,
    table: FactorTable | None = None,
    tz: tzinfo = LONDON,
) -> NetZeroReport:
    """The report for ``period`` against the same months of ``baseline_year``.

    Each year's kWh are converted with that year's factors (or the latest earlier set),
    so a change in % mixes less use and a cleaner grid, as DESNZ reporting does.
    """
    if not 0 <= period.year - baseline_year < MAX_YEARS:
        raise ValueError(
            f"baseline year must be at most {MAX_YEARS - 1} years before {period.year}"
        )
    table = table or load_factors()
    years = range(baseline_year, period.year + 1)
    choice = {y: table.for_year(y) for y in years}
    last = period.months[-1]
    by_year = {y: meters(conn, y, last, council, tz) for y in years}
    now, base = by_year[period.year], by_year[baseline_year]

    def compared(
        label: str, bl: str, year: int, cur: Iterable[Meter], old: Iterable[Meter], ms: range
    ) -> Compared:
        cur, old = list(cur), list(old)
        fp = footprint(_sum(cur, ms, False), _sum(cur, ms, True), choice[year].factors)
        bfp = footprint(_sum(old, ms, False), _sum(old, ms, True), choice[baseline_year].factors)
        return Compared(label, fp, bl, bfp, _hours(cur, ms), _hours(old, ms))

    month_rows = [
        compared(
            f"{period.year}-{m:02d}",
            f"{baseline_year}-{m:02d}",
            period.year,
            now.values(),
            base.values(),
            range(m, m + 1),
        )
        for m in period.months
    ]
    span = range(last, last + 1) if period.month else period.months
    base_label = f"{baseline_year}" + (f"-{last:02d}" if period.month else "")
    months_label = "" if last == 12 else f" Jan-{last:02d}"
    sites = [
        SiteRow(
            m.sensor_id,
            m.council,
            m.site,
            compared(
                period.label, base_label, period.year, [m], [base[k]] if k in base else [], span
            ),
            m.resets,
            m.ignored_reads,
        )
        for k, m in sorted(now.items(), key=lambda kv: (kv[1].site, kv[0]))
    ]
    annual = [
        compared(
            f"{y}{months_label}",
            f"{baseline_year}{months_label}",
            y,
            by_year[y].values(),
            base.values(),
            period.months,
        )
        for y in years
    ]
    return NetZeroReport(
        period=period,
        baseline_year=baseline_year,
        council=council,
        factors=choice[period.year],
        baseline_factors=choice[baseline_year],
        year_factors=[choice[y] for y in years],
        source=table.source,
        version=table.version,
        months=month_rows,
        period_total=compared(
            period.label, base_label, period.year, now.values(), base.values(), span
        ),
        ytd_total=annual[-1],
        annual=annual,
        sites=sites,
    )
