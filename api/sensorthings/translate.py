"""``$filter``/``$orderby`` trees to parameterised SQL over an entity set (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from api.sensorthings.ast import ARITHMETIC, COMPARISONS, Binary, Call, Literal, Node, Path, Unary
from api.sensorthings.errors import BadRequest, NotSupported
from api.sensorthings.expression import parse_datetime
from api.sensorthings.ids import decode_observation_id
from api.sensorthings.model import ENTITY_SETS, EntitySet, Prop

_CAST = {
    "string": "text",
    "int": "bigint",
    "float": "double precision",
    "bool": "boolean",
    "datetime": "timestamptz",
}
_OPS = {"eq": "=", "ne": "<>", "gt": ">", "ge": ">=", "lt": "<", "le": "<="}
_ARITH = {"add": "+", "sub": "-", "mul": "*", "div": "/"}
_NUMERIC = frozenset({"int", "float"})
_NUM = r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?"
_POINT = re.compile(rf"\s*POINT\s*\(\s*({_NUM})\s+({_NUM})\s*\)\s*", re.I)
_POLYGON = re.compile(r"\s*POLYGON\s*\(\s*\((.*)\)\s*\)\s*", re.I | re.S)
MAX_POLYGON_POINTS = 500


@dataclass
class Params:
    """Named query parameters: every user value goes here, never into the SQL text."""

    values: dict[str, Any] = field(default_factory=dict)

    def add(self, value: Any, cast: str | None = None) -> sql.Composable:
        name = f"p{len(self.values)}"
        self.values[name] = value
        ph = sql.Placeholder(name)
        return sql.SQL("{}::{}").format(ph, sql.SQL(cast)) if cast else ph


@dataclass
class Typed:
    sql: sql.Composable
    type: str
    prop: Prop | None = None


class Translator:
    """Translates expressions over one entity set (alias ``e``), adding values to ``params``."""

    def __init__(self, params: Params) -> None:
        self.params = params
        self.aliases = 0

    def fresh(self) -> sql.Identifier:
        self.aliases += 1
        return sql.Identifier(f"n{self.aliases}")

    def condition(self, es: EntitySet, alias: sql.Identifier, node: Node) -> sql.Composable:
        """A boolean SQL condition; a non-boolean expression is a 400."""
        got = self.value(es, alias, node)
        if got.type != "bool":
            raise BadRequest("$filter must be a boolean expression")
        return got.sql

    def order(self, es: EntitySet, alias: sql.Identifier, node: Node) -> sql.Composable:
        """An ``$orderby`` expression (properties of this entity or to-one related ones)."""
        got = self.value(es, alias, node)
        if got.type in ("json", "geo"):
            raise BadRequest("cannot order by an object; order by one of its members")
        return got.sql

    # values -------------------------------------------------------------------------------

    def value(self, es: EntitySet, alias: sql.Identifier, node: Node) -> Typed:
        if isinstance(node, Literal):
            return self.literal(node)
        if isinstance(node, Path):
            return self.path(es, alias, node)
        if isinstance(node, Unary):
            inner = self.value(es, alias, node.operand)
            if node.op == "not":
                if inner.type != "bool":
                    raise BadRequest("'not' needs a boolean")
                return Typed(sql.SQL("(NOT {})").format(inner.sql), "bool")
            return Typed(sql.SQL("(-{})").format(self.numeric(inner)), inner.type)
        if isinstance(node, Binary):
            return self.binary(es, alias, node)
        return self.call(es, alias, node)

    def literal(self, node: Literal) -> Typed:
        if node.type == "null":
            return Typed(sql.SQL("NULL"), "null")
        if node.type == "geography":
            return Typed(sql.SQL("NULL"), "geography")
        return Typed(self.params.add(node.value, _CAST[node.type]), node.type)

    def path(self, es: EntitySet, alias: sql.Identifier, node: Path) -> Typed:
        first, rest = node.segments[0], node.segments[1:]
        if first in es.navs:
            return self.navigated(es, alias, node)
        name = "id" if first == "@iot.id" else first
        prop = es.props.get(name)
        if prop is None:
            raise BadRequest(f"{es.name} have no property {first!r}")
        if not prop.filterable:
            raise NotSupported(f"{es.name}/{name} cannot be used in $filter or $orderby")
        if rest:
            if prop.type != "json":
                raise BadRequest(f"{name} has no member {'/'.join(rest)!r}")
            member = sql.SQL("({} #>> {})").format(
                prop.expr(alias), self.params.add(list(rest), "text[]")
            )
            return Typed(member, "string")
        return Typed(prop.expr(alias), prop.type, prop)

    def navigated(self, es: EntitySet, alias: sql.Identifier, node: Path) -> Typed:
        """A to-one related property used as a value: a scalar subquery."""
        nav = es.navs[node.segments[0]]
        if nav.external:
            raise NotSupported(f"{nav.name} of {es.name} cannot be used in $filter or $orderby")
        if nav.many:
            raise BadRequest(f"{nav.name} is a collection; compare its members inside a condition")
        target = ENTITY_SETS[nav.target]
        inner = self.fresh()
        got = self.path(target, inner, Path(node.segments[1:]))
        if len(node.segments) < 2:
            raise BadRequest(f"{nav.name} is an entity, not a value")
        keys = [sql.SQL("{}.{}").format(alias, sql.Identifier(c)) for c, _ in nav.keys]
        sub = sql.SQL("(SELECT {} FROM ({}) {} WHERE {} LIMIT 1)").format(
            got.sql, target.source, inner, nav.join(inner, list(keys))
        )
        return Typed(sub, got.type, got.prop)

    def numeric(self, got: Typed) -> sql.Composable:
        if got.type in _NUMERIC or got.type == "null":
            return got.sql
        if got.type == "string" and got.prop is None:
            return sql.SQL("({})::double precision").format(got.sql)  # a JSON member
        raise BadRequest(f"arithmetic on a {got.type} value")

    def binary(self, es: EntitySet, alias: sql.Identifier, node: Binary) -> Typed:
        if node.op in ("and", "or"):
            left = self.condition(es, alias, node.left)
            right = self.condition(es, alias, node.right)
            return Typed(
                sql.SQL("({} {} {})").format(left, sql.SQL(node.op.upper()), right), "bool"
            )
        if node.op in COMPARISONS:
            return self.comparison(es, alias, node)
        assert node.op in ARITHMETIC
        lhs, rhs = self.value(es, alias, node.left), self.value(es, alias, node.right)
        a, b = self.numeric(lhs), self.numeric(rhs)
        kind = "int" if lhs.type == rhs.type == "int" else "float"
        if node.op == "mod":
            expr = sql.SQL("mod(({})::numeric, ({})::numeric)::double precision").format(a, b)
            return Typed(expr, "float")
        return Typed(sql.SQL("({} {} {})").format(a, sql.SQL(_ARITH[node.op]), b), kind)

    def comparison(self, es: EntitySet, alias: sql.Identifier, node: Binary) -> Typed:
        navs = _nav_heads(es, node)
        if navs:
            if len(navs) > 1:
                raise NotSupported("a comparison across two different related entities")
            return self.semi_join(es, alias, navs.pop(), node)
        special = self.observation_id(es, alias, node)
        if special is not None:
            return special
        left, right = self.value(es, alias, node.left), self.value(es, alias, node.right)
        if "null" in (left.type, right.type):
            other = right if left.type == "null" else left
            test = "IS NULL" if node.op == "eq" else "IS NOT NULL" if node.op == "ne" else None
            if test is None:
                raise BadRequest(f"{node.op} null is not a comparison")
            return Typed(sql.SQL("({} {})").format(other.sql, sql.SQL(test)), "bool")
        left, right = self.coerce(left, right), self.coerce(right, left)
        if left.type in ("json", "geo", "interval", "geography"):
            raise BadRequest(f"cannot compare a {left.type} value")
        return Typed(
            sql.SQL("({} {} {})").format(left.sql, sql.SQL(_OPS[node.op]), right.sql), "bool"
        )

    def coerce(self, got: Typed, other: Typed) -> Typed:
        """Make ``got`` comparable with ``other``: a string literal read as a time, etc."""
        if got.type == other.type or (got.type in _NUMERIC and other.type in _NUMERIC):
            return got
        if other.type in ("datetime", "date", "time") and got.type == "string" and got.prop is None:
            cast = {"datetime": "timestamptz", "date": "date", "time": "time"}[other.type]
            return Typed(sql.SQL("({})::{}").format(got.sql, sql.SQL(cast)), other.type)
        if got.type == "string" and got.prop is None and other.type in _NUMERIC:
            return Typed(sql.SQL("({})::double precision").format(got.sql), "float")
        if got.type == "string" and other.type in _NUMERIC and got.prop is not None:
            raise BadRequest("cannot compare a text property with a number")
        if got.type in _NUMERIC and other.type == "string" and other.prop is None:
            return got
        if got.type in ("datetime", "date", "time") or other.type in ("datetime", "date", "time"):
            raise BadRequest(f"cannot compare a {got.type} with a {other.type}")
        if got.type != other.type and "string" in (got.type, other.type):
            raise BadRequest(f"cannot compare a {got.type} with a {other.type}")
        return got

    def observation_id(self, es: EntitySet, alias: sql.Identifier, node: Binary) -> Typed | None:
        """``id eq N`` on Observations: the id's datastream and second (a primary-key probe)."""
        if es.name != "Observations" or node.op != "eq":
            return None
        sides = (node.left, node.right)
        ids = [s for s in sides if isinstance(s, Path) and s.segments in (("id",), ("@iot.id",))]
        nums = [s for s in sides if isinstance(s, Literal) and s.type == "int"]
        if not ids or not nums:
            return None
        return Typed(self.observation_match(alias, int(nums[0].value)), "bool")  # type: ignore[arg-type]

    def observation_match(self, alias: sql.Identifier, oid: int) -> sql.Composable:
        decoded = decode_observation_id(oid)
        if decoded is None:
            return sql.SQL("false")
        start, stop, number = decoded
        return sql.SQL("({a}.number = {n} AND {a}.time >= {s} AND {a}.time < {t})").format(
            a=alias,
            n=self.params.add(number, "integer"),
            s=self.params.add(start, "timestamptz"),
            t=self.params.add(stop, "timestamptz"),
        )

    def semi_join(self, es: EntitySet, alias: sql.Identifier, head: str, node: Node) -> Typed:
        """A condition on related entities: ``(keys) IN (SELECT … WHERE cond)`` or EXISTS."""
        nav = es.navs[head]
        if nav.external:
            raise NotSupported(f"{nav.name} of {es.name} cannot be used in $filter")
        target = ENTITY_SETS[nav.target]
        inner = self.fresh()
        cond = self.condition(target, inner, _strip(node, head))
        if nav.predicate is None:
            mine = sql.SQL(", ").join(
                sql.SQL("{}.{}").format(alias, sql.Identifier(c)) for c, _ in nav.keys
            )
            theirs = sql.SQL(", ").join(
                sql.SQL("{}.{}").format(inner, sql.Identifier(c)) for _, c in nav.keys
            )
            expr = sql.SQL("(({}) IN (SELECT {} FROM ({}) {} WHERE {}))").format(
                mine, theirs, target.source, inner, cond
            )
        else:
            keys: list[sql.Composable] = [
                sql.SQL("{}.{}").format(alias, sql.Identifier(c)) for c, _ in nav.keys
            ]
            expr = sql.SQL("EXISTS (SELECT 1 FROM ({}) {} WHERE {} AND {})").format(
                target.source, inner, nav.join(inner, keys), cond
            )
        return Typed(expr, "bool")

    # functions ----------------------------------------------------------------------------

    def call(self, es: EntitySet, alias: sql.Identifier, node: Call) -> Typed:
        name = node.name
        if name in ("geo.distance", "st_within"):
            return self.geo(es, alias, node)
        args = [self.value(es, alias, a) for a in node.args]
        a = [x.sql for x in args]

        def text(i: int) -> sql.Composable:
            if args[i].type not in ("string", "null"):
                raise BadRequest(f"{name}() needs text, not {args[i].type}")
            return a[i]

        def when(i: int) -> sql.Composable:
            got = args[i]
            if got.type == "string" and got.prop is None and isinstance(node.args[i], Literal):
                parse_datetime(str(node.args[i].value))  # type: ignore[union-attr]
                return sql.SQL("({})::timestamptz").format(got.sql)
            if got.type != "datetime":
                raise BadRequest(f"{name}() needs a date-time, not {got.type}")
            return sql.SQL("({} AT TIME ZONE 'UTC')").format(got.sql)

        fmt = sql.SQL
        if name in ("substringof", "contains"):
            hay, needle = (text(1), text(0)) if name == "substringof" else (text(0), text(1))
            return Typed(fmt("(strpos({}, {}) > 0)").format(hay, needle), "bool")
        if name == "startswith":
            return Typed(
                fmt("(left({0}, char_length({1})) = {1})").format(text(0), text(1)), "bool"
            )
        if name == "endswith":
            return Typed(
                fmt("(right({0}, char_length({1})) = {1})").format(text(0), text(1)), "bool"
            )
        if name == "length":
            return Typed(fmt("char_length({})").format(text(0)), "int")
        if name == "indexof":
            return Typed(fmt("(strpos({}, {}) - 1)").format(text(0), text(1)), "int")
        if name == "substring":
            start = self.integer(args[1])
            if len(args) == 3:
                return Typed(
                    fmt("substr({}, ({}) + 1, {})").format(text(0), start, self.integer(args[2])),
                    "string",
                )
            return Typed(fmt("substr({}, ({}) + 1)").format(text(0), start), "string")
        if name in ("tolower", "toupper", "trim"):
            fn = {"tolower": "lower", "toupper": "upper", "trim": "btrim"}[name]
            return Typed(fmt("{}({})").format(fmt(fn), text(0)), "string")
        if name == "concat":
            return Typed(fmt("({} || {})").format(text(0), text(1)), "string")
        if name in ("year", "month", "day", "hour", "minute"):
            return Typed(fmt("extract({} FROM {})::integer").format(fmt(name), when(0)), "int")
        if name == "second":
            return Typed(fmt("floor(extract(second FROM {}))::integer").format(when(0)), "int")
        if name == "fractionalseconds":
            return Typed(
                fmt(
                    "(extract(second FROM {0}) - floor(extract(second FROM {0})))::double precision"
                ).format(when(0)),
                "float",
            )
        if name == "date":
            return Typed(fmt("({})::date").format(when(0)), "date")
        if name == "time":
            return Typed(fmt("({})::time").format(when(0)), "time")
        if name == "totaloffsetminutes":
            when(0)
            return Typed(fmt("0"), "int")
        if name == "now":
            return Typed(fmt("now()"), "datetime")
        if name in ("mindatetime", "maxdatetime"):
            if args:
                if args[0].type != "datetime":
                    raise BadRequest(f"{name}() needs a date-time")
                return args[0]
            edge = "-infinity" if name == "mindatetime" else "infinity"
            return Typed(fmt("{}::timestamptz").format(sql.Literal(edge)), "datetime")
        if name in ("round", "floor", "ceiling"):
            fn = {"round": "round", "floor": "floor", "ceiling": "ceil"}[name]
            return Typed(
                fmt("{}(({})::double precision)").format(fmt(fn), self.numeric(args[0])), "float"
            )
        raise NotSupported(f"function {name}() is not supported")  # pragma: no cover

    def integer(self, got: Typed) -> sql.Composable:
        if got.type != "int":
            raise BadRequest("an integer is needed here")
        return sql.SQL("({})::integer").format(got.sql)

    def geo(self, es: EntitySet, alias: sql.Identifier, node: Call) -> Typed:
        props = [a for a in node.args if isinstance(a, Path)]
        shapes = [a for a in node.args if isinstance(a, Literal) and a.type == "geography"]
        if len(props) != 1 or len(shapes) != 1:
            raise BadRequest(f"{node.name}() needs a location property and a geography'…' literal")
        path = props[0]
        if path.segments[0] in es.navs:
            raise NotSupported(
                f"{node.name}() on a related entity's location; filter that set instead"
            )
        prop = es.props.get(path.segments[0])
        if prop is None or prop.type != "geo" or prop.lat is None or prop.lon is None:
            raise BadRequest(f"{node.name}() needs a location property of {es.name}")
        lat = sql.SQL("{}.{}").format(alias, sql.Identifier(prop.lat))
        lon = sql.SQL("{}.{}").format(alias, sql.Identifier(prop.lon))
        wkt = str(shapes[0].value)
        if node.name == "geo.distance":
            m = _POINT.fullmatch(wkt)
            if m is None:
                raise BadRequest("geo.distance() takes geography'POINT(lon lat)'")
            x = self.params.add(float(m.group(1)), "double precision")
            y = self.params.add(float(m.group(2)), "double precision")
            return Typed(
                sql.SQL("sqrt(power({} - {}, 2) + power({} - {}, 2))").format(lon, x, lat, y),
                "float",
            )
        return Typed(self.within(lat, lon, _polygon(wkt)), "bool")

    def within(
        self, lat: sql.Composable, lon: sql.Composable, ring: list[tuple[float, float]]
    ) -> sql.Composable:
        """Ray casting: odd crossings of a ray from the point = inside the polygon's ring."""
        crossings: list[sql.Composable] = []
        for (xi, yi), (xj, yj) in zip(ring, ring[1:] + ring[:1], strict=True):
            if yi == yj:
                continue
            p = self.params.add
            crossings.append(
                sql.SQL(
                    "(CASE WHEN (({yi} > {y}) <> ({yj} > {y}))"
                    " AND {x} < ({xj} - {xi}) * ({y} - {yi}) / ({yj} - {yi}) + {xi}"
                    " THEN 1 ELSE 0 END)"
                ).format(
                    x=lon,
                    y=lat,
                    xi=p(xi, "double precision"),
                    yi=p(yi, "double precision"),
                    xj=p(xj, "double precision"),
                    yj=p(yj, "double precision"),
                )
            )
        if not crossings:
            return sql.SQL("false")
        return sql.SQL("(mod({}, 2) = 1)").format(sql.SQL(" + ").join(crossings))


