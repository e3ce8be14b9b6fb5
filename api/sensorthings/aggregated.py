"""A MultiDatastream's Observations: rollup intervals and the hourly DAQI, from api/opendata."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from psycopg import sql
from psycopg.types.range import Range

from api.opendata.aggregates import WIDTHS, AggregateQuery, count_at_most, fetch_aggregates
from api.opendata.daqi import daqi_hourly
from api.sensorthings.ast import Binary, Literal, Node, Path
from api.sensorthings.engine import COUNT_BOUND, Engine, _top
from api.sensorthings.errors import BadRequest, NotFound, NotSupported
from api.sensorthings.expression import parse_datetime
from api.sensorthings.ids import (
    DAQI_CODE,
    EPOCH,
    RESOLUTION_CODES,
    aggregate_id,
    decode_aggregate_id,
    site_hash,
)
from api.sensorthings.model import MULTIDATASTREAMS_SQL, _mds_time
from api.sensorthings.options import Query
from api.sensorthings.render import jsonable

HOUR: Final = timedelta(hours=1)
FAR: Final = datetime(2200, 1, 1, tzinfo=UTC)
MAX_DAQI_SPAN: Final = timedelta(days=366)
COMPONENTS: Final = ("id", "phenomenonTime", "resultTime", "result")
TIME_PROPS: Final = frozenset({"phenomenonTime", "resultTime", "id"})
_E: Final = sql.Identifier("e")


@dataclass(frozen=True, slots=True)
class Series:
    """One MultiDatastream as its Observations need it."""

    id: int
    sensor_id: str
    metric: str
    council: str
    site: str | None
    code: int
    resolution: str
    span: Range[datetime] | None
    number: int | None

    @property
    def width(self) -> timedelta:
        return HOUR if self.code == DAQI_CODE else WIDTHS[self.resolution]


async def series(engine: Engine, conds: list[sql.Composable]) -> list[Series]:
    """The MultiDatastreams matching ``conds`` (over alias ``e``), with their numbers."""
    query = sql.SQL(
        "SELECT e.id, e.sensor_id, e.metric, e.council, e.site, e.code, e.resolution,"
        " {span} AS span, (SELECT n.number FROM datastream_numbers n"
        " WHERE n.sensor_id = e.sensor_id AND n.metric = e.metric) AS number"
        " FROM ({src}) e WHERE {where} ORDER BY e.id"
    ).format(
        span=_mds_time(_E),
        src=MULTIDATASTREAMS_SQL,
        where=sql.SQL(" AND ").join(conds) if conds else sql.SQL("true"),
    )
    return [Series(**row) for row in await engine.fetch(query)]


def _when(node: Node) -> datetime:
    if isinstance(node, Literal) and isinstance(node.value, datetime):
        return node.value
    if isinstance(node, Literal) and node.type == "string":
        return parse_datetime(str(node.value))
    raise NotSupported("a MultiDatastream's Observations compare phenomenonTime with a time only")


def bounds(node: Node | None, width: timedelta) -> tuple[datetime, datetime]:
    """``[first, last)`` interval starts that ``$filter`` admits (intervals are ``[s, s+w)``).

    ``ge``/``gt`` bound the start, ``lt``/``le`` the end, ``eq`` names the start; ``and``
    combines. Anything else is a 501: these Observations are not rows of SQL.
    """
    lo, hi = EPOCH, FAR
    if node is None:
        return lo, hi
    if isinstance(node, Binary) and node.op == "and":
        a, b = bounds(node.left, width), bounds(node.right, width)
        return max(a[0], b[0]), min(a[1], b[1])
    flip = {"gt": "lt", "ge": "le", "lt": "gt", "le": "ge", "eq": "eq"}
    if isinstance(node, Binary) and node.op in flip:
        op, prop, value = node.op, node.left, node.right
        if isinstance(value, Path):
            op, prop, value = flip[op], node.right, node.left
        if isinstance(prop, Path) and prop.segments == ("phenomenonTime",):
            t = _when(value)
            tick = timedelta(microseconds=1)
            if op == "ge":
                return max(lo, t), hi
            if op == "gt":
                return max(lo, t + tick), hi
            if op in ("lt", "le"):
                return lo, min(hi, t - width + tick)
            return max(lo, t), min(hi, t + tick)
    raise NotSupported(
        "on a MultiDatastream's Observations, $filter compares phenomenonTime with times"
        " (eq, gt, ge, lt, le) joined by 'and'"
    )


def descending(query: Query) -> bool:
    """``$orderby`` on time (phenomenonTime, resultTime, id: all follow the interval)."""
    for node, desc in query.orderby[:1]:
        if not (isinstance(node, Path) and len(node.segments) == 1):
            break
        if node.segments[0] in TIME_PROPS:
            return desc
    if query.orderby:
        raise NotSupported("a MultiDatastream's Observations are ordered by phenomenonTime only")
    return False


def check(query: Query) -> None:
    """Options these Observations support; others are 400 (unknown) or 501 (not served)."""
    if query.expand:
        raise NotSupported("$expand on a MultiDatastream's Observations is not supported")
    for name in query.select or ():
        if name not in COMPONENTS:
            raise BadRequest(f"a MultiDatastream's Observation has no property {name!r}")
    if query.result_format not in (None, "dataArray"):
        raise NotSupported(f"$resultFormat={query.result_format} for MultiDatastream Observations")


@dataclass(frozen=True, slots=True)
class Interval:
    """One aggregate Observation before rendering."""

    id: int
    start: datetime
    end: datetime
    result: list[Any]


def _index(s: Series, start: datetime) -> int:
    return (start - EPOCH) // s.width


async def _rollups(
    engine: Engine, s: Series, start: datetime, end: datetime, desc: bool, top: int, skip: int
) -> list[Interval]:
    if s.number is None:
        return []
    q = AggregateQuery(
        s.resolution,  # type: ignore[arg-type]
        max(start, EPOCH),
        end,
        sensor=s.sensor_id,
        metric=s.metric,
        descending=desc,
    )
    rows = await fetch_aggregates(engine.session.conn, q, limit=top, offset=skip)
    code = RESOLUTION_CODES[s.resolution]
    return [
        Interval(aggregate_id(code, _index(s, r.start), s.number), r.start, r.end, r.result)
        for r in rows
    ]


async def _daqi(engine: Engine, s: Series, start: datetime, end: datetime) -> list[Interval]:
    if s.span is None or s.span.lower is None or s.span.upper is None or s.site is None:
        return []
    start, end = max(start, s.span.lower), min(end, s.span.upper)
    if end - start > MAX_DAQI_SPAN:
        raise BadRequest(
            f"the DAQI is computed per request: filter phenomenonTime to at most"
            f" {MAX_DAQI_SPAN.days} days"
        )
    key = site_hash(s.council, s.site)
    hours = await daqi_hourly(engine.session.conn, s.council, s.site, start, end)
    return [
        Interval(aggregate_id(DAQI_CODE, _index(s, h), key), h, e, [d.index, d.band])
        for h, e, d in hours
    ]


async def observations(
    engine: Engine, s: Series, query: Query
) -> tuple[list[Interval], bool, int | None]:
    """One page of ``s``'s Observations, whether more follow, and ``$count`` if asked."""
    check(query)
    top, desc = _top(query), descending(query)
    start, end = bounds(query.filter, s.width)
    if s.code == DAQI_CODE:
        every = await _daqi(engine, s, start, end)
        if desc:
            every.reverse()
        got = every[query.skip : query.skip + top + 1]
        count = len(every) if query.count else None
    else:
        got = await _rollups(engine, s, start, end, desc, top + 1, query.skip)
        count = None
        if query.count:
            q = AggregateQuery(
                s.resolution,  # type: ignore[arg-type]
                max(start, EPOCH),
                end,
                sensor=s.sensor_id,
                metric=s.metric,
            )
            count = await count_at_most(engine.session.conn, q, COUNT_BOUND)
    engine.session.count(min(len(got), top), "MultiDatastreams/Observations")
    return got[:top], len(got) > top, count


