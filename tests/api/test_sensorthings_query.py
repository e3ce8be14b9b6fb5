"""Pure tests of the SensorThings query options: parser, ids, SQL translation (ring 1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from psycopg import sql

from api.sensorthings.ast import Binary, Call, Literal, Path, Unary
from api.sensorthings.errors import BadRequest, NotSupported
from api.sensorthings.expression import parse_expression, parse_orderby
from api.sensorthings.ids import (
    aggregate_id,
    decode_aggregate_id,
    decode_observation_id,
    entity_id,
    observation_id,
    site_hash,
)
from api.sensorthings.model import ENTITY_SETS
from api.sensorthings.options import parse_options, split_top_level
from api.sensorthings.paths import Segment, parse_path
from api.sensorthings.translate import Params, Translator


def test_precedence_and_or_not_comparison_arithmetic() -> None:
    tree = parse_expression("not a eq 1 or b add 2 mul 3 gt 4 and c ne 'x'")
    assert tree == Binary(
        "or",
        Unary("not", Binary("eq", Path(("a",)), Literal(1, "int"))),
        Binary(
            "and",
            Binary(
                "gt",
                Binary("add", Path(("b",)), Binary("mul", Literal(2, "int"), Literal(3, "int"))),
                Literal(4, "int"),
            ),
            Binary("ne", Path(("c",)), Literal("x", "string")),
        ),
    )


def test_literals_quotes_times_and_paths() -> None:
    assert parse_expression("name eq 'it''s'").right == Literal("it's", "string")  # type: ignore[union-attr]
    when = parse_expression("phenomenonTime ge 2026-03-02T10:00:00.5+01:00").right  # type: ignore[union-attr]
    assert when == Literal(datetime(2026, 3, 2, 9, 0, 0, 500000, tzinfo=UTC), "datetime")
    assert parse_expression("Datastream/Thing/name eq 'a'").left == Path(
        ("Datastream", "Thing", "name")
    )  # type: ignore[union-attr]
    assert parse_expression("result eq -1.5e2").right == Literal(-150.0, "float")  # type: ignore[union-attr]
    assert parse_expression("x eq null").right == Literal(None, "null")  # type: ignore[union-attr]


def test_functions() -> None:
    tree = parse_expression(
        "substringof('abd', name) and geo.distance(location, geography'POINT(1 2)') lt 3"
    )
    assert isinstance(tree, Binary) and tree.left == Call(
        "substringof", (Literal("abd", "string"), Path(("name",)))
    )
    with pytest.raises(BadRequest):
        parse_expression("nosuch(name)")
    with pytest.raises(BadRequest):
        parse_expression("year(a, b) eq 1")
    with pytest.raises(NotSupported):
        parse_expression("st_intersects(location, geography'POINT(1 2)')")


@pytest.mark.parametrize(
    "text",
    [
        "name eq",
        "(name eq 'a'",
        "name eq 'a')",
        "name eq 'open",
        "a eq b eq c",
        "name # 1",
        "",
        "eq 1",
        "phenomenonTime gt 2026-13-45T00:00:00Z",
        "phenomenonTime gt 2026-03-02T00:00:00",
        "a eq 99999999999999999999",
    ],
)
def test_bad_syntax_is_a_400(text: str) -> None:
    with pytest.raises(BadRequest):
        parse_expression(text)


def test_deep_nesting_is_refused() -> None:
    with pytest.raises(BadRequest):
        parse_expression("(" * 200 + "a eq 1" + ")" * 200)


def test_orderby() -> None:
    assert parse_orderby("name desc, id") == ((Path(("name",)), True), (Path(("id",)), False))
    with pytest.raises(BadRequest):
        parse_orderby("name sideways")


def test_expand_nested_with_options() -> None:
    q = parse_options(
        [
            (
                "$expand",
                "Datastreams($filter=result gt 3;$top=2;$expand=Observations($top=1)),"
                "Locations,Datastreams/Thing",
            )
        ]
    )
    ds, loc = q.expand
    assert (ds.name, loc.name) == ("Datastreams", "Locations")
    assert ds.query.top == 2 and ds.query.filter is not None
    assert [e.name for e in ds.query.expand] == ["Observations", "Thing"]
    assert ds.query.expand[0].query.top == 1


def test_options_validation() -> None:
    q = parse_options(
        [
            ("$top", "5"),
            ("$skip", "10"),
            ("$count", "true"),
            ("$select", "@iot.id,name"),
            ("$resultFormat", "dataArray"),
            ("custom", "ignored"),
        ]
    )
    assert (q.top, q.skip, q.count, q.select, q.result_format) == (
        5,
        10,
        True,
        ("id", "name"),
        "dataArray",
    )
    for bad in [
        ("$top", "-1"),
        ("$top", "abc"),
        ("$skip", "1.5"),
        ("$count", "yes"),
        ("$resultFormat", "xml"),
        ("$nosuch", "1"),
        ("$select", "na me"),
    ]:
        with pytest.raises(BadRequest):
            parse_options([bad])
    with pytest.raises(NotSupported):
        parse_options([("$search", "x")])
    with pytest.raises(BadRequest):
        parse_options([("$top", "1"), ("$top", "2")])


def test_split_top_level_respects_quotes_and_parentheses() -> None:
    assert split_top_level("a(b,c),'d,e',f", ",") == ["a(b,c)", "'d,e'", "f"]
    with pytest.raises(BadRequest):
        split_top_level("a(b", ",")


def test_paths() -> None:
    assert parse_path("Things(12)/Datastreams/name/$value") == [
        Segment("Things", 12),
        Segment("Datastreams"),
        Segment("name"),
        Segment("$value"),
    ]
    with pytest.raises(BadRequest):
        parse_path("Things('x')")
    with pytest.raises(NotSupported):
        parse_path("Things(1)/Datastreams/$ref")


def test_ids_are_stable_positive_and_js_safe() -> None:
    a = entity_id("thing", "abd-air-1")
    assert a == entity_id("thing", "abd-air-1") and 0 < a < 2**53
    assert a != entity_id("location", "abd-air-1")
    t = datetime(2026, 3, 2, 0, 0, 7, 250031, tzinfo=UTC)
    oid = observation_id(12345, t)
    start, stop, n = decode_observation_id(oid)  # type: ignore[misc]
    assert start <= t < stop == start + timedelta(seconds=1) and n == 12345 and 0 < oid < 2**52
    last = observation_id(2**20 - 1, datetime(2136, 2, 7, tzinfo=UTC))
    assert last < 2**52
    assert decode_observation_id(-1) is None and decode_observation_id(2**52) is None
    assert decode_observation_id(oid & ~(2**20 - 1)) is None  # number 0 is never given
    for code, index, key in ((0, 2**30 - 1, 2**20 - 1), (2, 9500, 7), (3, 2**21 - 1, 2**29 - 1)):
        agg = aggregate_id(code, index, key)
        assert 2**52 <= agg < 2**53
        got = decode_aggregate_id(agg)
        assert got is not None and (got.code, got.index, got.key) == (code, index, key)
    assert decode_aggregate_id(oid) is None and 0 <= site_hash("a", "b") < 2**29


def _render(composable: sql.Composable) -> str:
    return repr(composable)


def test_translation_keeps_user_values_out_of_the_sql() -> None:
    params = Params()
    tr = Translator(params)
    node = parse_expression(
        "name eq 'x'' or 1=1 --' and substringof('; DROP TABLE readings', description)"
    )
    cond = tr.condition(ENTITY_SETS["Things"], sql.Identifier("e"), node)
    text = _render(cond)
    assert "DROP" not in text and "1=1" not in text
    assert sorted(params.values.values()) == ["; DROP TABLE readings", "x' or 1=1 --"]


@pytest.mark.parametrize(
    ("entity_set", "text"),
    [
        ("Things", "nosuch eq 1"),
        ("Things", "name add 1 eq 2"),
        ("Things", "name"),
        ("Observations", "phenomenonTime eq 3"),
        ("Observations", "result eq 'abc' and length(result) eq 1"),
        ("Locations", "geo.distance(name, geography'POINT(1 2)') lt 1"),
        ("Locations", "st_within(location, geography'POLYGON((1 2))')"),
    ],
)
def test_translation_type_errors_are_400(entity_set: str, text: str) -> None:
    with pytest.raises(BadRequest):
        Translator(Params()).condition(
            ENTITY_SETS[entity_set], sql.Identifier("e"), parse_expression(text)
        )


def test_top_is_capped_at_max_top_and_expansions_are_guarded() -> None:
    from api.sensorthings.engine import DEFAULT_TOP, MAX_TOP, _guard, _top

    assert _top(parse_options([])) == DEFAULT_TOP
    assert _top(parse_options([("$top", "99999999")])) == MAX_TOP
    things = ENTITY_SETS["Things"]
    big = parse_options([("$top", "10000"), ("$expand", "Datastreams($top=1000)")])
    with pytest.raises(BadRequest, match="more than 100000 entities"):
        _guard(things, big, _top(big))
    _guard(things, parse_options([("$expand", "Datastreams($top=10)")]), 100)
    # To-one navigations add one entity per parent, whatever their $top: no multiplying.
    streams = ENTITY_SETS["Datastreams"]
    one = parse_options([("$top", "1000"), ("$expand", "Thing,ObservedProperty")])
    _guard(streams, one, _top(one))
    deep = parse_options([("$top", "10000"), ("$expand", "Thing/Locations($top=5),Sensor")])
    _guard(streams, deep, _top(deep))  # 10000 x (1 + 1 x (1 + 5) + 1) = 80000
    many = parse_options([("$top", "10000"), ("$expand", "Thing/Locations($top=10)")])
    with pytest.raises(BadRequest):
        _guard(streams, many, _top(many))  # 10000 x (1 + 1 x 11) = 120000
