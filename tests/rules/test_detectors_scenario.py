"""The labelled anomaly scenario: deterministic, every rule labelled, labels round-trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from rules.alerts import RULES
from simulator.anomalies import ANOMALIES, ScenarioSpec, build_scenario
from simulator.anomaly_labels import labels_path, read_labels, write_labels
from simulator.recording import read_recording, write_recording

SMALL = ScenarioSpec(
    seed=5,
    sensors={"air_quality": 2, "waste_bin": 3, "energy_meter": 2},
    days={"air_quality": 2, "waste_bin": 4, "energy_meter": 4},
    counts={
        "no2_very_high": 1,
        "flatline": 1,
        "stale": 1,
        "impossible": 1,
        "fire": 1,
        "fill_drop": 1,
        "spike": 1,
        "register_reset": 1,
    },
)


def test_same_spec_same_scenario_and_labels_name_real_rules() -> None:
    a, b = build_scenario(SMALL), build_scenario(SMALL)
    assert [m.payload for m in a.messages] == [m.payload for m in b.messages]
    assert a.labels == b.labels
    assert {lb.rule for lb in a.labels} <= set(RULES)
    assert all(rule in RULES for _, _, rules, _ in ANOMALIES.values() for rule in rules)


def test_injected_faults_show_in_what_the_sensors_send() -> None:
    s = build_scenario(SMALL)
    stale = next(lb for lb in s.labels if lb.rule == "sensor_stale")
    gap = [
        m for m in s.messages if m.sensor_id == stale.sensor_id and stale.start < m.time < stale.end
    ]
    assert gap == []  # silent for the whole label
    no2 = [float(x.value) for m in s.messages for x in m.samples if x.metric == "no2"]
    assert max(no2) >= 601  # Very High NO2 really sent
    exceed = [lb for lb in s.labels if lb.rule == "no2_hourly_exceedance"]
    assert len(exceed) >= 2  # derived by numpy from the hourly means
    starts = sorted(m.t for m in s.messages)
    assert starts == [m.t for m in s.messages] and np.all(np.diff(starts) >= 0)


def test_labels_and_recording_round_trip_beside_each_other(tmp_path: Path) -> None:
    s = build_scenario(SMALL)
    rec = tmp_path / "scenario.jsonl"
    write_recording(rec, s.messages)
    assert write_labels(labels_path(rec), s.labels) == len(s.labels)
    assert labels_path(rec).name == "scenario.jsonl.labels.jsonl"
    assert read_labels(labels_path(rec)) == s.labels
    assert [m.payload for m in read_recording(rec)] == [m.payload for m in s.messages]
