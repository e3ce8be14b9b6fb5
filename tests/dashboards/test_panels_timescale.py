"""Every panel and variable query on the WASM TimescaleDB, and the same answers as PostgreSQL."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from dashboards import querycheck as q
from tests.dashboards.panel_runner import BOARDS, QUERIES, WALL_CLOCK, context, run_panel
from tests.dashboards.seed import Seeded, seed


def same(a: Any, b: Any) -> bool:
    if isinstance(a, datetime) and isinstance(b, datetime):  # float maths → time, e.g. an ETA
        return abs(a - b) <= timedelta(minutes=1)
    if isinstance(a, float | Decimal) and isinstance(b, float | Decimal):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


def same_rows(pg: list[tuple[Any, ...]], ts: list[tuple[Any, ...]]) -> bool:
    return len(pg) == len(ts) and all(
        len(x) == len(y) and all(same(u, v) for u, v in zip(x, y, strict=True))
        for x, y in zip(pg, ts, strict=True)
    )


@pytest.mark.integration
def test_every_panel_runs_on_timescaledb_and_agrees_with_postgresql(
    fresh_timescale_url: str, seeded: Seeded
) -> None:
    seed(fresh_timescale_url, seeded.now, copy=False)  # the same readings, the same "now"
    ctx = context(seeded.now, timescaledb=True)
    failures: list[str] = []
    with psycopg.connect(seeded.url) as pg:
        pg_values = {uid: q.resolve_variables(pg, b, ctx) for uid, b in BOARDS.items()}
        pg_rows = {}
        for query in QUERIES:
            pg_rows[query] = run_panel(pg, query, pg_values[query.dashboard], ctx).rows
    with psycopg.connect(fresh_timescale_url) as ts:
        assert ts.execute(
            "SELECT count(*) FROM pg_extension WHERE extname = 'timescaledb'"
        ).fetchone() == (1,)
        ts_values = {uid: q.resolve_variables(ts, b, ctx) for uid, b in BOARDS.items()}
        assert ts_values == pg_values, "variable options differ"
        for query in QUERIES:
            name = f"{query.dashboard}: {query.title}"
            try:
                result = run_panel(ts, query, ts_values[query.dashboard], ctx)
            except psycopg.Error as exc:
                failures.append(f"{name}: {exc}".splitlines()[0])
                continue
            problems = q.shape_problems(query, result)
            if problems or not result.rows:
                failures.append(f"{name}: {problems or 'empty on the seed'}")
            elif any(w in query.raw_sql for w in WALL_CLOCK):  # shape only, see WALL_CLOCK
                continue
            elif not same_rows(pg_rows[query], result.rows):
                failures.append(f"{name}: differs from PostgreSQL")
    assert failures == []