def _polygon(wkt: str) -> list[tuple[float, float]]:
    m = _POLYGON.fullmatch(wkt)
    if m is None:
        raise BadRequest("st_within() takes geography'POLYGON((lon lat, …))'")
    ring: list[tuple[float, float]] = []
    for pair in m.group(1).split(","):
        xy = pair.split()
        if len(xy) != 2 or not all(re.fullmatch(_NUM, v) for v in xy):
            raise BadRequest(f"bad polygon point {pair.strip()!r}")
        ring.append((float(xy[0]), float(xy[1])))
    if len(ring) < 3 or len(ring) > MAX_POLYGON_POINTS:
        raise BadRequest(f"a polygon needs 3 to {MAX_POLYGON_POINTS} points")
    if ring[0] == ring[-1]:
        ring.pop()
    return ring


def _paths(node: Node) -> list[Path]:
    if isinstance(node, Path):
        return [node]
    if isinstance(node, Unary):
        return _paths(node.operand)
    if isinstance(node, Binary):
        return _paths(node.left) + _paths(node.right)
    if isinstance(node, Call):
        return [p for a in node.args for p in _paths(a)]
    return []


def _nav_heads(es: EntitySet, node: Node) -> set[str]:
    return {p.segments[0] for p in _paths(node) if p.segments[0] in es.navs}


def _strip(node: Node, head: str) -> Node:
    """``node`` seen from the related entity ``head``: ``Thing/name`` becomes ``name``."""
    if isinstance(node, Path):
        if node.segments[0] != head or len(node.segments) < 2:
            raise BadRequest(f"{'/'.join(node.segments)} must name a property of {head}")
        return Path(node.segments[1:])
    if isinstance(node, Unary):
        return Unary(node.op, _strip(node.operand, head))
    if isinstance(node, Binary):
        return Binary(node.op, _strip(node.left, head), _strip(node.right, head))
    if isinstance(node, Call):
        return Call(node.name, tuple(_strip(a, head) for a in node.args))
    return node
