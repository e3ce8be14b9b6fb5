"""Raw readings as streamed CSV: ``/api/v1/readings.csv`` (what the caller may see, as stored)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from psycopg import AsyncConnection, sql

from api.opendata.params import BadRequest, parse_time, reject_unknown
from sensors.catalogue import KINDS

COLUMNS: Final = ("time", "council", "sensor_id", "kind", "metric", "value", "unit")
PARAMS: Final = ("council", "kind", "metric", "sensor", "from", "to")
MAX_SPAN: Final = timedelta(days=7)
MAX_ROWS: Final = 20_000_000  # a week of 1-minute data from ~2,000 sensors
_METRICS: Final = {m for k in KINDS.values() for m in k.metrics}


@dataclass(frozen=True, slots=True)
class ExportQuery:
    """Readings with ``start <= time < end``, optionally one council, kind, metric, sensor."""

    start: datetime
    end: datetime
    council: str | None = None
    kind: str | None = None
    metric: str | None = None
    sensor: str | None = None


def parse_export(params: Mapping[str, Sequence[str]]) -> ExportQuery:
    """Validate the query string; BadRequest (one line, naming the parameter) if wrong."""
    reject_unknown(params, PARAMS)
    one = {k: (v[-1] if v else None) for k, v in params.items()}
    kind, metric = one.get("kind"), one.get("metric")
    if kind is not None and kind not in KINDS:
        raise BadRequest(f"kind: one of {', '.join(KINDS)}")
    if metric is not None and metric not in _METRICS:
        raise BadRequest(f"metric: unknown metric: {metric[:40]!r}")
    start = parse_time("from", one.get("from"))
    end = parse_time("to", one.get("to"))
    if start >= end:
        raise BadRequest("from: must be before to")
    if end - start > MAX_SPAN:
        raise BadRequest(f"to: at most {MAX_SPAN.days} days of raw readings per export")
    return ExportQuery(start, end, one.get("council"), kind, metric, one.get("sensor"))


def export_sql(q: ExportQuery) -> sql.Composed:
    """The SELECT (literals only, so it runs inside COPY), in storage order."""
    where = [
        sql.SQL("time >= {}").format(sql.Literal(q.start)),
        sql.SQL("time < {}").format(sql.Literal(q.end)),
    ]
    for column, value in (
        ("council", q.council),
        ("kind", q.kind),
        ("metric", q.metric),
        ("sensor_id", q.sensor),
    ):
        if value is not None:
            where.append(sql.SQL("{} = {}").format(sql.Identifier(column), sql.Literal(value)))
    return sql.SQL(
        "SELECT to_char(time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
        " council, sensor_id, kind, metric, value, unit FROM readings WHERE {} LIMIT {}"
    ).format(sql.SQL(" AND ").join(where), sql.Literal(MAX_ROWS))


async def stream_readings(
    conn: AsyncConnection[Any], q: ExportQuery, counted: list[int], chunk_bytes: int = 1 << 17
) -> AsyncIterator[bytes]:
    """CSV chunks of about ``chunk_bytes`` from ``COPY … TO STDOUT``; ``counted[0]`` rows."""
    copy_sql = sql.SQL("COPY ({}) TO STDOUT WITH (FORMAT csv)").format(export_sql(q))
    buffer = bytearray((",".join(COLUMNS) + "\n").encode())
    rows = 0
    async with conn.cursor() as cur, cur.copy(copy_sql) as copy:
        async for data in copy:
            buffer += data
            rows += 1
            if len(buffer) >= chunk_bytes:
                counted[0] = rows
                yield bytes(buffer)
                buffer.clear()
    counted[0] = rows
    if buffer:
        yield bytes(buffer)
