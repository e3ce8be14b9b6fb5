"""Every panel's row order is fixed by its ORDER BY, not by the plan PostgreSQL happens to pick."""

from __future__ import annotations

import psycopg
import pytest

from dashboards import querycheck as q
from tests.dashboards.panel_runner import BOARDS, QUERIES, WALL_CLOCK, context, run_panel
from tests.dashboards.seed import Seeded

# Each set of planner settings makes PostgreSQL feed a panel's final sort in another order
# (hash vs sort aggregation, index vs sequential scans, other join methods). A query whose
# ORDER BY leaves ties returns its tied rows in that input order, so its rows then move; the
# WASM TimescaleDB (hypertables, chunk appends) is one more such plan. Issue 14 was this:
# "Messages and readings per second" ordered only by time, with several series per bucket.
PLANS = {
    "no hash aggregation": ("enable_hashagg",),
    "no explicit sort": ("enable_sort",),
    "no hash joins or aggregation": ("enable_hashjoin", "enable_hashagg"),
    "no index scans": ("enable_indexscan", "enable_bitmapscan", "enable_indexonlyscan"),
    "no sequential scans": ("enable_seqscan",),
    "no nested loops or merge joins": ("enable_nestloop", "enable_mergejoin"),
}


@pytest.mark.integration
def test_every_panel_returns_its_rows_in_the_same_order_under_every_plan(seeded: Seeded) -> None:
    ctx = context(seeded.now, timescaledb=False)
    moved: list[str] = []
    with psycopg.connect(seeded.url, autocommit=True) as conn:
        values = {uid: q.resolve_variables(conn, b, ctx) for uid, b in BOARDS.items()}

        def rows(query: q.PanelQuery) -> list[tuple[object, ...]]:
            result = run_panel(conn, query, values[query.dashboard], ctx).rows
            if any(w in query.raw_sql for w in WALL_CLOCK):  # "silent (s)" grows between runs
                return [row[:1] for row in result]  # the order of the rows' first column
            return result

        baseline = {query: rows(query) for query in QUERIES}
        for plan, switches in PLANS.items():
            for switch in switches:
                conn.execute(f"SET {switch} = off")
            for query in QUERIES:
                now = rows(query)
                if now != baseline[query]:
                    same_rows = sorted(map(repr, now)) == sorted(map(repr, baseline[query]))
                    what = "order" if same_rows else "rows"
                    moved.append(f"{query.dashboard}: {query.title}: {what} change with {plan}")
            conn.execute("RESET ALL")
    assert moved == [], "\n".join(moved)
    assert all(baseline.values()), "a panel is empty on the seed: the check proves nothing"
