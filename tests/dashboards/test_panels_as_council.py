"""Every panel runs for a council's own Grafana datasource (its role, through the tenant views).

A council's datasource logs in as ``civicpulse_council_<slug>`` (``civicpulse share
sql-login``): the role's search_path puts the tenant views first, so the committed dashboards
work unchanged and show only that council's rows (plus what agreements share with it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from dashboards import querycheck as q
from tests.dashboards.panel_runner import BOARDS, QUERIES, context, query_id
from tests.dashboards.seed import Seeded

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def councils(seeded: Seeded) -> list[str]:
    """The seed's councils, registered (which makes their roles)."""
    with psycopg.connect(seeded.url, autocommit=True) as conn:
        found = [c for (c,) in conn.execute("SELECT DISTINCT council FROM readings ORDER BY 1")]
        for council in found:
            conn.execute(
                "INSERT INTO councils (slug, name) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (council, council.title()),
            )
    assert len(found) >= 2, "the seed should hold several councils"
    return found


@pytest.fixture(scope="module")
def conn(seeded: Seeded) -> Iterator[psycopg.Connection]:
    with psycopg.connect(seeded.url) as connection:
        yield connection


def run_as(conn: psycopg.Connection, council: str, sql: str) -> q.Result:
    """``sql`` as the council's datasource would run it (role settings applied by hand)."""
    with conn.transaction(force_rollback=True), conn.cursor() as cur:
        cur.execute(f"SET LOCAL ROLE civicpulse_council_{council}")
        cur.execute("SET LOCAL search_path = tenant, public, pg_catalog")
        cur.execute("SET TRANSACTION READ ONLY")
        cur.execute(sql.encode())
        columns = tuple((d.name, d.type_code) for d in (cur.description or ()))
        return q.Result(columns, cur.fetchall() if cur.description else [])


@pytest.mark.parametrize("query", QUERIES, ids=query_id)
def test_panel_runs_for_each_council_and_shows_only_its_rows(
    query: q.PanelQuery, conn: psycopg.Connection, councils: list[str], seeded: Seeded
) -> None:
    ctx = context(seeded.now, timescaledb=False)
    board = BOARDS[query.dashboard]
    for council in councils:
        values: Any = q.resolve_variables(conn, board, ctx, role=None)
        sql = q.expand(query.raw_sql, values, q.multi_names(board), ctx)
        result = run_as(conn, council, sql)
        assert q.shape_problems(query, result) == []
        names = [name for name, _ in result.columns]
        if "council" in names:
            i = names.index("council")
            assert {row[i] for row in result.rows} <= {council}, council


def test_a_council_sees_fewer_readings_than_the_platform_reader(
    conn: psycopg.Connection, councils: list[str]
) -> None:
    total = q.run(conn, "SELECT count(*) FROM readings").rows[0][0]
    seen = [run_as(conn, c, "SELECT count(*) FROM readings").rows[0][0] for c in councils]
    assert sum(seen) == total and all(0 < n < total for n in seen)
