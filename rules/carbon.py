"""Net Zero carbon maths: DESNZ factors by year, register consumption, Scope 2/3, trends."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from functools import cache
from importlib import resources
from typing import Any

import numpy as np

from sensors.errors import CivicPulseError

# Keys of the DESNZ rows used for grid electricity in ``data/ghg_factors_uk.json`` (a versioned
# copy of shared/reference/ghg_factors_uk.json; values per domain.md section 2).
GENERATION_KEY = "electricity_generated_uk_kwh"  # Scope 2, location-based
TD_KEY = "electricity_td_losses_uk_kwh"  # Scope 3, transmission & distribution losses


class CarbonError(CivicPulseError):
    """A carbon calculation that cannot be made honestly (e.g. no factors for the year)."""


@dataclass(frozen=True, slots=True)
class ElectricityFactors:
    """DESNZ UK grid electricity factors of one factor year, kg CO2e per kWh."""

    year: int
    generation: float  # Scope 2
    td_losses: float  # Scope 3


@dataclass(frozen=True, slots=True)
class FactorChoice:
    """The factors used for a reporting year, and whether they are that year's own."""

    reporting_year: int
    factors: ElectricityFactors

    @property
    def is_exact(self) -> bool:
        """True when DESNZ published factors for the reporting year itself."""
        return self.factors.year == self.reporting_year

    @property
    def note(self) -> str:
        """One sentence naming the factor year, for every output that shows a figure."""
        if self.is_exact:
            return f"{self.reporting_year}: DESNZ {self.factors.year} conversion factors"
        return (
            f"{self.reporting_year}: no DESNZ factors published for {self.reporting_year}; "
            f"using the latest earlier set, DESNZ {self.factors.year}"
        )


@dataclass(frozen=True, slots=True)
class FactorTable:
    """Every factor year in the data file, with the file's provenance."""

    source: str
    version: str
    years: Mapping[int, ElectricityFactors]

    def for_year(self, reporting_year: int) -> FactorChoice:
        """Factors of ``reporting_year``, else of the latest year before it (said in ``note``)."""
        usable = [y for y in self.years if y <= reporting_year]
        if not usable:
            raise CarbonError(
                f"no DESNZ factors for {reporting_year} or any earlier year "
                f"(the data file has {sorted(self.years)})"
            )
        return FactorChoice(reporting_year, self.years[max(usable)])


def parse_factors(doc: Mapping[str, Any]) -> FactorTable:
    """A :class:`FactorTable` from the JSON document's mapping (year keys, ``_source``)."""
    years: dict[int, ElectricityFactors] = {}
    for key, rows in doc.items():
        if key.startswith("_"):
            continue
        years[int(key)] = ElectricityFactors(
            year=int(key),
            generation=float(rows[GENERATION_KEY]["kgCO2e"]),
            td_losses=float(rows[TD_KEY]["kgCO2e"]),
        )
    return FactorTable(str(doc["_source"]), str(doc.get("_version", "")), years)


@cache
def load_factors() -> FactorTable:
    """The packaged DESNZ factor file (read once; it is data shipped with the code)."""
    text = resources.files("rules").joinpath("data", "ghg_factors_uk.json")
    return parse_factors(json.loads(text.read_text("utf-8")))


@dataclass(frozen=True, slots=True)
class Interval:
    """Energy counted by a cumulative register between two reads."""

    start: datetime
    end: datetime
    kwh: float


@dataclass(frozen=True, slots=True)
class RegisterDeltas:
    """Consumption intervals of one register, and the reads that were not trusted."""

    intervals: tuple[Interval, ...]
    resets: tuple[datetime, ...]  # persistent backwards jumps: counting restarted here
    glitches: tuple[datetime, ...]  # backwards reads the register later came back from


