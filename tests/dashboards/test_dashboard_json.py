"""The committed dashboard JSON: current with the code, stable uids, valid for the SDK's models."""

from __future__ import annotations

import json
from typing import Any

import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import Dashboard

import dashboards
from dashboards import querycheck as q
from dashboards.dataquery import DATASOURCE_TYPE, DATASOURCE_UID
from tests.dashboards.panel_runner import BOARDS

UIDS = [
    "civicpulse-operations",
    "civicpulse-air-quality",
    "civicpulse-waste",
    "civicpulse-energy",
    "civicpulse-fleet-health",
]
PANEL_TYPES = {"row", "timeseries", "table", "stat", "bargauge", "geomap", "state-timeline"}


def test_five_dashboards_with_stable_uids_are_committed() -> None:
    assert list(dashboards.BUILDERS) == UIDS
    assert sorted(BOARDS) == sorted(UIDS)
    for uid, board in BOARDS.items():
        assert board["uid"] == uid


@pytest.mark.parametrize("uid", UIDS)
def test_committed_json_is_what_the_code_generates(uid: str) -> None:
    committed = (dashboards.JSON_DIR / f"{uid}.json").read_text(encoding="utf-8")
    assert committed == dashboards.to_text(dashboards.render(uid)), (
        "dashboards/json is stale: run `civicpulse dashboards export`"
    )


def without_builtin_marker(board: dict[str, Any]) -> dict[str, Any]:
    """The board less Grafana's ``builtIn`` annotation flag, which the SDK's model lacks."""
    copy = json.loads(json.dumps(board))
    for annotation in copy["annotations"]["list"]:
        annotation.pop("builtIn", None)
    return copy


@pytest.mark.parametrize("uid", UIDS)
def test_json_round_trips_through_the_sdk_models(uid: str) -> None:
    board = BOARDS[uid]
    model = Dashboard.from_json(board)
    again = json.loads(json.dumps(model, cls=JSONEncoder))
    assert again == without_builtin_marker(board)
    assert [a.get("builtIn") for a in board["annotations"]["list"]] == [1]
    assert board["links"][0]["tags"] == ["civicpulse"]


def test_round_trip_check_notices_a_change() -> None:
    board = json.loads(json.dumps(BOARDS["civicpulse-waste"]))
    board["panels"][1]["gridPos"] = {"h": "tall"}
    again = json.loads(json.dumps(Dashboard.from_json(board), cls=JSONEncoder))
    assert again != without_builtin_marker(BOARDS["civicpulse-waste"])


@pytest.mark.parametrize("uid", UIDS)
def test_panels_are_complete(uid: str) -> None:
    board = BOARDS[uid]
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for panel in board["panels"]:
        assert panel["type"] in PANEL_TYPES
        if panel["type"] == "row":
            continue
        assert panel["title"] and panel["description"]
        assert panel["datasource"] == {"type": DATASOURCE_TYPE, "uid": DATASOURCE_UID}
        assert panel["options"], f"{panel['title']}: options must not be empty"
        assert panel["targets"], f"{panel['title']}: no query"
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == DATASOURCE_UID and target["rawQuery"]
        if panel["type"] in ("timeseries", "state-timeline"):
            assert all(t["format"] == "time_series" for t in panel["targets"])


@pytest.mark.parametrize("uid", UIDS)
def test_variables_filter_council_ward_site_and_kind(uid: str) -> None:
    board: dict[str, Any] = BOARDS[uid]
    names = [v["name"] for v in q.variables(board)]
    assert names[0] == "council" and names[-2:] == ["ward", "site"]
    if uid in ("civicpulse-operations", "civicpulse-fleet-health"):
        assert "kind" in names
    for variable in q.variables(board):
        assert variable["multi"] and variable["includeAll"]
        assert variable["datasource"]["uid"] == DATASOURCE_UID
    for query in q.panel_queries(board):
        uses_sensors = "sensor_id IN ($site)" in query.raw_sql
        assert uses_sensors or "dead_letters" in query.raw_sql, query.title
