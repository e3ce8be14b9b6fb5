"""DAQI per site per hour from the rollups, with the pure DEFRA rules of ``rules.daqi``.

A site's air-quality sensors are pooled. A base mean (an hour; 15 minutes for SO2) counts only
with >= 75 % of its expected samples (the kind's interval); the index at an instant ``at`` on
the hour is ``rules.daqi``'s: NO2 the hour ending at ``at``, PM 24-hour and O3 8-hour running
means of valid hours, SO2 the quarter hour ending at ``at``; the site index is the highest.
The hourly series gives the interval ``[h, h + 1 h)`` the DAQI at its end, ``h + 1 h``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from psycopg import AsyncConnection, sql

from rules import daqi
from sensors.catalogue import AIR_QUALITY

KIND: Final = AIR_QUALITY.name
HOUR: Final = daqi.HOUR
_HOURLY: Final = tuple(p for p in daqi.POLLUTANTS if daqi.AVERAGING[p].base == HOUR)
_QUARTERLY: Final = tuple(p for p in daqi.POLLUTANTS if daqi.AVERAGING[p].base != HOUR)


def expected_samples(pollutant: str) -> int:
    """Samples one base period of ``pollutant`` should hold (as ``rules.daqi`` counts them)."""
    base = daqi.AVERAGING[pollutant].base
    return max(1, int(base.total_seconds()) // AIR_QUALITY.expected_interval_s)


@dataclass(frozen=True, slots=True)
class SiteDaqi:
    """The DAQI of one site at ``at``: overall index and band, and the index per pollutant."""

    council: str
    site: str
    at: datetime
    index: int | None
    band: str | None
    pollutants: dict[str, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready mapping (times ISO 8601 UTC)."""
        return {
            "at": self.at.isoformat().replace("+00:00", "Z"),
            "index": self.index,
            "band": self.band,
            "pollutants": self.pollutants,
        }


def _base_means_sql(
    first_at: datetime, last_at: datetime, council: str | None, site: str | None
) -> sql.Composed:
    """Valid base means per (council, site, pollutant, period start) that the DAQI at the
    instants ``first_at`` … ``last_at`` reads: each pollutant from ``first_at - its window``."""

    def part(rel: str, pollutants: tuple[str, ...]) -> sql.Composed:
        expected = sql.SQL("CASE r.metric {} END").format(
            sql.SQL(" ").join(
                sql.SQL("WHEN {} THEN {}").format(sql.Literal(p), sql.Literal(expected_samples(p)))
                for p in pollutants
            )
        )
        conds = [
            sql.SQL("r.kind = {}").format(sql.Literal(KIND)),
            sql.SQL("r.metric = ANY({})").format(sql.Literal(list(pollutants))),
            sql.SQL("r.bucket >= CASE r.metric {} END").format(
                sql.SQL(" ").join(
                    sql.SQL("WHEN {} THEN {}").format(
                        sql.Literal(p), sql.Literal(first_at - daqi.AVERAGING[p].window)
                    )
                    for p in pollutants
                )
            ),
            sql.SQL("r.bucket < {}").format(sql.Literal(last_at)),
        ]
        if council is not None:
            conds.append(sql.SQL("r.council = {}").format(sql.Literal(council)))
        if site is not None:
            conds.append(sql.SQL("coalesce(s.site, r.sensor_id) = {}").format(sql.Literal(site)))
        return sql.SQL(
            "SELECT r.council, coalesce(s.site, r.sensor_id) AS site, r.metric, r.bucket,"
            " sum(r.sum) / sum(r.n) AS mean"
            " FROM {rel} r LEFT JOIN sensor_sites s ON s.sensor_id = r.sensor_id"
            " WHERE {where} GROUP BY 1, 2, 3, 4 HAVING 4 * sum(r.n) >= 3 * min({expected})"
        ).format(rel=sql.Identifier(rel), where=sql.SQL(" AND ").join(conds), expected=expected)

    return sql.SQL("{} UNION ALL {}").format(
        part("readings_1h", _HOURLY), part("readings_15m", _QUARTERLY)
    )


def site_daqi_at(
    council: str, site: str, at: datetime, means: dict[str, dict[datetime, float]]
) -> SiteDaqi:
    """The site's DAQI at ``at`` (on the hour) from its valid base means per pollutant."""
    per: dict[str, int] = {}
    for pollutant, by_start in means.items():
        avg = daqi.AVERAGING[pollutant]
        if avg.base == HOUR:
            conc = daqi.running_mean(by_start, at, avg.span, avg.min_valid)
        else:  # one base period (SO2: the quarter hour ending at ``at``)
            conc = by_start.get(at - avg.base)
        if conc is not None:
            per[pollutant] = daqi.index_for(pollutant, conc)
    index = daqi.site_index(per)
    return SiteDaqi(council, site, at, index, None if index is None else daqi.band_for(index), per)


async def _means(
    conn: AsyncConnection[Any],
    first_at: datetime,
    last_at: datetime,
    council: str | None,
    site: str | None,
) -> dict[tuple[str, str], dict[str, dict[datetime, float]]]:
    cur = await conn.execute(_base_means_sql(first_at, last_at, council, site))
    out: dict[tuple[str, str], dict[str, dict[datetime, float]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for c, s, metric, bucket, mean in await cur.fetchall():
        out[(c, s)][metric][bucket] = mean
    return out


def floor_hour(t: datetime) -> datetime:
    """The start of the UTC hour holding ``t``."""
    return t.replace(minute=0, second=0, microsecond=0)


async def daqi_hourly(
    conn: AsyncConnection[Any], council: str, site: str, start: datetime, end: datetime
) -> list[tuple[datetime, datetime, SiteDaqi]]:
    """(interval start, interval end, DAQI at the end) for each hour starting in [start, end).

    Hours without any index (no valid data) are left out.
    """
    first = floor_hour(start) if start == floor_hour(start) else floor_hour(start) + HOUR
    hours = [first + k * HOUR for k in range(max(0, -(-(end - first) // HOUR)))]
    if not hours:
        return []
    means = await _means(conn, hours[0] + HOUR, hours[-1] + HOUR, council, site)
    site_means = means.get((council, site), {})
    out = []
    for h in hours:
        value = site_daqi_at(council, site, h + HOUR, site_means)
        if value.index is not None:
            out.append((h, h + HOUR, value))
    return out


async def current_daqi(
    conn: AsyncConnection[Any], at: datetime, council: str | None = None
) -> dict[tuple[str, str], SiteDaqi]:
    """Every air-quality site's DAQI at ``at`` (on the hour), keyed by (council, site)."""
    means = await _means(conn, at, at, council, None)
    return {key: site_daqi_at(*key, at, m) for key, m in means.items()}


__all__ = [
    "SiteDaqi",
    "current_daqi",
    "daqi_hourly",
    "expected_samples",
    "floor_hour",
    "site_daqi_at",
]
