"""Net Zero electricity report: register reads → monthly kWh → kg CO2e against a baseline year."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta, tzinfo
from zoneinfo import ZoneInfo

import psycopg

from civicpulse.reports.queries import series
from stream_processors.core.carbon import (
    FactorChoice,
    FactorTable,
    Footprint,
    allocate,
    footprint,
    load_factors,
    month_edges,
    pct_change,
    register_deltas,
)

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
    resets: int
    ignored_reads: int


@dataclass(frozen=True, slots=True)
class Compared:
    """A footprint beside the baseline year's footprint of the same months."""

    label: str
    current: Footprint
    baseline_label: str
    baseline: Footprint

    @property
    def change_kwh_pct(self) -> float | None:
        """% change in imported kWh from the baseline."""
        return pct_change(self.current.import_kwh, self.baseline.import_kwh)

    @property
    def change_kg_pct(self) -> float | None:
        """% change in gross kg CO2e from the baseline (each with its own year's factors)."""
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
    source: str
    version: str
    months: list[Compared]  # the trend: Jan..period month (or the whole year)
    period_total: Compared
    ytd_total: Compared
    sites: list[SiteRow]

    @property
    def notes(self) -> list[str]:
        """The factor-year sentences every output carries."""
        return [self.factors.note, self.baseline_factors.note]


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
        m = out.get(s.sensor_id) or Meter(s.sensor_id, s.council, s.site, zero, zero, 0, 0)
        fields = {"import_kwh": kwh} if s.metric == "energy_import" else {"export_kwh": kwh}
        out[s.sensor_id] = Meter(
            m.sensor_id,
            m.council,
            m.site,
            fields.get("import_kwh", m.import_kwh),
            fields.get("export_kwh", m.export_kwh),
            m.resets + len(d.resets),
            m.ignored_reads + len(d.glitches),
        )
    return out


def _sum(ms: list[Meter], months: range, export: bool) -> float:
    return sum((m.export_kwh if export else m.import_kwh)[i - 1] for m in ms for i in months)


def build_netzero(
    conn: psycopg.Connection,
    period: Period,
    baseline_year: int,
    *,
    council: str | None = None,
    table: FactorTable | None = None,
    tz: tzinfo = LONDON,
) -> NetZeroReport:
    """The report for ``period`` against the same months of ``baseline_year``."""
    table = table or load_factors()
    cur_choice, base_choice = table.for_year(period.year), table.for_year(baseline_year)
    last = period.months[-1]
    now = meters(conn, period.year, last, council, tz)
    base = meters(conn, baseline_year, last, council, tz)
    now_list, base_list = list(now.values()), list(base.values())

    def compared(label: str, bl: str, cur: list[Meter], old: list[Meter], ms: range) -> Compared:
        fp = footprint(
            _sum(cur, ms, False), _sum(cur, ms, True), cur_choice.factors
        )
        bfp = footprint(
            _sum(old, ms, False), _sum(old, ms, True), base_choice.factors
        )
        return Compared(label, fp, bl, bfp)

    month_rows = [
        compared(f"{period.year}-{m:02d}", f"{baseline_year}-{m:02d}", now_list, base_list,
                 range(m, m + 1))
        for m in period.months
    ]
    span = range(last, last + 1) if period.month else period.months
    base_label = f"{baseline_year}" + (f"-{last:02d}" if period.month else "")
    sites = [
        SiteRow(
            m.sensor_id,
            m.council,
            m.site,
            compared(period.label, base_label, [m], [base[k]] if k in base else [], span),
            m.resets,
            m.ignored_reads,
        )
        for k, m in sorted(now.items(), key=lambda kv: (kv[1].site, kv[0]))
    ]
    return NetZeroReport(
        period=period,
        baseline_year=baseline_year,
        council=council,
        factors=cur_choice,
        baseline_factors=base_choice,
        source=table.source,
        version=table.version,
        months=month_rows,
        period_total=compared(period.label, base_label, now_list, base_list, span),
        ytd_total=compared(
            f"{period.year} Jan-{period.months[-1]:02d}",
            f"{baseline_year} Jan-{period.months[-1]:02d}",
            now_list,
            base_list,
            period.months,
        ),
        sites=sites,
    )
