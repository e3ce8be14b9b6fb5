"""Run every panel and variable query of a dashboard against a database, as Grafana would."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

from dashboards import macros, templating

NUMERIC = {20, 21, 23, 700, 701, 1700}  # int8, int2, int4, float4, float8, numeric
TIMES = {1082, 1114, 1184}  # date, timestamp, timestamptz
READER_ROLE = "civicpulse_reader"


@dataclass(frozen=True, slots=True)
class PanelQuery:
    """One target of one panel."""

    dashboard: str
    panel_id: int
    title: str
    panel_type: str
    ref_id: str
    raw_sql: str
    format: str


@dataclass(frozen=True, slots=True)
class Result:
    """Columns (name, type oid) and rows of one executed query."""

    columns: tuple[tuple[str, int], ...]
    rows: list[tuple[Any, ...]]

    def names(self) -> list[str]:
        """Column names."""
        return [c[0] for c in self.columns]


def panel_queries(board: Mapping[str, Any]) -> Iterator[PanelQuery]:
    """Every SQL target of every panel (rows' nested panels included)."""
    for panel in board.get("panels", []):
        for inner in [panel, *panel.get("panels", [])]:
            for target in inner.get("targets", []):
                if "rawSql" in target:
                    yield PanelQuery(
                        board["uid"],
                        inner["id"],
                        inner.get("title", ""),
                        inner["type"],
                        target["refId"],
                        target["rawSql"],
                        target.get("format", "table"),
                    )


def variables(board: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """Query variables, in dashboard order (each may use the ones before it)."""
    return [v for v in board.get("templating", {}).get("list", []) if v.get("type") == "query"]


def multi_names(board: Mapping[str, Any]) -> frozenset[str]:
    """Variables whose values are quoted lists (multi-value or include-all)."""
    listed = board.get("templating", {}).get("list", [])
    return frozenset(v["name"] for v in listed if v.get("multi") or v.get("includeAll"))


def run(conn: psycopg.Connection, sql: str, *, role: str | None = READER_ROLE) -> Result:
    """Execute ``sql`` in a read-only transaction (as ``role``), rolled back afterwards."""
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        if role:
            cur.execute(f"SET LOCAL ROLE {role}")
        cur.execute("SET TRANSACTION READ ONLY")
        cur.execute(sql.encode())
        columns = tuple((d.name, d.type_code) for d in (cur.description or ()))
        return Result(columns, cur.fetchall() if cur.description else [])


def resolve_variables(
    conn: psycopg.Connection,
    board: Mapping[str, Any],
    ctx: macros.QueryContext,
    fixed: Mapping[str, str | Sequence[str]] | None = None,
    role: str | None = READER_ROLE,
) -> dict[str, str | Sequence[str]]:
    """Each variable's "All" (every value its query returns), constants from ``fixed``."""
    values: dict[str, str | Sequence[str]] = dict(fixed or {})
    for option in board.get("templating", {}).get("list", []):
        if option.get("type") == "custom" and option["name"] not in values:
            values[option["name"]] = option["current"]["value"]
    multi = multi_names(board)
    for variable in variables(board):
        if variable["name"] in values:
            continue
        result = run(conn, expand(str(variable["query"]), values, multi, ctx), role=role)
        names = result.names()
        column = names.index("__value") if "__value" in names else 0
        values[variable["name"]] = [str(row[column]) for row in result.rows]
    return values


def expand(
    sql: str,
    values: Mapping[str, str | Sequence[str]],
    multi: frozenset[str],
    ctx: macros.QueryContext,
) -> str:
    """Template variables first (Grafana's frontend), then the backend's macros."""
    return macros.expand(templating.interpolate(sql, values, multi), ctx)


def shape_problems(query: PanelQuery, result: Result) -> list[str]:
    """What the panel type needs from its result and does not get."""
    types = dict(result.columns)
    numeric = [n for n, t in result.columns if t in NUMERIC and n != "time"]
    problems = []
    if query.format == "time_series" or query.panel_type in ("timeseries", "state-timeline"):
        if query.format != "time_series":
            problems.append("time series panels need format time_series")
        if types.get("time") not in TIMES | NUMERIC:
            problems.append(f"no time column (timestamp or epoch) in {result.names()}")
        if not numeric:
            problems.append("no numeric value column")
        at = result.names().index("time") if "time" in types else None
        times = [row[at] for row in result.rows] if at is not None else []
        if times != sorted(times):
            problems.append("rows are not in ascending time order")
    if query.panel_type == "geomap":
        for name in ("latitude", "longitude"):
            if types.get(name) not in NUMERIC:
                problems.append(f"geomap needs a numeric {name} column")
    if query.panel_type in ("stat", "bargauge", "gauge", "barchart") and not numeric:
        problems.append(f"{query.panel_type} needs a numeric column")
    if not result.columns:
        problems.append("the query returns no columns")
    return problems
