"""Bin forecasts from the database: the collection-due list for a day, stored forecasts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import psycopg

from rules.forecast import (
    DEFAULT_THRESHOLD,
    BinForecast,
    collection_due,
    forecast_bin,
)
from storage.report_queries import series

LONDON = ZoneInfo("Europe/London")
LOOKBACK = timedelta(days=14)  # enough past cycles for a bin's typical rate


@dataclass(frozen=True, slots=True)
class DueList:
    """Bins due for collection on ``day`` (local), forecast from reads before ``as_of``."""

    day: date
    as_of: datetime
    by: datetime  # end of the day: due = at/over threshold by then
    due: list[BinForecast]
    not_due: list[BinForecast]
    sites: dict[str, str]


def day_bounds(day: date, tz: tzinfo = LONDON) -> tuple[datetime, datetime]:
    """Local midnight starting ``day`` and the next one (23, 24 or 25 hours apart)."""
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    nxt = day + timedelta(days=1)
    return start, datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz)


def due_list(
    conn: psycopg.Connection,
    day: date,
    *,
    council: str | None = None,
    as_of: datetime | None = None,
    threshold: float | None = None,
    tz: tzinfo = LONDON,
) -> DueList:
    """Forecast every bin from reads before ``as_of`` (default: the day's start).

    Planning a round happens before it: by default the list for a day depends only on
    reads before that day starts, so it is the same whenever it is printed. ``threshold``
    overrides every bin's; otherwise ``sensor_sites.threshold_pct`` or 80 %.
    """
    start, end = day_bounds(day, tz)
    cutoff = as_of or start
    found, sites = forecast_all(conn, cutoff, council=council, threshold=threshold)
    due = collection_due(found, end)
    chosen = {f.sensor_id for f in due}
    rest = sorted((f for f in found if f.sensor_id not in chosen), key=lambda f: f.sensor_id)
    return DueList(day, cutoff, end, due, rest, sites)


def forecast_all(
    conn: psycopg.Connection,
    as_of: datetime,
    *,
    council: str | None = None,
    threshold: float | None = None,
) -> tuple[list[BinForecast], dict[str, str]]:
    """Every bin's forecast from its reads before ``as_of``, and each bin's site name."""
    found = series(conn, "waste_bin", ["fill_level"], as_of - LOOKBACK, as_of, council)
    forecasts: list[BinForecast] = []
    sites: dict[str, str] = {}
    for s in found.values():
        limit = threshold or s.threshold_pct or DEFAULT_THRESHOLD
        fc = forecast_bin(s.sensor_id, s.times, s.values, council=s.council, threshold=limit)
        if fc is not None:
            forecasts.append(fc)
            sites[s.sensor_id] = s.site
    return forecasts, sites


_UPSERT = """
INSERT INTO bin_forecasts (sensor_id, as_of, council, fill_pct, threshold_pct, rate_pct_per_h,
                           full_at, method, cycle_start)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (sensor_id, as_of) DO UPDATE
   SET council = EXCLUDED.council, fill_pct = EXCLUDED.fill_pct,
       threshold_pct = EXCLUDED.threshold_pct, rate_pct_per_h = EXCLUDED.rate_pct_per_h,
       full_at = EXCLUDED.full_at, method = EXCLUDED.method,
       cycle_start = EXCLUDED.cycle_start, computed_at = now()
"""


def store_forecasts(conn: psycopg.Connection, forecasts: list[BinForecast]) -> int:
    """Upsert ``forecasts`` into ``bin_forecasts`` (one transaction); returns how many."""
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            _UPSERT,
            [
                (
                    f.sensor_id,
                    f.as_of,
                    f.council,
                    f.fill,
                    f.threshold,
                    f.rate_per_h,
                    f.full_at,
                    f.method,
                    f.cycle_start,
                )
                for f in forecasts
            ],
        )
    return len(forecasts)


def _row(f: BinForecast, site: str, as_of: datetime) -> dict[str, Any]:
    age_h = (as_of - f.as_of).total_seconds() / 3600
    return {
        "sensor_id": f.sensor_id,
        "council": f.council,
        "site": site,
        "fill_pct": round(f.fill, 1),
        "threshold_pct": f.threshold,
        "last_read": f.as_of.isoformat(),
        "last_read_age_h": round(age_h, 1),  # a silent sensor's forecast is old news
        "full_at": f.full_at.isoformat() if f.full_at else None,
        "hours_to_full": None if f.hours_to_full is None else round(f.hours_to_full, 1),
        "rate_pct_per_h": None if f.rate_per_h is None else round(f.rate_per_h, 3),
        "method": f.method,
    }


def to_json(report: DueList) -> dict[str, Any]:
    """The list as a JSON-ready mapping (times ISO 8601 UTC)."""
    return {
        "date": report.day.isoformat(),
        "as_of": report.as_of.astimezone(UTC).isoformat(),
        "due_by": report.by.astimezone(UTC).isoformat(),
        "due": [_row(f, report.sites[f.sensor_id], report.as_of) for f in report.due],
        "not_due": [_row(f, report.sites[f.sensor_id], report.as_of) for f in report.not_due],
    }