def register_deltas(times: Sequence[datetime], values: Sequence[float]) -> RegisterDeltas:
    """Differences of a cumulative kWh register, robust to glitches and resets.

    A read below the last trusted one is a *glitch* (ignored) when a later read returns to
    at least the trusted value, otherwise a *reset* (meter exchange or rollover): counting
    restarts from the new value and the energy across the reset, unknown, is not counted.
    """
    if len(times) != len(values):
        raise ValueError("times and values differ in length")
    pairs = sorted(zip(times, values, strict=True))
    suffix_max = [float("-inf")] * (len(pairs) + 1)
    for i in range(len(pairs) - 1, -1, -1):
        suffix_max[i] = max(suffix_max[i + 1], pairs[i][1])
    intervals: list[Interval] = []
    resets: list[datetime] = []
    glitches: list[datetime] = []
    if not pairs:
        return RegisterDeltas((), (), ())
    ref_t, ref_v = pairs[0]
    for i in range(1, len(pairs)):
        t, v = pairs[i]
        if v >= ref_v:
            intervals.append(Interval(ref_t, t, v - ref_v))
            ref_t, ref_v = t, v
        elif suffix_max[i + 1] >= ref_v:
            glitches.append(t)
        else:
            resets.append(t)
            ref_t, ref_v = t, v
    return RegisterDeltas(tuple(intervals), tuple(resets), tuple(glitches))


def _split(
    intervals: Sequence[Interval], edges: Sequence[datetime], hours: bool
) -> tuple[float, ...]:
    # Unix seconds: subtracting two datetimes that share a ZoneInfo ignores a DST change.
    cuts = np.array([e.timestamp() for e in edges], dtype=np.float64)
    if len(cuts) < 2 or not intervals:
        return (0.0,) * max(len(cuts) - 1, 0)
    start = np.array([iv.start.timestamp() for iv in intervals], dtype=np.float64)
    end = np.array([iv.end.timestamp() for iv in intervals], dtype=np.float64)
    span = end - start
    amount = span / 3600.0 if hours else np.array([iv.kwh for iv in intervals], dtype=np.float64)
    ok = span > 0
    start, end, span, amount = start[ok], end[ok], span[ok], amount[ok]
    totals = np.zeros(len(cuts) - 1, dtype=np.float64)
    for b in range(len(totals)):  # few buckets (months), many intervals: vectorise intervals
        overlap = np.minimum(end, cuts[b + 1]) - np.maximum(start, cuts[b])
        totals[b] = float(np.sum(amount * np.clip(overlap, 0.0, None) / span))
    return tuple(float(x) for x in totals)


def allocate(intervals: Sequence[Interval], edges: Sequence[datetime]) -> tuple[float, ...]:
    """kWh per bucket ``[edges[i], edges[i+1])``, each interval split pro rata by time."""
    return _split(intervals, edges, hours=False)


def covered_hours(intervals: Sequence[Interval], edges: Sequence[datetime]) -> tuple[float, ...]:
    """Hours per bucket covered by the intervals (how complete the register data is)."""
    return _split(intervals, edges, hours=True)


def month_edges(
    year: int, tz: tzinfo, first_month: int = 1, last_month: int = 12
) -> list[datetime]:
    """Local midnights starting each month ``first_month..last_month`` and the one after."""
    edges = [datetime(year, m, 1, tzinfo=tz) for m in range(first_month, last_month + 1)]
    nxt = datetime(year + 1, 1, 1, tzinfo=tz) if last_month == 12 else None
    edges.append(nxt or datetime(year, last_month + 1, 1, tzinfo=tz))
    return edges


@dataclass(frozen=True, slots=True)
class Footprint:
    """kg CO2e of grid electricity for one period; solar export kept apart, never netted."""

    factor_year: int
    import_kwh: float
    export_kwh: float
    scope2_kg: float  # import x generation factor
    scope3_td_kg: float  # import x T&D losses factor
    export_avoided_kg: float  # export x generation factor: shown separately

    @property
    def gross_kg(self) -> float:
        """Scope 2 + Scope 3 T&D of imported electricity (the reported footprint)."""
        return self.scope2_kg + self.scope3_td_kg


def footprint(import_kwh: float, export_kwh: float, factors: ElectricityFactors) -> Footprint:
    """Emissions of ``import_kwh`` and the grid emissions ``export_kwh`` displaced."""
    return Footprint(
        factor_year=factors.year,
        import_kwh=import_kwh,
        export_kwh=export_kwh,
        scope2_kg=import_kwh * factors.generation,
        scope3_td_kg=import_kwh * factors.td_losses,
        export_avoided_kg=export_kwh * factors.generation,
    )


def pct_change(current: float, baseline: float) -> float | None:
    """Percentage change from ``baseline`` to ``current``; ``None`` without a baseline."""
    if baseline == 0:
        return None
    return (current - baseline) / baseline * 100.0
