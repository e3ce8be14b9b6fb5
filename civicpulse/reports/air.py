"""Air-quality compliance per site and year: raw reads → hourly means → air_quality core."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg

from rules.air_quality import (
    AQSR_2010,
    COMPLIANCE_METRICS,
    SI_2023_96,
    ComplianceRow,
    annual_compliance,
)
from rules.daqi import hourly_means
from sensors.catalogue import AIR_QUALITY
from storage.report_queries import series


@dataclass(frozen=True, slots=True)
class SiteCompliance:
    """One air-quality sensor's year: a row per metric it measures."""

    sensor_id: str
    council: str
    site: str
    rows: list[ComplianceRow]


def compliance(
    conn: psycopg.Connection,
    year: int,
    *,
    council: str | None = None,
    expected_interval_s: int = AIR_QUALITY.expected_interval_s,
) -> list[SiteCompliance]:
    """Annual means, exceedances and the 2040 PM2.5 target for every air sensor in ``year``.

    Hourly means follow the DEFRA 75 % capture rule for a sensor reporting every
    ``expected_interval_s`` seconds (the catalogue's interval unless told otherwise).
    """
    start, end = datetime(year, 1, 1, tzinfo=UTC), datetime(year + 1, 1, 1, tzinfo=UTC)
    found = series(conn, "air_quality", COMPLIANCE_METRICS, start, end, council)
    per_hour = max(1, 3600 // expected_interval_s)
    by_sensor: dict[str, dict[str, dict[datetime, float]]] = {}
    meta: dict[str, tuple[str, str]] = {}
    for (sensor_id, metric), s in sorted(found.items()):
        by_sensor.setdefault(sensor_id, {})[metric] = hourly_means(
            zip(s.times, s.values, strict=True), per_hour
        )
        meta[sensor_id] = (s.council, s.site)
    return [
        SiteCompliance(sid, meta[sid][0], meta[sid][1], annual_compliance(year, hourly))
        for sid, hourly in by_sensor.items()
    ]


NOT_MEASURED = "not measured"  # no valid hourly mean in the year
NOT_APPLICABLE = "—"  # the limit or target does not exist for this pollutant
AIR_TABLE_LEGEND = (
    f"capture: share of the year's hours with a valid hourly mean (75 % of reads). "
    f"{NOT_MEASURED}: no valid hourly mean in the year. {NOT_APPLICABLE}: no such limit or "
    "target for this pollutant (PM2.5 has no short-term limit; the 2040 target is PM2.5's "
    "only). The Regulations' data-capture rules are not applied: judge a low-capture year "
    "with care."
)


def _yes_no(flag: bool | None, applies: bool = True) -> str:
    if not applies:
        return NOT_APPLICABLE
    if flag is None:
        return NOT_MEASURED
    return "yes" if flag else "no"


def table_cells(r: ComplianceRow) -> list[str]:
    """A compliance row as words for the terminal table (never True/False/None)."""
    measured = r.annual_mean is not None
    if r.short_term_limit is None:
        exceed = NOT_APPLICABLE
    elif r.exceedances is None or not measured:
        exceed = NOT_MEASURED
    else:
        exceed = f"{r.exceedances} of {r.allowed} allowed"
    return [
        r.metric,
        f"{r.data_capture:.0%}",
        f"{r.annual_mean:.1f}" if r.annual_mean is not None else NOT_MEASURED,
        f"{r.annual_limit:g}",
        exceed,
        _yes_no(r.passes),
        _yes_no(r.meets_2040_target, applies=r.target_2040 is not None),
    ]


def to_json(year: int, sites: list[SiteCompliance]) -> dict[str, Any]:
    """JSON-ready mapping of the report, with the legal sources named."""
    return {
        "year": year,
        "limits_source": AQSR_2010,
        "target_2040_source": SI_2023_96,
        "sites": [
            {
                "sensor_id": s.sensor_id,
                "council": s.council,
                "site": s.site,
                "metrics": [asdict(r) for r in s.rows],
            }
            for s in sites
        ],
    }
