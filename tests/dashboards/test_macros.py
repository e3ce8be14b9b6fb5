"""Grafana's PostgreSQL macro expansion and template variables, rule by documented rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from dashboards import macros, templating
from dashboards.macros import QueryContext, expand

FROM = datetime(2026, 11, 24, 6, 30, 0, 123400, tzinfo=UTC)
TO = datetime(2026, 11, 25, 6, 30, tzinfo=UTC)
CTX = QueryContext(FROM, TO, interval=timedelta(minutes=10))
TS = QueryContext(FROM, TO, interval=timedelta(minutes=10), timescaledb=True)


def test_time_filter_uses_utc_rfc3339nano_with_trailing_zeros_trimmed() -> None:
    assert expand("WHERE $__timeFilter(time)", CTX) == (
        "WHERE time BETWEEN '2026-11-24T06:30:00.1234Z' AND '2026-11-25T06:30:00Z'"
    )


def test_non_utc_range_is_written_in_utc() -> None:
    from zoneinfo import ZoneInfo

    london = datetime(2026, 7, 1, 12, tzinfo=ZoneInfo("Europe/London"))
    ctx = QueryContext(london, london + timedelta(hours=1))
    assert expand("$__timeFrom() $__timeTo()", ctx) == (
        "'2026-07-01T11:00:00Z' '2026-07-01T12:00:00Z'"
    )


def test_time_from_and_to_are_quoted_times() -> None:
    assert expand("$__timeFrom()::timestamptz < $__timeTo()", CTX) == (
        "'2026-11-24T06:30:00.1234Z'::timestamptz < '2026-11-25T06:30:00Z'"
    )


def test_time_group_without_timescaledb_is_floor_of_epoch() -> None:
    assert expand("SELECT $__timeGroup(bucket, '5m') AS t", CTX) == (
        "SELECT floor(extract(epoch from bucket)/300)*300 AS t"
    )


def test_time_group_with_timescaledb_is_time_bucket_with_three_decimals() -> None:
    assert expand("SELECT $__timeGroup(bucket, '5m') AS t", TS) == (
        "SELECT time_bucket('300.000s',bucket) AS t"
    )
    assert expand("$__timeGroup(bucket, 1.5s)", TS) == "time_bucket('1.500s',bucket)"


def test_time_group_alias_appends_as_time() -> None:
    assert expand("SELECT $__timeGroupAlias(bucket, '1h'), x", CTX) == (
        'SELECT floor(extract(epoch from bucket)/3600)*3600 AS "time", x'
    )


def test_time_group_directly_followed_by_a_comma_gets_the_alias() -> None:
    assert expand("SELECT $__timeGroup(bucket,'1m'), x", CTX) == (
        'SELECT floor(extract(epoch from bucket)/60)*60 AS "time", x'
    )
    assert expand("SELECT $__timeGroup(bucket,'1m') , x", CTX) == (
        "SELECT floor(extract(epoch from bucket)/60)*60 , x"
    )


def test_alias_detection_looks_at_the_first_occurrence_only() -> None:
    # Grafana checks strings.Index(sql, match): the first copy decides for every copy.
    sql = "SELECT $__timeGroup(t,'1m') x, $__timeGroup(t,'1m'), y GROUP BY $__timeGroup(t,'1m'),y"
    assert expand(sql, CTX).count('AS "time"') == 0
    sql = "SELECT $__timeGroup(t,'1m'), y GROUP BY $__timeGroup(t,'1m') ORDER BY 1"
    assert expand(sql, CTX).count('AS "time"') == 2


def test_fill_argument_changes_no_sql_but_must_be_valid() -> None:
    plain = expand("$__timeGroup(t, '5m')", CTX)
    for fill in ("NULL", "previous", "0", "1.5"):
        assert expand(f"$__timeGroup(t, '5m', {fill})", CTX) == plain
    with pytest.raises(macros.MacroError):
        expand("$__timeGroup(t, '5m', sometimes)", CTX)


def test_time_and_epoch_macros() -> None:
    assert expand("$__time(ts)", CTX) == 'ts AS "time"'
    assert expand("$__timeEpoch(ts)", CTX) == 'extract(epoch from ts) as "time"'
    lo, hi = int(FROM.timestamp()), int(TO.timestamp())
    assert expand("$__unixEpochFilter(s)", CTX) == f"s >= {lo} AND s <= {hi}"
    assert expand("$__unixEpochFrom() $__unixEpochTo()", CTX) == f"{lo} {hi}"
    assert expand("$__unixEpochGroupAlias(s, '1m')", CTX) == 'floor((s)/60)*60 AS "time"'
    assert expand("$__unixEpochNanoFrom()", CTX) == "1795501800123400000"


def test_interval_and_interval_ms() -> None:
    assert expand("$__interval_ms / $__interval", CTX) == "600000 / 10m"
    for seconds, text in (
        (0.0005, "1ms"),
        (0.25, "250ms"),
        (90, "1m"),
        (7200, "2h"),
        (86400 * 3, "3d"),
        (86400 * 400, "1y"),
    ):
        assert macros.format_interval(timedelta(seconds=seconds)) == text
    assert expand("$__timeGroup(t, $__interval)", CTX) == "floor(extract(epoch from t)/600)*600"


def test_intervals_parse_like_gtime() -> None:
    assert macros.parse_interval("1h30m") == timedelta(minutes=90)
    assert macros.parse_interval("250ms") == timedelta(milliseconds=250)
    assert macros.parse_interval("2d") == timedelta(days=2)
    assert macros.parse_interval("1w") == timedelta(days=7)
    jan = datetime(2026, 1, 31, tzinfo=UTC)
    assert macros.parse_interval("1M", now=jan) == timedelta(days=31)  # Go: 31 Jan + 1M = 3 Mar
    with pytest.raises(macros.MacroError):
        macros.parse_interval("soon")


def test_arguments_cannot_contain_a_closing_parenthesis() -> None:
    # [^\)]* stops at the first ')': the arguments are "coalesce(a" and "b" (unused by
    # $__time), and the second ')' is left as it was.
    assert expand("$__time(coalesce(a, b))", CTX) == 'coalesce(a AS "time")'


def test_unknown_macro_is_an_error() -> None:
    with pytest.raises(macros.MacroError, match="undefined macro"):
        expand("SELECT $__timeFliter(t)", CTX)


def test_go_float_formatting() -> None:
    assert [macros.go_float(x) for x in (300.0, 0.5, 86400.0)] == ["300", "0.5", "86400"]


def test_multi_value_variables_are_quoted_lists_and_single_values_escaped() -> None:
    values = {"council": ["aberdeen", "o'hara"], "pct": "50", "one": "x'y"}
    multi = frozenset({"council", "one"})
    sql = "council IN ($council) AND p = $pct AND o IN (${one}) AND [[pct]] AND $__timeFrom()"
    assert templating.interpolate(sql, values, multi) == (
        "council IN ('aberdeen','o''hara') AND p = 50 AND o IN ('x''y') AND 50 AND $__timeFrom()"
    )
    assert templating.interpolate("$unknown", values) == "$unknown"