async def by_id(engine: Engine, oid: int) -> tuple[Series, Interval]:
    """The aggregate Observation ``oid`` (404 if the caller cannot see it)."""
    parts = decode_aggregate_id(oid)
    if parts is None:
        raise NotFound(f"no such entity: Observations({oid})")
    if parts.code == DAQI_CODE:
        found = [
            s
            for s in await series(engine, [sql.SQL("e.code = 3")])
            if s.site is not None and site_hash(s.council, s.site) == parts.key
        ]
    else:
        resolution = next(r for r, c in RESOLUTION_CODES.items() if c == parts.code)
        found = await series(
            engine,
            [
                sql.SQL(
                    "(e.sensor_id, e.metric) IN (SELECT n.sensor_id, n.metric"
                    " FROM datastream_numbers n WHERE n.number = {})"
                ).format(engine.params.add(parts.key, "integer")),
                sql.SQL("e.resolution = {}").format(engine.params.add(resolution, "text")),
            ],
        )
    for s in found:
        start = EPOCH + parts.index * s.width
        if s.code == DAQI_CODE:
            got = await _daqi(engine, s, start, start + s.width)
        else:
            got = await _rollups(engine, s, start, start + s.width, False, 1, 0)
        if got and got[0].id == oid:
            engine.session.count(1, "Observation")
            return s, got[0]
    raise NotFound(f"no such entity: Observations({oid})")


def entity(root: str, s: Series, o: Interval, select: tuple[str, ...] | None) -> dict[str, Any]:
    """One aggregate Observation as SensorThings JSON."""
    out: dict[str, Any] = {}
    if select is None or "id" in select:
        out["@iot.id"] = o.id
        out["@iot.selfLink"] = f"{root}/Observations({o.id})"
    values = {
        "phenomenonTime": f"{jsonable(o.start)}/{jsonable(o.end)}",
        "resultTime": jsonable(o.end),
        "result": o.result,
    }
    for name in ("phenomenonTime", "resultTime", "result"):
        if select is None or name in select:
            out[name] = values[name]
    if select is None:
        out["MultiDatastream@iot.navigationLink"] = f"{root}/MultiDatastreams({s.id})"
    return out


def data_array(
    root: str, s: Series, rows: list[Interval], select: tuple[str, ...] | None
) -> list[dict[str, Any]]:
    """§13.1 for a MultiDatastream: one block, components in ``$select`` order."""
    components = [c for c in (select or COMPONENTS) if c in COMPONENTS] or list(COMPONENTS)
    values = [[entity(root, s, o, None).get(_JSON_KEY.get(c, c)) for c in components] for o in rows]
    return [
        {
            "MultiDatastream@iot.navigationLink": f"{root}/MultiDatastreams({s.id})",
            "components": components,
            "dataArray@iot.count": len(values),
            "dataArray": values,
        }
    ]


_JSON_KEY: Final = {"id": "@iot.id"}
