"""Rollups and dashboard queries: PostgreSQL 15, TimescaleDB (WASM) and numpy agree."""

from __future__ import annotations

import re

import psycopg
import pytest

from storage import applied_migrations, migrate
from storage.migrations import available
from storage.rollups import LEVELS, ROLLUPS
from tests.storage.conformance.contract import (
    PARAMS,
    QUERIES,
    ContractDatabases,
    dump,
    fetch,
    same_rows,
)
from tests.storage.conformance.seed import truth

pytestmark = pytest.mark.integration

CONTRACT = ("readings", "readings_1m", *ROLLUPS)


def _truth_rows(name: str, dbs: ContractDatabases) -> list[tuple]:
    level = next(lv for lv in LEVELS if lv.name == name)
    rows = truth(dbs.seed.readings, level.width, level.per_sensor)
    return [(*k, *v) for k, v in sorted(rows.items())]


def _columns(url: str) -> dict[str, list[tuple[str, str]]]:
    rows = fetch(
        url,
        """
        SELECT table_name, column_name, data_type FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = ANY(%(names)s)
         ORDER BY table_name, ordinal_position""",
        {"names": list(CONTRACT)},
    )
    out: dict[str, list[tuple[str, str]]] = {}
    for table, column, data_type in rows:
        out.setdefault(table, []).append((column, data_type))
    return out


def test_every_migration_is_applied_on_both(contract_dbs) -> None:
    shipped = {m.version: m.checksum for m in available()}
    for url in contract_dbs.urls.values():
        with psycopg.connect(url, autocommit=True) as conn:
            assert applied_migrations(conn) == shipped
        assert migrate(url) == []  # idempotent: nothing left to apply


def test_contract_relations_have_the_same_columns_and_types(contract_dbs) -> None:
    pg, ts = _columns(contract_dbs.postgres), _columns(contract_dbs.timescale)
    assert sorted(pg) == sorted(CONTRACT)
    assert pg == ts
    kinds = fetch(
        contract_dbs.timescale,
        """
        SELECT view_name, materialized_only FROM timescaledb_information.continuous_aggregates
         ORDER BY 1""",
    )
    assert kinds == sorted((name, False) for name in ROLLUPS)


def test_timescale_hierarchy_is_the_one_the_store_follows(contract_dbs) -> None:
    """Each continuous aggregate reads the source that rollups.LEVELS names for PostgreSQL."""
    views = dict(
        fetch(
            contract_dbs.timescale,
            "SELECT view_name, view_definition FROM timescaledb_information.continuous_aggregates",
        )
    )
    for level in LEVELS:
        assert re.search(rf"FROM (\w+\.)?{level.source}\b", views[level.name]), level.name


@pytest.mark.parametrize("name", ROLLUPS)
def test_rollup_equals_numpy_truth_on_both(contract_dbs, name: str) -> None:
    expected = _truth_rows(name, contract_dbs)
    assert len(expected) > 20
    pg = dump(contract_dbs.postgres, name)
    assert same_rows(pg, expected) is None, f"postgres {name}: {same_rows(pg, expected)}"
    ts = dump(contract_dbs.timescale, name)
    assert same_rows(ts, expected) is None, f"timescale {name}: {same_rows(ts, expected)}"
    realtime = contract_dbs.realtime[name]
    assert same_rows(realtime, expected) is None, f"real-time {name}"


@pytest.mark.parametrize("name", sorted(QUERIES))
def test_query_answers_the_same_on_both(contract_dbs, name: str) -> None:
    pg = fetch(contract_dbs.postgres, QUERIES[name], PARAMS)
    ts = fetch(contract_dbs.timescale, QUERIES[name], PARAMS)
    assert pg, f"{name} returns nothing on the seed: it would prove nothing"
    assert same_rows(pg, ts) is None, f"{name}: {same_rows(pg, ts)}"


def test_council_means_are_exact_means_of_the_raw_readings(contract_dbs) -> None:
    raw = [
        r
        for r in contract_dbs.seed.readings
        if r.council == PARAMS["council"] and r.metric == PARAMS["metric"]
    ]
    by_hour: dict = {}
    for r in raw:
        hour = r.time.replace(minute=0, second=0, microsecond=0)
        by_hour.setdefault(hour, []).append(r.value)
    expected = [
        (h, sum(v) / len(v), len(v))
        for h, v in sorted(by_hour.items())
        if PARAMS["start"] <= h < PARAMS["stop"]
    ]
    got = [
        (t, mean, n)
        for t, mean, _sensors, n in fetch(
            contract_dbs.timescale, QUERIES["council_hourly_mean"], PARAMS
        )
    ]
    assert same_rows(got, expected) is None
