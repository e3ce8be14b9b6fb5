"""Late readings (pure): segmented stepping with snapshots, and late groups left unstepped."""

from __future__ import annotations

import random
from itertools import pairwise

import pytest

from rules.alerts import Signal
from rules.detectors import HealthDetector, WasteDetector, default_detectors, run_detectors
from rules.detectors.base import Detector, JsonDict
from rules.detectors.runner import Snapshot, step_segmented
from rules.thresholds import DEFAULTS, Thresholds
from sensors.reading import Reading
from tests.rules.late_helpers import (
    EPOCH0,
    NOW,
    T0,
    aq_stream,
    bare,
    bin_stream,
    expected_snapshot_times,
    ordered,
    rd,
    truth,
    ts,
)

# --------------------------------------------------------------------------------------
# step_segmented


@pytest.mark.parametrize(
    "det, stream",
    [
        (WasteDetector(), bin_stream(1)),
        (WasteDetector(), bin_stream(2)),
        (HealthDetector(), bin_stream(3)),
        (HealthDetector(), aq_stream(4)),
    ],
    ids=["waste-1", "waste-2", "health-bin", "health-aq"],
)
def test_segmented_step_equals_one_step_and_each_snapshot_covers_exactly_the_earlier_readings(
    det: Detector, stream: list[Reading]
) -> None:
    readings = ordered(stream)
    key = (readings[0].sensor_id, det.name)
    whole_state, whole_signals = truth(det, readings)
    assert whole_signals  # the stream exercises the rules

    state, signals, snaps = step_segmented(det, key, None, readings, DEFAULTS, NOW, every=600.0)

    assert signals == whole_signals
    assert state is not None and bare(state) == bare(whole_state)
    assert state["t"] == ts(readings[-1])
    assert state["cp"] == snaps[-1].t
    assert [s.t for s in snaps] == expected_snapshot_times(readings, 600.0)
    assert len(snaps) >= 6 * 3600 / 600 - 1
    assert all(b.t - a.t >= 600.0 for a, b in pairwise(snaps))
    assert snaps[0].state is None and snaps[0].t == ts(readings[0])
    for snap in snaps:
        assert snap.key == key
        before = [r for r in readings if ts(r) < snap.t]
        ref, _ = truth(det, before)
        assert bare(snap.state) == bare(ref), snap.t
        if before:
            assert snap.state is not None and snap.state["t"] == ts(before[-1])


def test_forced_times_get_a_snapshot_at_exactly_that_time() -> None:
    det = WasteDetector()
    readings = ordered(bin_stream(5, hours=3))
    key = ("bin-1", "waste")
    # between readings, on a reading, before the first one, and after the last one
    forced = [EPOCH0 + 1234.5, EPOCH0 + 3600.0, EPOCH0 - 50.0, EPOCH0 + 5 * 3600.0]
    _, signals, snaps = step_segmented(
        det, key, None, readings, DEFAULTS, NOW, every=1e9, forced=forced
    )
    assert signals == truth(det, readings)[1]
    at = {s.t: s.state for s in snaps}
    assert set(forced) <= set(at)
    for t in forced:
        ref, _ = truth(det, [r for r in readings if ts(r) < t])
        assert bare(at[t]) == bare(ref), t - EPOCH0
    assert at[EPOCH0 - 50.0] is None
    assert bare(at[EPOCH0 + 5 * 3600.0]) == bare(truth(det, readings)[0])


def test_segmented_steps_across_batches_snapshot_where_one_call_would() -> None:
    det = HealthDetector()
    readings = ordered(aq_stream(6, hours=4))
    key = ("aq-1", "health")
    _, whole_signals, whole_snaps = step_segmented(
        det, key, None, readings, DEFAULTS, NOW, every=900.0
    )
    rng = random.Random(6)
    state: JsonDict | None = None
    signals: list[Signal] = []
    snaps: list[Snapshot] = []
    i = 0
    while i < len(readings):
        n = rng.randint(1, 25)
        state, out, taken = step_segmented(
            det, key, state, readings[i : i + n], DEFAULTS, NOW, every=900.0
        )
        signals += out
        snaps += taken
        i += n
    assert signals == whole_signals
    assert [s.t for s in snaps] == [s.t for s in whole_snaps]
    assert [bare(s.state) for s in snaps] == [bare(s.state) for s in whole_snaps]


# --------------------------------------------------------------------------------------
# run_detectors


def test_a_group_older_than_what_its_detector_saw_is_late_and_not_stepped() -> None:
    dets = default_detectors()
    th = Thresholds()
    early = [rd("bin-1", "waste_bin", "fill_level", v, i * 900) for i, v in enumerate([10, 20, 30])]
    early += [rd("aq-1", "air_quality", "no2", 30.0, i * 150) for i in range(3)]
    first = run_detectors(dets, {}, early, th, NOW, every=600.0)
    assert first.late == {}
    assert first.states[("bin-1", "waste")]["t"] == EPOCH0 + 1800
    assert {s.key for s in first.snapshots} >= {("bin-1", "waste"), ("bin-1", "health")}

    # bin-1: a fill of 90 % at 10 min (older than 30 min, already seen); aq-1: in order
    late_bin = [
        rd("bin-1", "waste_bin", "fill_level", 90.0, 600),
        rd("bin-1", "waste_bin", "fill_level", 95.0, 3600),
    ]
    fresh_aq = [rd("aq-1", "air_quality", "no2", 30.0, 450 + i * 150) for i in range(12)]
    out = run_detectors(dets, first.states, late_bin + fresh_aq, th, NOW, every=600.0)

    assert set(out.late) == {("bin-1", "waste"), ("bin-1", "health")}
    assert all(group == late_bin for group in out.late.values())
    assert not any(k[0] == "bin-1" for k in out.states)  # not stepped, states untouched
    assert not any(s.sensor_id == "bin-1" for s in out.signals)  # 90 % and 95 % said nothing
    assert not any(s.key[0] == "bin-1" for s in out.snapshots)
    # aq-1 was stepped: 15 equal NO2 values running is a flatline
    assert ("aq-1", "health") in out.states and ("aq-1", "statistical") in out.states
    assert out.states[("aq-1", "health")]["t"] == EPOCH0 + 450 + 11 * 150
    n = int(DEFAULTS["health.flatline_count"])
    flat = [(s.at - T0).total_seconds() for s in out.signals if s.rule == "sensor_flatline"]
    assert flat == [i * 150.0 for i in range(n - 1, 15)]
