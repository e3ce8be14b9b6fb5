"""The open-data endpoints: aggregates (JSON, streamed CSV), DAQI, sensors GeoJSON, the page."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse

from api.access import current_caller
from api.opendata import aggregates as agg
from api.opendata.daqi import daqi_hourly
from api.opendata.export import parse_export, stream_readings
from api.opendata.geojson import sensors_feature_collection
from api.opendata.params import (
    MAX_CSV_ROWS,
    MAX_JSON_ROWS,
    MAX_SPAN,
    BadRequest,
    parse_aggregates,
    parse_time,
    reject_unknown,
)
from api.reader import Caller, Reader
from sensors.catalogue import KINDS

router = APIRouter()
Opt = Annotated[str | None, Query()]


def _reader(request: Request) -> Reader:
    reader: Reader = request.app.state.reader
    return reader


CallerDep = Annotated[Caller, Depends(current_caller)]
ReaderDep = Annotated[Reader, Depends(_reader)]


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON response serialised with orjson (floats round-trip exactly)."""
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def bad_request(message: str) -> Response:
    """400 with a one-line message (never a stack trace)."""
    line = " ".join(message.split())
    return json_response({"code": 400, "type": "error", "message": line}, 400)


def _params(request: Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        out.setdefault(key, []).append(value)
    return out


def _unit(kind: str, metric: str) -> str | None:
    k = KINDS.get(kind)
    m = k.metric(metric) if k is not None else None
    return None if m is None else m.unit


def _series_json(rows: list[agg.AggregateRow]) -> list[dict[str, Any]]:
    series: list[dict[str, Any]] = []
    key: tuple[Any, ...] | None = None
    for r in rows:
        k = (r.council, r.kind, r.metric, r.site, r.sensor_id)
        if k != key:
            key = k
            series.append(
                {
                    "council": r.council,
                    "kind": r.kind,
                    "metric": r.metric,
                    "unit": r.unit,
                    "site": r.site,
                    "sensor_id": r.sensor_id,
                    "rows": [],
                }
            )
        series[-1]["rows"].append(
            [_z(r.start.isoformat()), _z(r.end.isoformat()), r.min, r.max, r.mean, r.count]
        )
    return series


def _z(iso: str) -> str:
    return iso.replace("+00:00", "Z")


@router.get("/api/v1/aggregates", tags=["open data"], response_model=None)
async def aggregates(
    request: Request,
    caller: CallerDep,
    reader: ReaderDep,
    council: Opt = None,
    kind: Opt = None,
    metric: Opt = None,
    site: Opt = None,
    sensor: Opt = None,
    group: Annotated[str | None, Query(description="sensor (default), site or council")] = None,
    resolution: Annotated[str | None, Query(description="15m, 1h (default) or 1d")] = None,
    from_: Annotated[str | None, Query(alias="from", description="ISO 8601, inclusive")] = None,
    to: Annotated[str | None, Query(description="ISO 8601, exclusive")] = None,
    format: Annotated[str | None, Query(description="json (default) or csv")] = None,
) -> Response:
    """Rollups as data: per interval ``[min, max, mean, count]`` (that order) of each series.

    Series are per sensor (``group=sensor``), pooled per site, or per council; intervals are
    those starting in ``[from, to)``. ``format=csv`` streams the rows.
    """
    try:
        req = parse_aggregates(_params(request))
    except BadRequest as e:
        return bad_request(str(e))
    q = req.query
    if req.format == "csv":
        return await _csv(reader, caller, q)
    async with reader.session(caller) as session:
        rows = await agg.fetch_aggregates(session.conn, q, limit=MAX_JSON_ROWS + 1)
        if len(rows) > MAX_JSON_ROWS:
            return bad_request(
                f"result too large: more than {MAX_JSON_ROWS} rows; narrow the query"
                " (council, kind, metric, site, sensor, from/to) or use format=csv"
            )
        session.count(len(rows), "aggregates")
    return json_response(
        {
            "resolution": q.resolution,
            "interval_seconds": int(agg.WIDTHS[q.resolution].total_seconds()),
            "group": q.group,
            "from": _z(q.start.isoformat()),
            "to": _z(q.end.isoformat()),
            "functions": list(agg.FUNCTIONS),
            "columns": ["interval_start", "interval_end", *agg.FUNCTIONS],
            "numberReturned": len(rows),
            "series": _series_json(rows),
        }
    )


async def _csv(reader: Reader, caller: Caller, q: agg.AggregateQuery) -> Response:
    async with reader.session(caller) as session:
        n = await agg.count_at_most(session.conn, q, MAX_CSV_ROWS)
    if n > MAX_CSV_ROWS:
        return bad_request(
            f"result too large: more than {MAX_CSV_ROWS} rows; narrow the query"
            " (council, kind, metric, site, sensor, from/to)"
        )

    async def body() -> AsyncIterator[bytes]:
        async with reader.session(caller) as session:
            async for chunk in agg.stream_csv(session.conn, q):
                yield chunk
            session.count(n, "aggregates.csv")

    name = f"civicpulse-aggregates-{q.resolution}-{q.start:%Y%m%dT%H%M}Z.csv"
    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "X-Row-Count": str(n)},
    )


