"""Validation of the open-data query strings: every mistake is one line naming the parameter."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Final, cast

from api.opendata.aggregates import NO_COUNCIL_ROLLUP, WIDTHS, AggregateQuery, Group, Resolution
from sensors.catalogue import KINDS

#: Longest ``to - from`` per resolution (at most about 3,000-9,000 intervals a series).
MAX_SPAN: Final[Mapping[str, timedelta]] = {
    "15m": timedelta(days=31),
    "1h": timedelta(days=366),
    "1d": timedelta(days=3660),
}
#: Most rows one response carries (JSON is built in memory; CSV streams).
MAX_JSON_ROWS: Final = 100_000
MAX_CSV_ROWS: Final = 5_000_000

AGGREGATE_PARAMS: Final = (
    "council",
    "kind",
    "metric",
    "site",
    "sensor",
    "group",
    "resolution",
    "from",
    "to",
    "format",
)
_SLUG: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_SENSOR: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")
_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_METRICS: Final = frozenset(m for k in KINDS.values() for m in k.metrics)


class BadRequest(ValueError):
    """A request parameter is wrong; the message is one line that names it."""


@dataclass(frozen=True, slots=True)
class AggregateRequest:
    """A validated ``/api/v1/aggregates`` request."""

    query: AggregateQuery
    format: str  # "json" | "csv"


def _one(params: Mapping[str, Sequence[str]], name: str) -> str | None:
    values = params.get(name, ())
    if len(values) > 1:
        raise BadRequest(f"{name}: given {len(values)} times, give it once")
    if not values:
        return None
    value = values[0]
    if value == "":
        raise BadRequest(f"{name}: empty")
    if len(value) > 200 or not value.isprintable():
        raise BadRequest(f"{name}: not a valid value")
    return value


def _choice(name: str, value: str | None, choices: Iterable[str], default: str) -> str:
    options = tuple(choices)
    if value is None:
        return default
    if value not in options:
        raise BadRequest(f"{name}: unknown value {value[:40]!r} (one of {', '.join(options)})")
    return value


def parse_time(name: str, value: str | None) -> datetime:
    """An ISO 8601 instant with a UTC offset (or a bare date: midnight UTC), as UTC."""
    if value is None:
        raise BadRequest(f"{name}: required (ISO 8601, e.g. 2026-01-31T00:00:00Z)")
    try:
        if _DATE.fullmatch(value):
            return datetime.combine(date.fromisoformat(value), datetime.min.time(), UTC)
        t = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{name}: not an ISO 8601 time: {value[:40]!r}") from None
    if t.tzinfo is None or t.utcoffset() is None:
        raise BadRequest(f"{name}: needs a UTC offset, e.g. {value[:40]}Z")
    return t.astimezone(UTC)


def reject_unknown(params: Iterable[str], known: Iterable[str]) -> None:
    """400 for a parameter the endpoint does not take (a typo would silently widen a query)."""
    allowed = set(known)
    for name in params:
        if name not in allowed:
            raise BadRequest(f"{name[:40]}: unknown parameter (known: {', '.join(known)})")


def parse_aggregates(params: Mapping[str, Sequence[str]]) -> AggregateRequest:
    """Validate the query string of ``/api/v1/aggregates``."""
    reject_unknown(params, AGGREGATE_PARAMS)
    council = _one(params, "council")
    if council is not None and not _SLUG.fullmatch(council):
        raise BadRequest(f"council: not a council id: {council[:40]!r}")
    kind = _one(params, "kind")
    if kind is not None:
        _choice("kind", kind, KINDS, "")
    metric = _one(params, "metric")
    if metric is not None:
        known = KINDS[kind].metrics if kind is not None else _METRICS
        if metric not in known:
            where = f" of kind {kind}" if kind is not None else ""
            raise BadRequest(f"metric: unknown metric{where}: {metric[:40]!r}")
    site = _one(params, "site")
    sensor = _one(params, "sensor")
    if sensor is not None and not _SENSOR.fullmatch(sensor):
        raise BadRequest(f"sensor: not a sensor id: {sensor[:40]!r}")
    group = _choice("group", _one(params, "group"), ("sensor", "site", "council"), "sensor")
    if group == "council" and (site is not None or sensor is not None):
        raise BadRequest("group: council aggregates take no site or sensor")
    if group == "council" and metric in NO_COUNCIL_ROLLUP:
        raise BadRequest(f"metric: {metric} is a cumulative register: no council aggregate")
    resolution = _choice("resolution", _one(params, "resolution"), WIDTHS, "1h")
    fmt = _choice("format", _one(params, "format"), ("json", "csv"), "json")
    start = parse_time("from", _one(params, "from"))
    end = parse_time("to", _one(params, "to"))
    if start >= end:
        raise BadRequest("from: must be before to")
    if end - start > MAX_SPAN[resolution]:
        raise BadRequest(
            f"to: range too long for resolution={resolution}: at most"
            f" {MAX_SPAN[resolution].days} days (narrow from/to or use a coarser resolution)"
        )
    query = AggregateQuery(
        resolution=cast(Resolution, resolution),
        start=start,
        end=end,
        council=council,
        kind=kind,
        metric=metric,
        site=site,
        sensor=sensor,
        group=cast(Group, group),
    )
    return AggregateRequest(query, fmt)
