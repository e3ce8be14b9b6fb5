"""Aggregates as data: rollup rows (min, max, mean, count) per interval, read from the contract.

Function order: every aggregate row's result is ``[min, max, mean, count]`` (``FUNCTIONS``),
the order the MultiDatastreams advertise; ``interval`` is ``[start, end)`` in UTC.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from psycopg import AsyncConnection, sql

from sensors.catalogue import KINDS

#: The result array's order, as advertised to clients (OGC 26-057 aggregation functions).
FUNCTIONS: Final = ("min", "max", "mean", "count")

Resolution = Literal["15m", "1h", "1d"]
Group = Literal["sensor", "site", "council"]

#: Interval width of each resolution.
WIDTHS: Final[dict[str, timedelta]] = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "1d": timedelta(days=1),
}
_SENSOR_ROLLUP: Final = {"15m": "readings_15m", "1h": "readings_1h", "1d": "readings_1d"}
_COUNCIL_ROLLUP: Final = {"1h": "readings_council_1h", "1d": "readings_council_1d"}
#: Cumulative registers have no council rollup (sql/010: council_rollup_metric).
NO_COUNCIL_ROLLUP: Final = frozenset({"energy_import", "energy_export"})

#: Columns of every aggregate row, in order (the CSV header).
COLUMNS: Final = (
    "council",
    "kind",
    "metric",
    "unit",
    "site",
    "sensor_id",
    "interval_start",
    "interval_end",
    *FUNCTIONS,
)


@dataclass(frozen=True, slots=True)
class AggregateQuery:
    """What to aggregate: filters, the grouping of series, the resolution and ``[start, end)``.

    ``group``: ``sensor`` gives one series per sensor and metric; ``site`` pools the sensors
    of a site (min of mins, max of maxes, sum of sums / sum of counts: exact); ``council`` one
    series per council, kind and metric. Intervals are those whose start is in ``[start, end)``.
    """

    resolution: Resolution
    start: datetime
    end: datetime
    council: str | None = None
    kind: str | None = None
    metric: str | None = None
    site: str | None = None
    sensor: str | None = None
    group: Group = "sensor"
    descending: bool = False  # intervals latest first (within each series)


@dataclass(frozen=True, slots=True)
class AggregateRow:
    """One interval of one series, with its functions in ``FUNCTIONS`` order."""

    council: str
    kind: str
    metric: str
    unit: str
    site: str | None
    sensor_id: str | None
    start: datetime
    end: datetime
    min: float
    max: float
    mean: float
    count: int

    @property
    def result(self) -> list[float | int]:
        """The MultiDatastream result array: ``[min, max, mean, count]``."""
        return [self.min, self.max, self.mean, self.count]


def _iso(column: sql.Composable) -> sql.Composed:
    return sql.SQL("""to_char(({}) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')""").format(
        column
    )


# The catalogue's canonical unit of each (kind, metric) (sensors/catalogue.py).
_UNIT: Final = sql.SQL("CASE {} END").format(
    sql.SQL(" ").join(
        sql.SQL("WHEN r.kind = {} AND r.metric = {} THEN {}").format(
            sql.Literal(k.name), sql.Literal(m.name), sql.Literal(m.unit)
        )
        for k in KINDS.values()
        for m in k.metrics.values()
    )
)


def _filters(q: AggregateQuery, site_expr: sql.Composable) -> sql.Composed:
    conds: list[sql.Composable] = [
        sql.SQL("r.bucket >= {}").format(sql.Literal(q.start)),
        sql.SQL("r.bucket < {}").format(sql.Literal(q.end)),
    ]
    for column, value in (
        ("council", q.council),
        ("kind", q.kind),
        ("metric", q.metric),
        ("sensor_id", q.sensor if q.group != "council" else None),
    ):
        if value is not None:
            conds.append(sql.SQL("r.{} = {}").format(sql.Identifier(column), sql.Literal(value)))
    if q.site is not None and q.group != "council":
        conds.append(sql.SQL("{} = {}").format(site_expr, sql.Literal(q.site)))
    if q.group == "council":
        conds.append(sql.SQL("r.metric <> ALL({})").format(sql.Literal(sorted(NO_COUNCIL_ROLLUP))))
    return sql.SQL(" AND ").join(conds)


