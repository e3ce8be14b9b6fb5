"""Every panel and variable query runs on a seeded PostgreSQL as Grafana would send it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from dashboards import querycheck as q
from tests.dashboards.panel_runner import BOARDS, QUERIES, VARIABLES, context, query_id, run_panel
from tests.dashboards.seed import Seeded

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def conn(seeded: Seeded) -> Iterator[psycopg.Connection]:
    with psycopg.connect(seeded.url) as connection:
        yield connection


@pytest.fixture(scope="module", params=[True, False], ids=["timescaledb-macros", "plain-macros"])
def mode(request: pytest.FixtureRequest, conn: psycopg.Connection, seeded: Seeded) -> Any:
    ctx = context(seeded.now, timescaledb=request.param)
    values = {uid: q.resolve_variables(conn, board, ctx) for uid, board in BOARDS.items()}
    return ctx, values


@pytest.mark.parametrize("query", QUERIES, ids=query_id)
def test_panel_query_runs_as_the_reader_and_has_what_its_panel_needs(
    query: q.PanelQuery, conn: psycopg.Connection, mode: Any
) -> None:
    ctx, values = mode
    result = run_panel(conn, query, values[query.dashboard], ctx)
    assert q.shape_problems(query, result) == []
    assert result.rows, "empty on the seed"


@pytest.mark.parametrize(("uid", "name"), VARIABLES)
def test_variable_query_returns_values(uid: str, name: str, mode: Any) -> None:
    _, values = mode
    assert values[uid][name], f"{uid} ${name} has no options on the seed"


def test_panels_run_with_one_choice_per_variable(conn: psycopg.Connection, mode: Any) -> None:
    ctx, values = mode
    for query in QUERIES:
        chosen = values[query.dashboard].items()
        single = {k: (v if isinstance(v, str) else v[-1:]) for k, v in chosen}
        run_panel(conn, query, single, ctx)  # may be empty, must not fail


def test_the_reader_role_cannot_write_or_read_outside_the_contract(
    conn: psycopg.Connection,
) -> None:
    for sql in (
        "DELETE FROM readings",
        "INSERT INTO sensor_locations VALUES ('x', 57, -2)",
        "SELECT * FROM schema_migrations",
        "SELECT * FROM alert_events",
    ):
        with conn.transaction(force_rollback=True):
            conn.execute("SET LOCAL ROLE civicpulse_reader")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql)
    config = conn.execute(
        "SELECT rolconfig, rolcanlogin FROM pg_roles WHERE rolname = 'civicpulse_reader'"
    ).fetchone()
    assert config is not None
    assert "default_transaction_read_only=on" in config[0]


def _rows(conn: psycopg.Connection, mode: Any, uid: str, title: str) -> list[dict[str, Any]]:
    ctx, values = mode
    query = next(x for x in QUERIES if x.dashboard == uid and x.title == title)
    result = run_panel(conn, query, values[uid], ctx)
    return [dict(zip(result.names(), row, strict=True)) for row in result.rows]


def test_panels_find_the_seeded_problems(
    conn: psycopg.Connection, mode: Any, seeded: Seeded
) -> None:
    fleet = "civicpulse-fleet-health"
    stale = _rows(conn, mode, fleet, "Stale sensors")  # now()-relative: others may join later
    assert seeded.stale_sensor in [r["sensor"] for r in stale]
    assert all(r["silent (s)"] > r["stale after (s)"] for r in stale)
    flat = _rows(conn, mode, fleet, "Flatlined sensors")
    assert [(r["sensor"], r["metric"]) for r in flat] == [(seeded.flat_sensor, "temperature")]
    counts = _rows(conn, mode, fleet, "Fleet")[0]
    assert (counts["Sensors"], counts["Stale"], counts["Low battery"]) == (
        len(seeded.sensors),
        len(stale),
        1,
    )
    due = _rows(conn, mode, "civicpulse-waste", "Due today and tomorrow")
    fast = next(r for r in due if r["bin"] == seeded.full_bin)
    assert fast["due"] == "today" and fast["threshold %"] == 75.0 and fast["% per day"] > 0
    fire = _rows(conn, mode, "civicpulse-waste", "Fire alerts")
    assert [(r["bin"], r["state"]) for r in fire] == [(seeded.full_bin, "open")]
    ops = _rows(conn, mode, "civicpulse-operations", "Open alerts")
    assert [r["severity"] for r in ops] == ["critical", "warning"]
    outbox = _rows(conn, mode, "civicpulse-operations", "Alert notifications not delivered")
    assert [r["delivery"] for r in outbox] == ["given up", "pending"]
    assert "seeded receiver is down" in outbox[0]["last error"]
    status = {
        r["sensor_id"]: r["status"]
        for r in _rows(conn, mode, "civicpulse-operations", "Sensors by status")
    }
    assert status[seeded.stale_sensor] == "stale" and status[seeded.full_bin] == "critical"


def test_energy_panels_compare_with_the_baseline_year(
    conn: psycopg.Connection, mode: Any, seeded: Seeded
) -> None:
    table = _rows(conn, mode, "civicpulse-energy", "Consumption and carbon per site and month")
    this_month = [r for r in table if r["month"] == seeded.now.strftime("%Y-%m")]
    assert this_month and all(r["baseline kWh"] == 1500 for r in this_month)
    for r in this_month:
        factor = {2024: 0.20705, 2025: 0.177}[r["DESNZ factors"]]
        assert abs(float(r["kg CO2e Scope 2"]) - float(r["kWh"]) * factor) < 0.1
