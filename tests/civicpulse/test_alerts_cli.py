"""`civicpulse alerts list|ack|resolve` against a real database fed by the real pipeline."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from civicpulse.cli import app
from sensors.deadletter import DeadLetter
from sensors.reading import Reading, encode_reading
from storage import DeadLetterStore, ReadingStore, migrate
from stream_processors.pipeline import ReadingPipeline

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def fill(sensor: str, i: int, value: float) -> bytes:
    t = T0 + timedelta(minutes=15 * i)
    return encode_reading(
        Reading(
            sensor_id=sensor,
            council="aberdeen",
            kind="waste_bin",
            metric="fill_level",
            value=value,
            unit="%",
            time=t,
            received_at=t,
        )
    )


def cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, result.output


@pytest.mark.integration
def test_operators_list_acknowledge_and_resolve_alerts(fresh_db: str) -> None:
    migrate(fresh_db)
    pipeline = ReadingPipeline(ReadingStore(fresh_db))
    pipeline.process([fill("bin-1", i, v) for i, v in enumerate([40, 85, 90])])
    pipeline.process([fill("bin-2", i, v) for i, v in enumerate([81, 20])])  # opens, clears
    db = ["--database-url", fresh_db]

    code, out = cli("alerts", "list", "--json", *db)
    assert code == 0
    [live] = json.loads(out)
    assert (live["sensor_id"], live["rule"], live["state"], live["count"]) == (
        "bin-1",
        "bin_collection_needed",
        "open",
        2,
    )
    assert live["opened_at"] == (T0 + timedelta(minutes=15)).isoformat()
    code, out = cli("alerts", "list", "--state", "all", "--json", *db)
    assert {(a["sensor_id"], a["state"]) for a in json.loads(out)} == {
        ("bin-1", "open"),
        ("bin-2", "resolved"),
    }

    code, out = cli("alerts", "ack", str(live["id"]), "--by", "ops-1", "--json", *db)
    assert code == 0 and json.loads(out)["state"] == "acknowledged"
    code, out = cli("alerts", "ack", str(live["id"]), *db)
    assert code == 1 and "not open" in out
    pipeline.process([fill("bin-1", 3, 95)])  # a repeat keeps it acknowledged, counts it
    code, out = cli("alerts", "list", "--state", "acknowledged", "--json", *db)
    assert [(a["state"], a["count"]) for a in json.loads(out)] == [("acknowledged", 3)]

    code, out = cli("alerts", "resolve", str(live["id"]), "--json", *db)
    assert code == 0 and json.loads(out)["state"] == "resolved"
    code, out = cli("alerts", "resolve", "999999", *db)
    assert code == 1 and "no alert with id 999999" in out
    pipeline.process([fill("bin-1", 4, 96)])  # operator-resolved: a new alert, not a reopen
    code, out = cli("alerts", "list", "--json", *db)
    [new] = json.loads(out)
    assert new["id"] != live["id"] and new["count"] == 1


@pytest.mark.integration
def test_impossible_value_dead_letters_raise_one_health_alert_each_sensor(fresh_db: str) -> None:
    migrate(fresh_db)
    pipeline = ReadingPipeline(ReadingStore(fresh_db))
    letters = DeadLetterStore(fresh_db)
    bad = DeadLetter(
        "out_of_range",
        "fill_level value 250 is too large",
        b"{}",
        "civicpulse/aberdeen/waste_bin/bin-9",
        T0,
    )
    other = DeadLetter(
        "malformed_json", "not JSON", b"x", "civicpulse/aberdeen/waste_bin/bin-8", T0
    )
    letters.write([(bad, "t:1"), (other, "t:2"), (bad, "t:3")])
    assert len(pipeline.tick(T0 + timedelta(seconds=5))) == 1
    assert pipeline.tick(T0 + timedelta(seconds=10)) == []  # the watermark moved on
    code, out = cli("alerts", "list", "--json", "--database-url", fresh_db)
    assert code == 0
    [alert] = json.loads(out)
    assert (alert["sensor_id"], alert["rule"], alert["count"]) == (
        "bin-9",
        "sensor_impossible_value",
        2,
    )
    later = T0 + timedelta(hours=7)  # quiet for longer than the rule's 6 h: resolved
    [resolved] = pipeline.tick(later)
    assert resolved.state.value == "resolved"
