"""Net Zero electricity report: register reads → monthly kWh → kg CO2e against a baseline year."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import numpy as np
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
from sensors.catalogue import ENERGY_METER
from storage.report_queries import (
    council_is_known,
    council_names,
    councils_with,
    extent,
    series,
)

LONDON = ZoneInfo("Europe/London")
MARGIN = timedelta(days=7)  # reads either side of the period, to split boundary intervals
REGISTERS = ("energy_import", "energy_export")
KIND = "energy_meter"
# Completeness counts the meters' expected reading intervals (smart meters: half-hourly).
SLOT_S = ENERGY_METER.expected_interval_s
FIRST_YEAR, LAST_YEAR = 1990, 2100
MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August",
               "September", "October", "November", "December")  # fmt: skip


class NetZeroRequestError(ValueError):
    """A report that cannot be made as asked: the command line must change (exit code 2).

    ``option`` names the flag to change (``--period``, ``--baseline-year``, ``--council``).
    """

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


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
            raise NetZeroRequestError("--period", f"period must be YYYY-MM or YYYY, got {text!r}")
        if not FIRST_YEAR <= int(m.group(1)) <= LAST_YEAR:
            raise NetZeroRequestError(
                "--period", f"period {text!r}: the year must be {FIRST_YEAR}-{LAST_YEAR}"
            )
        return cls(int(m.group(1)), int(m.group(2)) if m.group(2) else None)

    @property
    def label(self) -> str:
        """``2026-10`` or ``2026``."""
        return f"{self.year}" if self.month is None else f"{self.year}-{self.month:02d}"

    @property
    def name(self) -> str:
        """``October 2026`` or ``2026``: the period in words."""
        return (
            f"{self.year}" if self.month is None else f"{MONTH_NAMES[self.month - 1]} {self.year}"
        )

    @property
    def months(self) -> range:
        """Months of the trend: January to the period's month (year to date) or all 12."""
        return range(1, (self.month or 12) + 1)

    def start(self, tz: tzinfo = LONDON) -> datetime:
        """Local midnight that starts the period."""
        return datetime(self.year, self.month or 1, 1, tzinfo=tz)

    def end(self, tz: tzinfo = LONDON) -> datetime:
        """Local midnight that ends the period (the start of the next one)."""
        if self.month is None or self.month == 12:
            return datetime(self.year + 1, 1, 1, tzinfo=tz)
        return datetime(self.year, self.month + 1, 1, tzinfo=tz)


MAX_YEARS = 12  # years from the baseline to the period in one report


def check_request(period: Period, baseline_year: int, now: datetime, tz: tzinfo = LONDON) -> None:
    """Raise :class:`NetZeroRequestError` for a period or baseline no report can cover."""
    if period.start(tz) > now:
        today = now.astimezone(tz)
        raise NetZeroRequestError(
            "--period",
            f"{period.label} has not started yet (today is {today:%Y-%m-%d}): "
            f"give {today:%Y-%m} or earlier",
        )
    if baseline_year > period.year:
        raise NetZeroRequestError(
            "--baseline-year",
            f"baseline year {baseline_year} is after the period {period.label}: "
            f"give {period.year} or earlier",
        )
    if period.year - baseline_year >= MAX_YEARS:
        raise NetZeroRequestError(
            "--baseline-year",
            f"baseline year {baseline_year} is more than {MAX_YEARS - 1} years before "
            f"{period.year}: give {period.year - MAX_YEARS + 1} or later",
        )


@dataclass(frozen=True, slots=True)
class Meter:
    """One meter's kWh per month of one year (index 0 = January) and its data quality."""

    sensor_id: str
    council: str
    site: str
    import_kwh: tuple[float, ...]
    export_kwh: tuple[float, ...]
    hours: tuple[float, ...]  # hours covered by import-register intervals, per month
    slots: tuple[int, ...]  # expected intervals (half-hours) with an import read, per month
    resets: int
    ignored_reads: int