def aggregate_sql(q: AggregateQuery, *, iso_times: bool = False) -> sql.Composed:
    """The SELECT of ``q``'s rows (``COLUMNS`` order), ordered by series then interval.

    Every value is a literal (so the statement also works inside ``COPY``). Relations are
    unqualified: the session's ``search_path`` picks the caller's tenancy views.
    """
    width = sql.Literal(WIDTHS[q.resolution])
    start: sql.Composable = sql.SQL("r.bucket")
    end: sql.Composable = sql.SQL("r.bucket + {}").format(width)
    if iso_times:
        start, end = _iso(start), _iso(end)
    site = sql.SQL("coalesce(s.site, r.sensor_id)")
    where = _filters(q, site)
    bucket = sql.SQL("r.bucket DESC" if q.descending else "r.bucket")
    if q.group == "sensor":
        return sql.SQL(
            "SELECT r.council, r.kind, r.metric, {unit}, {site}, r.sensor_id, {start}, {end},"
            " r.min, r.max, r.mean, r.n"
            " FROM {rel} r LEFT JOIN sensor_sites s ON s.sensor_id = r.sensor_id"
            " WHERE {where} ORDER BY r.sensor_id, r.metric, {bucket}"
        ).format(
            unit=_UNIT,
            site=site,
            start=start,
            end=end,
            rel=sql.Identifier(_SENSOR_ROLLUP[q.resolution]),
            where=where,
            bucket=bucket,
        )
    if q.group == "site":
        return sql.SQL(
            "SELECT r.council, r.kind, r.metric, {unit}, {site}, NULL::text, {start}, {end},"
            " min(r.min), max(r.max), sum(r.sum) / sum(r.n), sum(r.n)::bigint"
            " FROM {rel} r LEFT JOIN sensor_sites s ON s.sensor_id = r.sensor_id"
            " WHERE {where} GROUP BY r.council, r.kind, r.metric, {site}, r.bucket"
            " ORDER BY r.council, {site}, r.kind, r.metric, {bucket}"
        ).format(
            unit=_UNIT,
            site=site,
            start=start,
            end=end,
            rel=sql.Identifier(_SENSOR_ROLLUP[q.resolution]),
            where=where,
            bucket=bucket,
        )
    council_rel = _COUNCIL_ROLLUP.get(q.resolution)
    if council_rel is None:  # 15 minutes: no council rollup, pool the sensors' rows
        return sql.SQL(
            "SELECT r.council, r.kind, r.metric, {unit}, NULL::text, NULL::text, {start}, {end},"
            " min(r.min), max(r.max), sum(r.sum) / sum(r.n), sum(r.n)::bigint"
            " FROM readings_15m r WHERE {where} GROUP BY r.council, r.kind, r.metric, r.bucket"
            " ORDER BY r.council, r.kind, r.metric, {bucket}"
        ).format(unit=_UNIT, start=start, end=end, where=where, bucket=bucket)
    return sql.SQL(
        "SELECT r.council, r.kind, r.metric, {unit}, NULL::text, NULL::text, {start}, {end},"
        " r.min, r.max, r.mean, r.n FROM {rel} r WHERE {where}"
        " ORDER BY r.council, r.kind, r.metric, {bucket}"
    ).format(
        unit=_UNIT,
        start=start,
        end=end,
        rel=sql.Identifier(council_rel),
        where=where,
        bucket=bucket,
    )


async def fetch_aggregates(
    conn: AsyncConnection[Any], q: AggregateQuery, *, limit: int | None = None, offset: int = 0
) -> list[AggregateRow]:
    """The rows of ``q`` (at most ``limit``, after ``offset``), series by series, intervals
    in time order (latest first with ``q.descending``)."""
    query = aggregate_sql(q)
    if limit is not None:
        query = sql.SQL("{} LIMIT {}").format(query, sql.Literal(limit))
    if offset:
        query = sql.SQL("{} OFFSET {}").format(query, sql.Literal(offset))
    cur = await conn.execute(query)
    return [AggregateRow(*row) for row in await cur.fetchall()]


async def count_at_most(conn: AsyncConnection[Any], q: AggregateQuery, cap: int) -> int:
    """How many rows ``q`` has, counting no further than ``cap + 1`` (a cheap size guard)."""
    cur = await conn.execute(
        sql.SQL("SELECT count(*) FROM ({} LIMIT {}) q").format(
            aggregate_sql(q), sql.Literal(cap + 1)
        )
    )
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def stream_csv(
    conn: AsyncConnection[Any], q: AggregateQuery, *, chunk_bytes: int = 1 << 16
) -> AsyncIterator[bytes]:
    """``q``'s rows as CSV (header ``COLUMNS``) from ``COPY ... TO STDOUT``, in chunks of about
    ``chunk_bytes``: memory stays flat whatever the row count."""
    copy_sql = sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv)").format(
        aggregate_sql(q, iso_times=True)
    )
    buffer = bytearray((",".join(COLUMNS) + "\n").encode())
    async with conn.cursor() as cur, cur.copy(copy_sql) as copy:
        async for data in copy:  # one COPY message a row: send them in chunks
            buffer += data
            if len(buffer) >= chunk_bytes:
                yield bytes(buffer)
                buffer.clear()
    if buffer:
        yield bytes(buffer)
