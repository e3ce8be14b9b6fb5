"""The ``/v1.1`` routes: service root, entity sets, entities, properties, ``$value``."""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any, Final
from urllib.parse import urlencode

import psycopg
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from api.access import current_caller
from api.opendata.aggregates import FUNCTIONS, WIDTHS
from api.reader import Caller, Reader
from api.sensorthings import aggregated, render
from api.sensorthings.aggregation import DAQI_FUNCTIONS, DURATIONS
from api.sensorthings.engine import COUNT_BOUND, MAX_TOP, Engine, Target
from api.sensorthings.errors import BadRequest, NotFound, StaError
from api.sensorthings.model import ENTITY_SETS
from api.sensorthings.options import Query, parse_options
from api.sensorthings.paths import parse_path

log = logging.getLogger(__name__)

VERSION: Final = "v1.1"
CONFORMANCE: Final = (
    "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/resource-path/resource-path-to-entities",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/data-array/data-array",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/multi-datastream",
    "https://fraunhoferiosb.github.io/FROST-Server/extensions/GeoJSON-ResultFormat.html",
    "https://github.com/INSIDE-information-systems/SensorThingsAPI/blob/master/CSV-ResultFormat/CSV-ResultFormat.md",
)
STATEMENT_TIMEOUT: Final = "20s"
#: What the aggregate MultiDatastreams offer (docs/api.md, "Aggregates as MultiDatastreams").
AGGREGATION_SETTINGS: Final = {
    "intervals": [DURATIONS[r] for r in WIDTHS],
    "functions": list(FUNCTIONS),
    "resultOrder": list(FUNCTIONS),
    "sourceProperty": "aggregateSource",
    "daqi": {"interval": "PT1H", "functions": list(DAQI_FUNCTIONS)},
}

router = APIRouter(tags=["SensorThings API 1.1"])
CallerDep = Annotated[Caller, Depends(current_caller)]


def service_root(request: Request) -> str:
    """``<public_url>/v1.1``: every link is built from the configured public URL."""
    return f"{request.app.state.config.public_url.rstrip('/')}/{VERSION}"


@router.get(f"/{VERSION}")
async def root(request: Request) -> JSONResponse:
    """The service root: the entity sets and the server's settings."""
    base = service_root(request)
    return JSONResponse(
        {
            "value": [{"name": name, "url": f"{base}/{name}"} for name in ENTITY_SETS],
            "serverSettings": {
                "conformance": list(CONFORMANCE),
                "maxTop": MAX_TOP,
                "readOnly": True,
                "aggregation": AGGREGATION_SETTINGS,
            },
        }
    )


@router.get(f"/{VERSION}/{{path:path}}")
async def resource(path: str, request: Request, caller: CallerDep) -> Response:
    """Any resource path under the service root."""
    segments = parse_path(path)
    query = parse_options(request.query_params.multi_items())
    reader: Reader = request.app.state.reader
    base = service_root(request)
    async with reader.session(caller) as session:
        await session.conn.execute(f"SET LOCAL statement_timeout = '{STATEMENT_TIMEOUT}'")
        engine = Engine(session, base, tenancy=reader.tenancy)
        target = await engine.resolve(segments)
        if target.aggregate is not None or target.parent is not None:
            return await _aggregated(engine, target, query, request)
        if target.prop is not None:
            return await _property(engine, target)
        if target.single:
            if query.result_format is not None:
                raise BadRequest("$resultFormat applies to collections")
            row = await engine.entity(target, query)
            return JSONResponse(engine.json_entity(target.es, row, query))
        page = await engine.collection(target, query)
        return _collection(engine, target, query, page, request)


async def _property(engine: Engine, target: Target) -> Response:
    name = target.prop or ""
    row = await engine.entity(target, Query(select=(name,)))
    value = render.jsonable(row[f"p:{name}"])
    if target.raw_value:
        text = (
            json.dumps(value)
            if isinstance(value, dict | list)
            else ""
            if value is None
            else str(value)
        )
        return PlainTextResponse(text)
    return JSONResponse({name: value})


