"""Runs a SensorThings request: resolve the path, query the read contract, expand, page."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import urlencode

from psycopg import sql
from psycopg.rows import dict_row

from api.reader import ReadSession
from api.sensorthings import render
from api.sensorthings.errors import BadRequest, NotFound, NotSupported
from api.sensorthings.ids import AGGREGATE_FLAG
from api.sensorthings.model import ENTITY_SETS, EntitySet
from api.sensorthings.options import Expand, Query
from api.sensorthings.paths import Segment
from api.sensorthings.translate import Params, Translator

DEFAULT_TOP: Final = 100
MAX_TOP: Final = 10_000
MAX_ENTITIES: Final = 100_000  # result-size guard: top x nested tops, per response
COUNT_BOUND: Final = 1_000_000  # exact counts stop here (the answer says it is a lower bound)
ESTIMATE_FROM: Final = 5_000_000  # unfiltered hypertable counts: an estimate above this size
E: Final = sql.Identifier("e")


@dataclass
class Target:
    """What a path addresses: a collection, an entity, a property of it, or its raw value."""

    es: EntitySet
    conds: list[sql.Composable]
    single: bool
    prop: str | None = None
    raw_value: bool = False
    path: str = ""
    aggregate: int | None = None  # an aggregate Observation's id (api/sensorthings/aggregated)
    parent: Target | None = None  # the MultiDatastream whose Observations are addressed


@dataclass
class Page:
    """One collection's rows, whether more follow, and its count."""

    rows: list[dict[str, Any]]
    more: bool
    count: int | None = None
    count_note: str | None = None
    expanded: list[dict[str, Any]] = field(default_factory=list)


