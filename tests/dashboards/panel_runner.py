"""Shared by the panel tests: the committed dashboards and a way to run their queries."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import psycopg

from dashboards import JSON_DIR
from dashboards import querycheck as q
from dashboards.macros import QueryContext

BOARDS: dict[str, dict[str, Any]] = {
    path.stem: json.loads(path.read_text(encoding="utf-8"))
    for path in sorted(JSON_DIR.glob("*.json"))
}
QUERIES = [query for board in BOARDS.values() for query in q.panel_queries(board)]
# dash_sensor_status and stored_at follow the wall clock (now()): they move between two runs
# of the same panel, so such panels are checked for shape, not compared value by value.
WALL_CLOCK = ("dash_sensor_status", "stored_at")
VARIABLES = [(uid, v["name"]) for uid, board in BOARDS.items() for v in q.variables(board)]


def query_id(query: q.PanelQuery) -> str:
    return f"{query.dashboard}:{query.panel_id}:{query.title}"


def context(now: datetime, timescaledb: bool) -> QueryContext:
    """The range the tests look at: the seed's 30 hours, 5-minute interval."""
    return QueryContext(now - timedelta(hours=30), now, timedelta(minutes=5), timescaledb)


def run_panel(
    conn: psycopg.Connection, query: q.PanelQuery, values: dict[str, Any], ctx: QueryContext
) -> q.Result:
    """The panel's SQL as Grafana would send it, run as civicpulse_reader."""
    board = BOARDS[query.dashboard]
    return q.run(conn, q.expand(query.raw_sql, values, q.multi_names(board), ctx))
