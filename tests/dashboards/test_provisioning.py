"""Grafana provisioning: read-only datasource, dashboard provider, alert rules, contact point."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml

from dashboards import PROVISIONING_DIR
from dashboards import querycheck as q
from dashboards.dataquery import DATASOURCE_TYPE, DATASOURCE_UID
from tests.dashboards.panel_runner import context
from tests.dashboards.seed import Seeded

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def load(relative: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((PROVISIONING_DIR / relative).read_text())
    return data


def rules() -> list[dict[str, Any]]:
    return [r for g in load("alerting/rules.yaml")["groups"] for r in g["rules"]]


def test_datasource_is_the_read_only_role_on_timescaledb() -> None:
    (source,) = load("datasources/civicpulse.yaml")["datasources"]
    assert (source["uid"], source["type"]) == (DATASOURCE_UID, DATASOURCE_TYPE)
    assert source["user"] == "civicpulse_reader"
    assert source["jsonData"]["timescaledb"] is True
    assert source["secureJsonData"]["password"] == "${GRAFANA_DB_PASSWORD}"


def test_every_environment_reference_is_set_on_the_grafana_service() -> None:
    env = COMPOSE["services"]["grafana"]["environment"]
    for path in PROVISIONING_DIR.rglob("*.yaml"):
        text = path.read_text()
        for name in re.findall(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)", text):
            assert name in env, f"{path.name} reads ${name}, which Grafana's service lacks"


def test_dashboard_provider_reads_the_mounted_json() -> None:
    (provider,) = load("dashboards/civicpulse.yaml")["providers"]
    assert provider["type"] == "file"
    mounts = {v.split(":")[1]: v.split(":")[0] for v in COMPOSE["services"]["grafana"]["volumes"]}
    assert mounts[provider["options"]["path"]] == "./dashboards/json"


def test_alert_rules_are_complete_and_critical_ones_reach_the_contact_point() -> None:
    assert rules()
    for rule in rules():
        refs = {d["refId"] for d in rule["data"]}
        assert rule["condition"] in refs
        assert rule["labels"]["severity"] in ("critical", "warning")
        for d in rule["data"]:
            assert d["datasourceUid"] in (DATASOURCE_UID, "__expr__")
            if "expression" in d["model"]:
                assert d["model"]["expression"] in refs
    points = load("alerting/contact-points.yaml")
    names = {c["name"] for c in points["contactPoints"]}
    (policy,) = points["policies"]
    assert policy["receiver"] in names
    matcher = ["severity", "=", "critical"]
    critical = [r for r in policy["routes"] if matcher in r["object_matchers"]]
    assert critical and critical[0]["receiver"] in names
    (receiver,) = points["contactPoints"][0]["receivers"]
    assert receiver["settings"]["url"] == "${GRAFANA_ALERT_WEBHOOK_URL}"


@pytest.fixture(scope="module")
def conn(seeded: Seeded) -> Iterator[psycopg.Connection]:
    with psycopg.connect(seeded.url) as connection:
        yield connection


@pytest.mark.integration
@pytest.mark.parametrize("rule", rules(), ids=lambda r: r["uid"])
def test_alert_rule_queries_return_one_number_as_the_reader(
    rule: dict[str, Any], conn: psycopg.Connection, seeded: Seeded
) -> None:
    for data in rule["data"]:
        if data["datasourceUid"] != DATASOURCE_UID:
            continue
        sql = data["model"]["rawSql"]
        assert "$" not in sql, "Grafana would read a dollar sign as an environment variable"
        result = q.run(conn, q.expand(sql, {}, frozenset(), context(seeded.now, True)))
        assert len(result.rows) == 1 and len(result.columns) == 1
        assert result.columns[0][1] in q.NUMERIC
