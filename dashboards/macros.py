"""Grafana's PostgreSQL macro expansion, rule for rule (sqleng Interpolate + macros.go)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# macros.go: sExpr = `\$` + rsIdentifier + `\(([^\)]*)\)`, rsIdentifier = `([_a-zA-Z0-9]+)`
MACRO = re.compile(r"\$([_a-zA-Z0-9]+)\(([^\)]*)\)")
_DATE_UNIT = re.compile(r"^(\d+)([dwMy])$")  # gtime.ParseInterval's calendar units
_GO_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNIT_SECONDS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "μs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


class MacroError(ValueError):
    """A macro Grafana would refuse (unknown name, missing argument, bad interval)."""


@dataclass(frozen=True, slots=True)
class QueryContext:
    """What Grafana's backend knows when it expands a query: range, interval, datasource flag."""

    time_from: datetime
    time_to: datetime
    interval: timedelta = timedelta(minutes=1)
    timescaledb: bool = False

    def __post_init__(self) -> None:
        if self.time_from.tzinfo is None or self.time_to.tzinfo is None:
            raise ValueError("time range must be timezone-aware")


def rfc3339nano(t: datetime) -> str:
    """Go's ``t.UTC().Format(time.RFC3339Nano)``: ``Z``, fraction with trailing zeros trimmed."""
    u = t.astimezone(UTC)
    text = u.strftime("%Y-%m-%dT%H:%M:%S")
    if u.microsecond:
        text += "." + f"{u.microsecond:06d}".rstrip("0")
    return text + "Z"


def go_float(value: float) -> str:
    """Go's ``%v`` of a float64 (shortest form; no ``.0`` on whole numbers below 1e21)."""
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def format_interval(interval: timedelta) -> str:
    """gtime.FormatInterval: the largest whole unit (y, d, h, m, s, ms), else ``1ms``."""
    ms = interval // timedelta(milliseconds=1)
    for unit, size in (
        ("y", 365 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
        ("ms", 1),
    ):
        if ms >= size:
            return f"{ms // size}{unit}"
    return "1ms"


def parse_interval(text: str, now: datetime | None = None) -> timedelta:
    """gtime.ParseInterval: ``Nd``/``Nw``/``NM``/``Ny`` (calendar, from now) or a Go duration."""
    unit = _DATE_UNIT.fullmatch(text)
    if unit:
        n, kind = int(unit.group(1)), unit.group(2)
        if kind in "dw":
            return timedelta(days=n * (7 if kind == "w" else 1))
        start = now or datetime.now(UTC)
        months = n if kind == "M" else 12 * n
        year, month = divmod(start.month - 1 + months, 12)
        return _add_months(start, year, month + 1) - start
    return _go_duration(text)


def _add_months(t: datetime, years: int, month: int) -> datetime:
    # Go's AddDate normalises an overflowing day (31 Jan + 1 month = 3 Mar); do the same.
    base = t.replace(year=t.year + years, month=month, day=1)
    return base + timedelta(days=t.day - 1)


def _go_duration(text: str) -> timedelta:
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return timedelta(0)
    pos, seconds = 0, 0.0
    for match in _GO_DURATION.finditer(body):
        if match.start() != pos:
            break
        seconds += float(match.group(1)) * _GO_UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if not body or pos != len(body):
        raise MacroError(f"error parsing interval {text}")
    return timedelta(seconds=-seconds if text.startswith("-") else seconds)


def interpolate_globals(sql: str, ctx: QueryContext) -> str:
    """sqleng.Interpolate: ``$__interval_ms``, ``$__interval``, ``$__unixEpochFrom/To()``."""
    sql = sql.replace("$__interval_ms", str(ctx.interval // timedelta(milliseconds=1)))
    sql = sql.replace("$__interval", format_interval(ctx.interval))
    sql = sql.replace("$__unixEpochFrom()", str(int(ctx.time_from.timestamp())))
    return sql.replace("$__unixEpochTo()", str(int(ctx.time_to.timestamp())))


def _check_fill(args: list[str]) -> None:
    # sqleng.SetupFillmode accepts NULL, previous or a number; the fill changes no SQL.
    if len(args) == 3 and args[2] not in ("NULL", "previous"):
        try:
            float(args[2])
        except ValueError as exc:
            raise MacroError(f"error parsing fill value {args[2]}") from exc


def evaluate(name: str, args: list[str], ctx: QueryContext) -> str:
    """One macro call, as ``evaluateMacro`` in macros.go."""
    start, end = rfc3339nano(ctx.time_from), rfc3339nano(ctx.time_to)
    if name == "__time":
        return f'{args[0]} AS "time"'
    if name == "__timeEpoch":
        return f'extract(epoch from {args[0]}) as "time"'
    if name == "__timeFilter":
        return f"{args[0]} BETWEEN '{start}' AND '{end}'"
    if name == "__timeFrom":
        return f"'{start}'"
    if name == "__timeTo":
        return f"'{end}'"
    if name in ("__timeGroup", "__unixEpochGroup"):
        if len(args) < 2:
            raise MacroError(f"macro {name} needs time column and interval and optional fill value")
        secs = parse_interval(args[1].strip("'")).total_seconds()
        _check_fill(args)
        seconds = go_float(secs)
        if name == "__unixEpochGroup":
            return f"floor(({args[0]})/{seconds})*{seconds}"
        if ctx.timescaledb:
            return f"time_bucket('{secs:.3f}s',{args[0]})"
        return f"floor(extract(epoch from {args[0]})/{seconds})*{seconds}"
    if name in ("__timeGroupAlias", "__unixEpochGroupAlias"):
        return evaluate(name.removesuffix("Alias"), args, ctx) + ' AS "time"'
    if name == "__unixEpochFilter":
        lo, hi = int(ctx.time_from.timestamp()), int(ctx.time_to.timestamp())
        return f"{args[0]} >= {lo} AND {args[0]} <= {hi}"
    if name == "__unixEpochNanoFilter":
        lo, hi = _nanos(ctx.time_from), _nanos(ctx.time_to)
        return f"{args[0]} >= {lo} AND {args[0]} <= {hi}"
    if name == "__unixEpochNanoFrom":
        return str(_nanos(ctx.time_from))
    if name == "__unixEpochNanoTo":
        return str(_nanos(ctx.time_to))
    raise MacroError(f"undefined macro: ${name}")


def _nanos(t: datetime) -> int:
    delta = t.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000


def expand(sql: str, ctx: QueryContext) -> str:
    """The SQL Grafana sends to PostgreSQL for ``sql`` (template variables already replaced)."""
    sql = interpolate_globals(sql, ctx)
    original = sql

    def replace(match: re.Match[str]) -> str:
        name, whole = match.group(1), match.group(0)
        # "detect if $__timeGroup is supposed to add AS time for backwards compatibility":
        # Grafana looks at the FIRST occurrence of the same text, followed by a comma.
        if name == "__timeGroup":
            index = original.find(whole)
            if index >= 0 and original[index + len(whole) : index + len(whole) + 1] == ",":
                name = "__timeGroupAlias"
        # Go's strings.Split("", ",") is [""]: an empty call still has one (empty) argument.
        args = [a.strip(" ") for a in match.group(2).split(",")]
        return evaluate(name, args, ctx)

    return MACRO.sub(replace, sql)