@router.get("/api/v1/daqi", tags=["open data"], response_model=None)
async def daqi(
    request: Request,
    caller: CallerDep,
    reader: ReaderDep,
    council: Opt = None,
    site: Opt = None,
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: Opt = None,
) -> Response:
    """A site's hourly DAQI: each hour ``[start, end)`` with the index and band at its end."""
    params = _params(request)
    try:
        reject_unknown(params, ("council", "site", "from", "to"))
        if council is None or site is None:
            raise BadRequest(f"{'council' if council is None else 'site'}: required")
        start, end = parse_time("from", from_), parse_time("to", to)
        if start >= end:
            raise BadRequest("from: must be before to")
        if end - start > MAX_SPAN["1h"]:
            raise BadRequest(f"to: range too long: at most {MAX_SPAN['1h'].days} days")
    except BadRequest as e:
        return bad_request(str(e))
    async with reader.session(caller) as session:
        hours = await daqi_hourly(session.conn, council, site, start, end)
        session.count(len(hours), "daqi")
    return json_response(
        {
            "council": council,
            "site": site,
            "columns": ["interval_start", "interval_end", "index", "band"],
            "rows": [[_z(s.isoformat()), _z(e.isoformat()), d.index, d.band] for s, e, d in hours],
        }
    )


@router.get("/api/v1/readings.csv", tags=["open data"], response_model=None)
async def readings_csv(request: Request, caller: CallerDep, reader: ReaderDep) -> Response:
    """Raw readings ``[from, to)`` (at most 7 days) as streamed CSV, in storage order:
    ``council``, ``kind``, ``metric``, ``sensor`` narrow it. Only what the caller may see."""
    try:
        q = parse_export(_params(request))
    except BadRequest as e:
        return bad_request(str(e))

    async def body() -> AsyncIterator[bytes]:
        counted = [0]
        async with reader.session(caller) as session:
            async for chunk in stream_readings(session.conn, q, counted):
                session.rows = counted[0]
                yield chunk
            session.rows = counted[0]

    name = f"civicpulse-readings-{q.start:%Y%m%dT%H%M}Z.csv"
    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@router.get("/api/v1/sensors.geojson", tags=["open data"], response_model=None)
async def sensors_geojson(request: Request, caller: CallerDep, reader: ReaderDep) -> Response:
    """Every sensor: site position, kind, council, status, latest values, the site's DAQI."""
    try:
        reject_unknown(_params(request), ())
    except BadRequest as e:
        return bad_request(str(e))
    ttl = getattr(request.app.state.config, "geojson_cache_s", 0.0)
    cache: dict[str, tuple[float, bytes, int]] = request.app.state.__dict__.setdefault(
        "geojson_cache", {}
    )
    hit = cache.get(caller.role)
    now = time.monotonic()
    async with reader.session(caller) as session:  # a cached answer is still a logged read
        if hit is not None and now - hit[0] < ttl:
            _, payload, n = hit
        else:
            body = await sensors_feature_collection(session.conn)
            payload, n = orjson.dumps(body), len(body["features"])
            if ttl > 0:
                cache[caller.role] = (now, payload, n)
        session.count(n, "sensors.geojson")
    return Response(
        payload,
        media_type="application/geo+json",
        headers={"Cache-Control": f"max-age={int(ttl)}"} if ttl > 0 else None,
    )