@dataclass(frozen=True, slots=True)
class Compared:
    """A footprint beside the baseline year's footprint of the same months.

    *Completeness* is the share of the expected reading intervals (half-hours: the meters'
    catalogue interval) with at least one import-register read, over the meters with a
    read in that period, up to now for a period that is not over.
    """

    label: str
    current: Footprint
    baseline_label: str
    baseline: Footprint
    meter_hours: float  # register-covered hours behind ``current`` (0: no data at all)
    baseline_meter_hours: float
    factor: FactorChoice  # the DESNZ factor year used for ``current``, and why
    baseline_factor: FactorChoice
    meters: int = 0  # meters with an import read in the period
    baseline_meters: int = 0
    slots: int = 0  # half-hours with a read, summed over those meters
    expected_slots: int = 0  # half-hours elapsed in the period x those meters
    baseline_slots: int = 0
    baseline_expected_slots: int = 0

    @property
    def measured(self) -> bool:
        """The period has register data (else its figures are unknown, not zero)."""
        return self.meter_hours > 0

    @property
    def has_baseline(self) -> bool:
        """The baseline months have register data (else there is no baseline)."""
        return self.baseline_meter_hours > 0

    @property
    def comparable(self) -> bool:
        """Both sides have readings: a change against no data is not reported."""
        return self.measured and self.has_baseline

    @property
    def completeness(self) -> float | None:
        """Share of expected half-hours with a read; ``None`` when no meter read at all."""
        return self.slots / self.expected_slots if self.expected_slots else None

    @property
    def baseline_completeness(self) -> float | None:
        """The same for the baseline months."""
        if not self.baseline_expected_slots:
            return None
        return self.baseline_slots / self.baseline_expected_slots

    @property
    def no_change_reason(self) -> str | None:
        """Why no % change is given (``None`` when one is): every blank is explained."""
        if not self.measured:
            return "no readings"
        if not self.has_baseline:
            return "no baseline"
        if self.baseline.import_kwh == 0:
            return "baseline 0 kWh"
        return None

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
    council_names: dict[str, str]  # slug -> name (the registry's, else the slug)
    as_of: datetime  # when the report was made: a period not over is counted up to here

    @property
    def notes(self) -> list[str]:
        """The factor-year sentences every output carries, one per year in the report."""
        return [c.note for c in self.year_factors]

    @property
    def council_name(self) -> str:
        """Who the report is for: the council's name, or the councils of an all-council run."""
        if self.council is not None:
            return self.council_names.get(self.council, self.council)
        names = sorted(set(self.council_names.values()))
        if not names:
            return "all councils"
        shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        return f"all councils ({shown})"

    @property
    def in_progress(self) -> bool:
        """The period is not over: its figures run to ``as_of``."""
        return self.period.end() > self.as_of


def factor_words(choice: FactorChoice) -> str:
    """``DESNZ 2025``, or ``DESNZ 2025 (2026 not published)`` for a borrowed year."""
    used = f"DESNZ {choice.factors.year}"
    return used if choice.is_exact else f"{used} ({choice.reporting_year} not published)"


def explain(c: Compared) -> list[str]:
    """Sentences for a row's blanks and borrowed factors: nothing is left unexplained."""
    out = []
    if not c.measured:
        out.append(f"no readings in {c.label}: figures unknown (blank), not zero")
    if not c.has_baseline:
        out.append(f"no baseline: no readings in {c.baseline_label}")
    elif c.baseline.import_kwh == 0:
        out.append(f"baseline {c.baseline_label} measured 0 kWh: no % change")
    if not c.factor.is_exact:
        out.append(f"{c.label}: {factor_words(c.factor)}, the latest earlier set")
    if c.has_baseline and not c.baseline_factor.is_exact:
        out.append(f"{c.baseline_label}: {factor_words(c.baseline_factor)}")
    return out


def _slot_cuts(edges: Sequence[datetime], now: datetime) -> np.ndarray:
    """Bucket edges in Unix seconds, none later than the last whole interval before ``now``."""
    cut = np.floor(now.timestamp() / SLOT_S) * SLOT_S
    edge_s = np.array([e.timestamp() for e in edges], dtype=np.float64)
    clipped: np.ndarray = np.minimum(edge_s, cut)
    return clipped


