"""UK air-quality legal limits, the England PM2.5 2040 target, WHO 2021 guidelines, compliance."""

from __future__ import annotations

import calendar
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Final

AQSR_2010: Final = "Air Quality Standards Regulations 2010 (shared/reference/domain.md §1)"
SI_2023_96: Final = (
    "Environmental Targets (Fine Particulate Matter) (England) Regulations 2023, SI 2023/96: "
    "annual mean <= 10 µg/m³ by 31 Dec 2040 (shared/reference/domain.md §1)"
)
WHO_2021: Final = "WHO global air quality guidelines, 2021 (shared/reference/domain.md §1)"

HOURLY: Final = "1 hour"
DAILY: Final = "24 hours"
ANNUAL: Final = "calendar year"
O3_8H: Final = "8 hours (daily maximum running mean)"


@dataclass(frozen=True, slots=True)
class Limit:
    """A concentration that a mean over ``averaging`` must not exceed, and how often it may."""

    metric: str
    averaging: str
    value_ug_m3: float
    allowed_per_year: int | None
    source: str


LEGAL_LIMITS: Final = (
    Limit("no2", HOURLY, 200.0, 18, AQSR_2010),
    Limit("no2", ANNUAL, 40.0, None, AQSR_2010),
    Limit("pm10", DAILY, 50.0, 35, AQSR_2010),
    Limit("pm10", ANNUAL, 40.0, None, AQSR_2010),
    Limit("pm2_5", ANNUAL, 25.0, None, AQSR_2010),
)
ENGLAND_PM25_TARGET_2040: Final = Limit("pm2_5", ANNUAL, 10.0, None, SI_2023_96)
WHO_2021_GUIDELINES: Final = (
    Limit("pm2_5", ANNUAL, 5.0, None, WHO_2021),
    Limit("pm2_5", DAILY, 15.0, None, WHO_2021),
    Limit("pm10", ANNUAL, 15.0, None, WHO_2021),
    Limit("pm10", DAILY, 45.0, None, WHO_2021),
    Limit("no2", ANNUAL, 10.0, None, WHO_2021),
    Limit("no2", DAILY, 25.0, None, WHO_2021),
    Limit("o3", O3_8H, 100.0, None, WHO_2021),
)
COMPLIANCE_METRICS: Final = ("no2", "pm10", "pm2_5")


def limit_for(metric: str, averaging: str) -> Limit | None:
    """The UK legal limit for ``metric`` over ``averaging``, ``None`` when there is none."""
    return next((x for x in LEGAL_LIMITS if (x.metric, x.averaging) == (metric, averaging)), None)


def count_exceedances(means: Iterable[float], limit: float) -> int:
    """How many means are strictly greater than ``limit`` (equal to it complies)."""
    return sum(1 for m in means if m > limit)


def _utc_hour(t: datetime) -> datetime:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"naive datetime not allowed: {t!r}")
    utc = t.astimezone(UTC)
    if (utc.minute, utc.second, utc.microsecond) != (0, 0, 0):
        raise ValueError(f"hourly keys must be hour starts, got {t!r}")
    return utc


def daily_means(hourly: Mapping[datetime, float], min_hours: int = 18) -> dict[date, float]:
    """Daily means of hourly means keyed by hour START; a UTC (= GMT) day needs ``min_hours``.

    A day's hours start 00:00 … 23:00 UTC, i.e. end 01:00 … 24:00 as in UK-AIR's day.
    """
    if not 1 <= min_hours <= 24:
        raise ValueError(f"min_hours must be 1..24, got {min_hours!r}")
    by_day: dict[date, list[tuple[datetime, float]]] = defaultdict(list)
    for t, v in hourly.items():
        utc = _utc_hour(t)
        by_day[utc.date()].append((utc, v))
    return {
        day: math.fsum(v for _, v in sorted(rows)) / len(rows)
        for day, rows in sorted(by_day.items())
        if len(rows) >= min_hours
    }


@dataclass(frozen=True, slots=True)
class ComplianceRow:
    """One metric's year against the UK limits (and, for PM2.5, the England 2040 target).

    ``passes`` is ``None`` without data. ``data_capture`` is valid hours / hours in the year;
    judge a low-capture year with care (the Regulations' capture rules are not applied here).
    """

    metric: str
    year: int
    hours_with_data: int
    data_capture: float
    annual_mean: float | None
    annual_limit: float
    short_term_averaging: str | None
    short_term_limit: float | None
    exceedances: int | None
    allowed: int | None
    passes: bool | None
    target_2040: float | None
    meets_2040_target: bool | None


def _row(year: int, metric: str, hourly: Mapping[datetime, float]) -> ComplianceRow:
    in_year = {
        u: v for t, v in hourly.items() if (u := _utc_hour(t)).year == year
    }  # hour-start keys: 31 Dec 23:00 belongs to the year, 1 Jan 00:00 of the next does not
    values = [v for _, v in sorted(in_year.items())]
    mean = math.fsum(values) / len(values) if values else None
    annual = limit_for(metric, ANNUAL)
    if annual is None:
        raise ValueError(f"no UK annual limit for {metric!r}")
    short = limit_for(metric, HOURLY) or limit_for(metric, DAILY)
    exceedances = allowed = None
    if short is not None:
        means = values if short.averaging == HOURLY else list(daily_means(in_year).values())
        exceedances, allowed = count_exceedances(means, short.value_ug_m3), short.allowed_per_year
    passes = None
    if mean is not None:
        passes = mean <= annual.value_ug_m3 and (
            exceedances is None or allowed is None or exceedances <= allowed
        )
    target = ENGLAND_PM25_TARGET_2040.value_ug_m3 if metric == "pm2_5" else None
    return ComplianceRow(
        metric=metric,
        year=year,
        hours_with_data=len(values),
        data_capture=len(values) / ((366 if calendar.isleap(year) else 365) * 24),
        annual_mean=mean,
        annual_limit=annual.value_ug_m3,
        short_term_averaging=None if short is None else short.averaging,
        short_term_limit=None if short is None else short.value_ug_m3,
        exceedances=exceedances,
        allowed=allowed,
        passes=passes,
        target_2040=target,
        meets_2040_target=None if target is None or mean is None else mean <= target,
    )


def annual_compliance(
    year: int, hourly_by_metric: Mapping[str, Mapping[datetime, float]]
) -> list[ComplianceRow]:
    """Rows for NO2, PM10, PM2.5 (those present) from hourly means keyed by hour start (UTC).

    NO2 counts hourly means > 200 (18 allowed); PM10 counts daily means > 50 (35 allowed,
    days need 18 valid hours); each annual mean is the mean of the year's hourly means.
    """
    return [_row(year, m, hourly_by_metric[m]) for m in COMPLIANCE_METRICS if m in hourly_by_metric]