def _collection(
    engine: Engine, target: Target, query: Query, page: Any, request: Request
) -> Response:
    es = target.es
    fmt = query.result_format
    body: dict[str, Any] = {}
    if page.count is not None:
        body["@iot.count"] = page.count
        if page.count_note == "estimate":
            body["@civicpulse.countIsEstimate"] = True
        elif page.count_note == "lower bound":
            body["@civicpulse.countIsLowerBound"] = True
    if fmt == "dataArray":
        if es.name != "Observations":
            raise BadRequest("$resultFormat=dataArray applies to Observations")
        body["value"] = render.data_array(page.rows, engine.root, query.select)
    elif fmt == "CSV":
        return Response(render.csv_text(es, page.rows, query.select), media_type="text/csv")
    else:
        body["value"] = [engine.json_entity(es, r, query) for r in page.rows]
    if page.more:
        body["@iot.nextLink"] = _next_link(engine, target, query, request, len(page.rows))
    if fmt == "GeoJSON":
        collection = render.feature_collection(body["value"])
        if "@iot.nextLink" in body:
            collection["@iot.nextLink"] = body["@iot.nextLink"]
        return JSONResponse(collection, media_type="application/geo+json")
    return JSONResponse(body)


def _next_link(engine: Engine, target: Target, query: Query, request: Request, top: int) -> str:
    items = [(k, v) for k, v in request.query_params.multi_items() if k not in ("$top", "$skip")]
    items += [("$top", str(top)), ("$skip", str(query.skip + top))]
    return f"{engine.root}/{target.path}?{urlencode(items)}"


async def _aggregated(engine: Engine, target: Target, query: Query, request: Request) -> Response:
    """A MultiDatastream's Observations, or one aggregate Observation by id."""
    aggregated.check(query)
    if target.aggregate is not None:
        if query.result_format is not None:
            raise BadRequest("$resultFormat applies to collections")
        s, one = await aggregated.by_id(engine, target.aggregate)
        return JSONResponse(aggregated.entity(engine.root, s, one, query.select))
    assert target.parent is not None
    found = await aggregated.series(engine, target.parent.conds)
    if not found:
        raise NotFound(f"no such entity: {target.parent.path}")
    rows, more, count = await aggregated.observations(engine, found[0], query)
    body: dict[str, Any] = {}
    if count is not None:
        body["@iot.count"] = count
        if count >= COUNT_BOUND:
            body["@civicpulse.countIsLowerBound"] = True
    if query.result_format == "dataArray":
        body["value"] = aggregated.data_array(engine.root, found[0], rows, query.select)
    else:
        body["value"] = [aggregated.entity(engine.root, found[0], o, query.select) for o in rows]
    if more:
        body["@iot.nextLink"] = _next_link(engine, target, query, request, len(rows))
    return JSONResponse(body)


def _error(exc: StaError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


def install_error_handlers(app: FastAPI) -> None:
    """The standard's JSON errors for every failure; never a stack trace to the client."""

    async def sta_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StaError)
        return _error(exc)

    async def data_error(request: Request, exc: Exception) -> JSONResponse:
        first = str(exc).splitlines()[0] if str(exc) else "invalid value"
        return _error(BadRequest(f"invalid value in the request: {first}"))

    async def timeout(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(
            {
                "code": 503,
                "type": "error",
                "message": "the query took too long; narrow $filter or $top",
            },
            status_code=503,
        )

    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error on %s", request.url.path)
        return JSONResponse(
            {"code": 500, "type": "error", "message": "internal error"}, status_code=500
        )

    app.add_exception_handler(StaError, sta_error)
    app.add_exception_handler(psycopg.errors.QueryCanceled, timeout)
    app.add_exception_handler(psycopg.DataError, data_error)
    app.add_exception_handler(Exception, internal)