def expected_slots(edges: Sequence[datetime], now: datetime) -> tuple[int, ...]:
    """Reading intervals per bucket (a meter's expected reads), counted up to ``now``."""
    cuts = _slot_cuts(edges, now)
    return tuple(int(x) for x in np.diff(cuts) // SLOT_S)


def present_slots(
    times: Sequence[datetime], edges: Sequence[datetime], now: datetime
) -> tuple[int, ...]:
    """Reading intervals per bucket holding at least one of ``times`` (up to ``now``)."""
    cuts = _slot_cuts(edges, now)
    if not times:
        return (0,) * (len(cuts) - 1)
    ts = np.array([t.timestamp() for t in times], dtype=np.float64)
    starts = np.unique(np.floor(ts / SLOT_S)) * SLOT_S
    idx = np.searchsorted(cuts, starts, side="right") - 1
    ok = (idx >= 0) & (idx < len(cuts) - 1)
    return tuple(int(x) for x in np.bincount(idx[ok], minlength=len(cuts) - 1))


def meters(
    conn: psycopg.Connection,
    year: int,
    last_month: int,
    council: str | None,
    tz: tzinfo,
    now: datetime | None = None,
) -> dict[str, Meter]:
    """kWh per local calendar month Jan..``last_month`` of ``year``, per meter."""
    now = now or datetime.now(UTC)
    edges = month_edges(year, tz, 1, last_month)
    found = series(conn, KIND, REGISTERS, edges[0] - MARGIN, edges[-1] + MARGIN, council)
    zero = (0.0,) * last_month
    out: dict[str, Meter] = {}
    for s in found.values():
        d = register_deltas(s.times, s.values)
        kwh = allocate(d.intervals, edges)
        m = out.get(s.sensor_id) or Meter(
            s.sensor_id, s.council, s.site, zero, zero, zero, (0,) * last_month, 0, 0
        )
        imp = s.metric == "energy_import"
        out[s.sensor_id] = Meter(
            m.sensor_id,
            m.council,
            m.site,
            kwh if imp else m.import_kwh,
            m.export_kwh if imp else kwh,
            covered_hours(d.intervals, edges) if imp else m.hours,
            present_slots(s.times, edges, now) if imp else m.slots,
            m.resets + len(d.resets),
            m.ignored_reads + len(d.glitches),
        )
    return out


def _sum(ms: list[Meter], months: range, export: bool) -> float:
    return sum((m.export_kwh if export else m.import_kwh)[i - 1] for m in ms for i in months)


def _hours(ms: list[Meter], months: range) -> float:
    return sum(m.hours[i - 1] for m in ms for i in months)


def _reading(ms: list[Meter], months: range) -> list[Meter]:
    """The meters with an import read in ``months``."""
    return [m for m in ms if any(m.slots[i - 1] for i in months)]


def _no_data(
    conn: psycopg.Connection, period: Period, council: str | None, tz: tzinfo
) -> NetZeroRequestError:
    """The one line for a report that would be empty: where the meter readings are."""
    where = f" of {council}" if council else ""
    span = extent(conn, KIND, council)
    if span is None and council is not None:
        others = ", ".join(councils_with(conn, KIND)) or "none"
        return NetZeroRequestError(
            "--council",
            f"council {council!r} has no energy-meter readings "
            f"(councils with energy meters: {others})",
        )
    if span is None:
        return NetZeroRequestError("--period", "there are no energy-meter readings at all")
    first, last = (t.astimezone(tz) for t in span)
    return NetZeroRequestError(
        "--period",
        f"no energy-meter readings{where} in {period.name}: "
        f"they run from {first:%Y-%m-%d} to {last:%Y-%m-%d}",
    )


def build_netzero(
    conn: psycopg.Connection,
    period: Period,
    baseline_year: int,
    *,
    council: str | None = None,
    table: FactorTable | None = None,
    tz: tzinfo = LONDON,
    now: datetime | None = None,
) -> NetZeroReport:
    """The report for ``period`` against the same months of ``baseline_year``.

    Each year's kWh are converted with that year's factors (or the latest earlier set),
    so a change in % mixes less use and a cleaner grid, as DESNZ reporting does.
    Raises :class:`NetZeroRequestError` for a period, baseline or council that no report
    can cover (in the future, unknown, without a single meter reading).
    """
    now = now or datetime.now(UTC)
    check_request(period, baseline_year, now, tz)
    if council is not None and not council_is_known(conn, council):
        others = ", ".join(councils_with(conn, KIND)) or "none"
        raise NetZeroRequestError(
            "--council",
            f"unknown council {council!r} (councils with energy meters: {others})",
        )
    table = table or load_factors()
    years = range(baseline_year, period.year + 1)
    choice = {y: table.for_year(y) for y in years}
    last = period.months[-1]
    by_year = {y: meters(conn, y, last, council, tz, now) for y in years}
    slots_due = {y: expected_slots(month_edges(y, tz, 1, last), now) for y in years}
    now_m, base = by_year[period.year], by_year[baseline_year]

    def compared(
        label: str, bl: str, year: int, cur: Iterable[Meter], old: Iterable[Meter], ms: range
    ) -> Compared:
        cur, old = list(cur), list(old)
        fp = footprint(_sum(cur, ms, False), _sum(cur, ms, True), choice[year].factors)
        bfp = footprint(_sum(old, ms, False), _sum(old, ms, True), choice[baseline_year].factors)
        live, live_old = _reading(cur, ms), _reading(old, ms)
        return Compared(
            label,
            fp,
            bl,
            bfp,
            _hours(cur, ms),
            _hours(old, ms),
            choice[year],
            choice[baseline_year],
            meters=len(live),
            baseline_meters=len(live_old),
            slots=sum(m.slots[i - 1] for m in live for i in ms),
            expected_slots=len(live) * sum(slots_due[year][i - 1] for i in ms),
            baseline_slots=sum(m.slots[i - 1] for m in live_old for i in ms),
            baseline_expected_slots=len(live_old)
            * sum(slots_due[baseline_year][i - 1] for i in ms),
        )

    month_rows = [
        compared(
            f"{period.year}-{m:02d}",
            f"{baseline_year}-{m:02d}",
            period.year,
            now_m.values(),
            base.values(),
            range(m, m + 1),
        )
        for m in period.months
    ]
    span = range(last, last + 1) if period.month else period.months
    base_label = f"{baseline_year}" + (f"-{last:02d}" if period.month else "")
    months_label = "" if last == 12 else f" Jan-{last:02d}"
    period_total = compared(
        period.label, base_label, period.year, now_m.values(), base.values(), span
    )
    if period_total.meters == 0 and not period_total.measured:
        raise _no_data(conn, period, council, tz)
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
        for k, m in sorted(now_m.items(), key=lambda kv: (kv[1].site, kv[0]))
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
    slugs = sorted(
        {council} if council else {m.council for y in years for m in by_year[y].values()}
    )
    names = council_names(conn, slugs)
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
        period_total=period_total,
        ytd_total=annual[-1],
        annual=annual,
        sites=sites,
        council_names={s: names.get(s, s) for s in slugs},
        as_of=now,
    )