class Engine:
    """One request's queries, in the caller's read session."""

    def __init__(self, session: ReadSession, root: str, *, tenancy: bool) -> None:
        self.session = session
        self.root = root
        self.tenancy = tenancy
        self.params = Params()
        self.tr = Translator(self.params)

    async def fetch(self, query: sql.Composable) -> list[dict[str, Any]]:
        async with self.session.conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql.Composed([query]), self.params.values)
            return await cur.fetchall()

    # paths --------------------------------------------------------------------------------

    def id_condition(self, es: EntitySet, key: int) -> sql.Composable:
        if es.name == "Observations":
            return self.tr.observation_match(E, key)
        return sql.SQL("{}.id = {}").format(E, self.params.add(key, "bigint"))

    async def resolve(self, segments: Sequence[Segment]) -> Target:
        if not segments or segments[0].name not in ENTITY_SETS:
            raise NotFound(f"no entity set {segments[0].name if segments else ''!r}")
        first = segments[0]
        es = ENTITY_SETS[first.name]
        target = Target(es, [], first.key is not None, path=first.name)
        if es.name == "Observations" and first.key is not None and first.key >= AGGREGATE_FLAG:
            if len(segments) > 1:
                raise NotSupported("an aggregate Observation is addressed as a whole")
            target.aggregate = first.key
            target.path += f"({first.key})"
            return target
        if first.key is not None:
            target.conds.append(self.id_condition(es, first.key))
            target.path += f"({first.key})"
        for i, seg in enumerate(segments[1:], start=1):
            if target.prop is not None:
                if seg.name == "$value" and not target.raw_value and i == len(segments) - 1:
                    target.raw_value = True
                    continue
                raise NotFound(f"nothing at {seg.name!r} under a property")
            if not target.single:
                raise BadRequest(f"{target.path} is a collection: address one entity first")
            nav = target.es.navs.get(seg.name)
            if nav is not None and nav.external:
                if seg.key is not None or i != len(segments) - 1:
                    raise NotSupported(
                        "address an aggregate Observation as /Observations(id),"
                        f" not under {seg.name}"
                    )
                await self.keys_of(target)  # 404 if the MultiDatastream is not visible
                child = ENTITY_SETS[nav.target]
                return Target(child, [], False, path=f"{target.path}/{seg.name}", parent=target)
            if nav is not None:
                keys = await self.keys_of(target)
                child = ENTITY_SETS[nav.target]
                values = [
                    self.params.add(keys[c], "text[]" if isinstance(keys[c], list) else "text")
                    for c, _ in nav.keys
                ]
                target = Target(
                    child, [nav.join(E, values)], not nav.many, path=f"{target.path}/{seg.name}"
                )
                if seg.key is not None:
                    target.conds.append(self.id_condition(child, seg.key))
                    target.single = True
                    target.path += f"({seg.key})"
                continue
            name = "id" if seg.name == "@iot.id" else seg.name
            if name in target.es.props and seg.key is None:
                target.prop = name
                continue
            raise NotFound(f"{target.es.singular} has no property or link {seg.name!r}")
        return target

    async def keys_of(self, target: Target) -> dict[str, Any]:
        """The key columns of the one entity ``target`` addresses (404 if none)."""
        cols = target.es.key_columns()
        query = sql.SQL("SELECT {} FROM ({}) e WHERE {} LIMIT 1").format(
            sql.SQL(", ").join(sql.SQL("e.{}").format(sql.Identifier(c)) for c in cols),
            target.es.source,
            _and(target.conds),
        )
        rows = await self.fetch(query)
        if not rows:
            raise NotFound(f"no such entity: {target.path}")
        return rows[0]

    # queries ------------------------------------------------------------------------------

    def selection(self, es: EntitySet, query: Query) -> sql.Composable:
        names = render.props_of(es, query.select)
        if "id" not in names:
            names.insert(0, "id")
        cols = [
            sql.SQL("{} AS {}").format(es.props[n].expr(E), sql.Identifier(f"p:{n}")) for n in names
        ]
        cols += [
            sql.SQL("e.{} AS {}").format(sql.Identifier(c), sql.Identifier(f"k:{c}"))
            for c in es.key_columns()
        ]
        return sql.SQL(", ").join(cols)

    def page_sql(
        self,
        es: EntitySet,
        conds: list[sql.Composable],
        query: Query,
        top: int,
        *,
        count: bool = False,
    ) -> sql.Composable:
        where = list(conds)
        if query.filter is not None:
            where.append(self.tr.condition(es, E, query.filter))
        order = [
            sql.SQL("{} {}").format(self.tr.order(es, E, node), sql.SQL("DESC" if desc else "ASC"))
            for node, desc in query.orderby
        ]
        order += [sql.SQL("e.{}").format(sql.Identifier(c)) for c in es.order]
        counted = (
            sql.SQL(", count(*) OVER () AS {}").format(sql.Identifier("@count"))
            if count
            else sql.SQL("")
        )
        inner = sql.SQL("SELECT e.*{} FROM ({}) e WHERE {} ORDER BY {} LIMIT {} OFFSET {}").format(
            counted,
            es.source,
            _and(where),
            sql.SQL(", ").join(order),
            self.params.add(top + 1, "bigint"),
            self.params.add(query.skip, "bigint"),
        )
        extra = sql.SQL(", e.{}").format(sql.Identifier("@count")) if count else sql.SQL("")
        return sql.SQL("SELECT {}{} FROM ({}) e").format(self.selection(es, query), extra, inner)

    async def collection(self, target: Target, query: Query) -> Page:
        top = _top(query)
        _guard(target.es, query, top)
        rows = await self.fetch(self.page_sql(target.es, target.conds, query, top))
        page = Page(rows[:top], len(rows) > top)
        if query.count:
            page.count, page.count_note = await self.count(target, query)
        await self.expand(target.es, page.rows, query.expand)
        self.session.count(len(page.rows), target.es.name)
        return page

    async def entity(self, target: Target, query: Query) -> dict[str, Any]:
        rows = await self.fetch(self.page_sql(target.es, target.conds, query, 1))
        if not rows:
            raise NotFound(f"no such entity: {target.path}")
        await self.expand(target.es, rows[:1], query.expand)
        self.session.count(1, target.es.singular)
        return rows[0]

    async def count(self, target: Target, query: Query) -> tuple[int, str | None]:
        """Exact up to :data:`COUNT_BOUND`; an unfiltered hypertable without tenancy: estimated.

        Estimates read ``pg_class`` statistics of the whole table, which would tell a council
        about other councils' rows, so they are used only when tenancy is off.
        """
        es = target.es
        if es.big and not target.conds and query.filter is None and not self.tenancy:
            estimate = await self.estimate()
            if estimate >= ESTIMATE_FROM:
                return estimate, "estimate"
        where = list(target.conds)
        if query.filter is not None:
            where.append(self.tr.condition(es, E, query.filter))
        rows = await self.fetch(
            sql.SQL("SELECT count(*) AS n FROM (SELECT 1 FROM ({}) e WHERE {} LIMIT {}) c").format(
                es.source, _and(where), self.params.add(COUNT_BOUND, "bigint")
            )
        )
        n = int(rows[0]["n"])
        return n, ("lower bound" if n >= COUNT_BOUND else None)

    async def estimate(self) -> int:
        """Planner statistics of the whole ``readings`` table (TimescaleDB: its own estimate)."""
        ext = await self.fetch(
            sql.SQL("SELECT count(*) AS n FROM pg_extension WHERE extname = 'timescaledb'")
        )
        if ext[0]["n"]:
            rows = await self.fetch(sql.SQL("SELECT approximate_row_count('readings') AS n"))
        else:
            rows = await self.fetch(
                sql.SQL(
                    "SELECT reltuples::bigint AS n FROM pg_class"
                    " WHERE oid = to_regclass('readings')"
                )
            )
        return int(rows[0]["n"] or 0) if rows else 0

    async def expand(
        self, es: EntitySet, rows: list[dict[str, Any]], items: Sequence[Expand]
    ) -> None:
        """Fill ``row["x:<nav>"]`` for each item: one LATERAL query per item for all rows."""
        for item in items:
            nav = es.navs.get(item.name)
            if nav is None:
                raise BadRequest(f"{es.singular} has no navigation property {item.name!r}")
            if nav.external:
                raise NotSupported(
                    f"$expand={item.name} on {es.name}: follow {item.name}@iot.navigationLink"
                )
            if not rows:
                continue
            child = ENTITY_SETS[nav.target]
            top = _top(item.query) if nav.many else 1
            cols = [c for c, _ in nav.keys]
            values = sql.SQL(", ").join(
                sql.SQL("({}, {}::int)").format(
                    sql.SQL(", ").join(
                        self.params.add(
                            row[f"k:{c}"], "text[]" if isinstance(row[f"k:{c}"], list) else "text"
                        )
                        for c in cols
                    ),
                    sql.Literal(i),
                )
                for i, row in enumerate(rows)
            )
            names = [sql.Identifier(f"v{j}") for j in range(len(cols))]
            keys: list[sql.Composable] = [sql.SQL("k.{}").format(n) for n in names]
            page = self.page_sql(
                child, [nav.join(E, keys)], item.query, top, count=item.query.count and nav.many
            )
            query = sql.SQL(
                "SELECT k.ord AS {}, c.* FROM (VALUES {}) AS k({}, ord) CROSS JOIN LATERAL ({}) c"
            ).format(sql.Identifier("@ord"), values, sql.SQL(", ").join(names), page)
            found = await self.fetch(query)
            await self.expand(child, found, item.query.expand)
            groups: dict[int, list[dict[str, Any]]] = {}
            for r in found:
                groups.setdefault(r["@ord"], []).append(r)
            self.session.count(len(found), f"{es.name}/{item.name}")
            for i, row in enumerate(rows):
                got = groups.get(i, [])
                row[f"x:{item.name}"] = (nav, child, item.query, got[:top], len(got) > top)

    # output -------------------------------------------------------------------------------

    def json_entity(self, es: EntitySet, row: Mapping[str, Any], query: Query) -> dict[str, Any]:
        expanded: dict[str, Any] = {}
        for item in query.expand:
            nav, child, sub, got, more = row[f"x:{item.name}"]
            if not nav.many:
                if got:
                    expanded[item.name] = {item.name: self.json_entity(child, got[0], sub)}
                continue
            block: dict[str, Any] = {}
            if sub.count:
                block[f"{item.name}@iot.count"] = int(got[0]["@count"]) if got else 0
            block[item.name] = [self.json_entity(child, r, sub) for r in got]
            if more:
                link = f"{self.root}/{es.name}({row['p:id']})/{item.name}"
                block[f"{item.name}@iot.nextLink"] = (
                    link + "?" + urlencode({"$top": _top(sub), "$skip": sub.skip + _top(sub)})
                )
            expanded[item.name] = block
        out = render.entity(es, row, self.root, query.select, expanded)
        props = out.get("properties") if es.name == "MultiDatastreams" else None
        source = props.get("aggregateFor") if isinstance(props, dict) else None
        if isinstance(source, str):
            out["properties"]["aggregateSource"] = self.root + source
        return out


def _and(conds: Sequence[sql.Composable]) -> sql.Composable:
    return sql.SQL(" AND ").join(conds) if conds else sql.SQL("true")


def _top(query: Query) -> int:
    """``$top`` (default :data:`DEFAULT_TOP`), at most :data:`MAX_TOP` (server-driven paging)."""
    return DEFAULT_TOP if query.top is None else min(query.top, MAX_TOP)


def _guard(es: EntitySet, query: Query, top: int) -> None:
    """Refuse expansions whose worst case exceeds :data:`MAX_ENTITIES` entities.

    A to-one navigation (``Thing``, ``Sensor`` …) adds one entity per parent, whatever its
    ``$top``; only to-many ones multiply by their ``$top``.
    """

    def size(es: EntitySet, q: Query, n: int) -> int:
        inner = 0
        for item in q.expand:
            nav = es.navs.get(item.name)
            if nav is None:
                continue  # the expansion itself answers 400
            child = ENTITY_SETS[nav.target]
            inner += size(child, item.query, _top(item.query) if nav.many else 1)
        return n * (1 + inner)

    if size(es, query, top) > MAX_ENTITIES:
        raise BadRequest(
            f"the request could return more than {MAX_ENTITIES} entities; lower $top in $expand"
        )
