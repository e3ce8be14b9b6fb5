"""Query options (``$filter``, ``$select``, ``$expand``, ``$orderby``, ``$top``…) parsed (pure)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Final

from api.sensorthings.ast import Node
from api.sensorthings.errors import BadRequest, NotSupported
from api.sensorthings.expression import parse_expression, parse_orderby

RESULT_FORMATS: Final = {"dataarray": "dataArray", "csv": "CSV", "geojson": "GeoJSON"}
UNSUPPORTED_OPTIONS: Final = frozenset({"$search", "$apply", "$compute", "$levels", "$format"})
OPTIONS: Final = frozenset(
    {"$filter", "$select", "$expand", "$orderby", "$top", "$skip", "$count", "$resultFormat"}
)
MAX_SKIP: Final = 10**12


@dataclass(frozen=True, slots=True)
class Query:
    """The options of one request, or of one ``$expand`` item."""

    filter: Node | None = None
    select: tuple[str, ...] | None = None
    expand: tuple[Expand, ...] = ()
    orderby: tuple[tuple[Node, bool], ...] = ()
    top: int | None = None
    skip: int = 0
    count: bool = False
    result_format: str | None = None


@dataclass(frozen=True, slots=True)
class Expand:
    """One ``$expand`` item: a navigation property and the options of what it expands to."""

    name: str
    query: Query = field(default_factory=Query)


def split_top_level(text: str, sep: str) -> list[str]:
    """``text`` split on ``sep`` outside parentheses and quoted strings."""
    parts: list[str] = []
    depth = 0
    quoted = False
    start = 0
    for i, ch in enumerate(text):
        if ch == "'":
            quoted = not quoted
        elif quoted:
            continue
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise BadRequest(f"unbalanced ')' in {text!r}")
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0 or quoted:
        raise BadRequest(f"unbalanced parentheses or quotes in {text!r}")
    parts.append(text[start:])
    return parts


def _integer(name: str, text: str, limit: int) -> int:
    if not re.fullmatch(r"\s*\d{1,19}\s*", text):
        raise BadRequest(f"{name} must be a non-negative integer, not {text!r}")
    value = int(text)
    if value > limit:
        raise BadRequest(f"{name} must be at most {limit}")
    return value


_NAME = re.compile(r"[A-Za-z@][A-Za-z0-9_.@]*")


def _select(text: str) -> tuple[str, ...]:
    names: list[str] = []
    for part in text.split(","):
        name = part.strip()
        if name.startswith("distinct:"):
            raise NotSupported("$select=distinct: is not supported")
        if not _NAME.fullmatch(name):
            raise BadRequest(f"bad $select item {name!r}")
        names.append("id" if name == "@iot.id" else name)
    return tuple(dict.fromkeys(names))


def _expand_item(text: str) -> Expand:
    text = text.strip()
    m = re.fullmatch(
        r"([A-Za-z][A-Za-z0-9_]*(?:/[A-Za-z][A-Za-z0-9_]*)*)\s*(?:\((.*)\))?", text, re.S
    )
    if m is None:
        raise BadRequest(f"bad $expand item {text!r}")
    path = m.group(1).split("/")
    inner = m.group(2)
    pairs: list[tuple[str, str]] = []
    if inner is not None and inner.strip():
        for option in split_top_level(inner, ";"):
            key, eq, value = option.partition("=")
            if not eq:
                raise BadRequest(f"bad option {option!r} in $expand")
            pairs.append((key.strip(), value))
    query = parse_options(pairs, nested=True)
    node = Expand(path[-1], query)
    for name in reversed(path[:-1]):
        node = Expand(name, Query(expand=(node,)))
    return node


def merge_expands(items: Iterable[Expand]) -> tuple[Expand, ...]:
    """``Datastreams/Thing,Datastreams/Sensor``: one ``Datastreams`` with both inside."""
    merged: dict[str, Expand] = {}
    for item in items:
        seen = merged.get(item.name)
        if seen is None:
            merged[item.name] = item
        else:
            inner = merge_expands(seen.query.expand + item.query.expand)
            base = seen.query if seen.query != Query(expand=seen.query.expand) else item.query
            merged[item.name] = Expand(item.name, replace(base, expand=inner))
    return tuple(merged.values())


def parse_options(pairs: Iterable[tuple[str, str]], *, nested: bool = False) -> Query:
    """The query of ``pairs`` (name, decoded value); unknown ``$`` options are a 400."""
    seen: dict[str, str] = {}
    for key, value in pairs:
        if not key.startswith("$"):
            continue  # custom parameters are ignored, as OData allows
        if key in UNSUPPORTED_OPTIONS:
            raise NotSupported(f"{key} is not supported")
        if key not in OPTIONS:
            raise BadRequest(f"unknown query option {key}")
        if key in seen:
            raise BadRequest(f"{key} given twice")
        seen[key] = value
    q = Query()
    if "$filter" in seen:
        q = replace(q, filter=parse_expression(seen["$filter"]))
    if "$select" in seen:
        q = replace(q, select=_select(seen["$select"]))
    if "$expand" in seen:
        items = [_expand_item(t) for t in split_top_level(seen["$expand"], ",")]
        q = replace(q, expand=merge_expands(items))
    if "$orderby" in seen:
        q = replace(q, orderby=parse_orderby(seen["$orderby"]))
    if "$top" in seen:
        q = replace(q, top=_integer("$top", seen["$top"], 10**18))
    if "$skip" in seen:
        q = replace(q, skip=_integer("$skip", seen["$skip"], MAX_SKIP))
    if "$count" in seen:
        if seen["$count"] not in ("true", "false"):
            raise BadRequest(f"$count must be true or false, not {seen['$count']!r}")
        q = replace(q, count=seen["$count"] == "true")
    if "$resultFormat" in seen:
        if nested:
            raise BadRequest("$resultFormat cannot be used inside $expand")
        fmt = RESULT_FORMATS.get(seen["$resultFormat"].lower())
        if fmt is None:
            raise BadRequest(f"unknown $resultFormat {seen['$resultFormat']!r}")
        q = replace(q, result_format=fmt)
    return q
