"""Late readings (pure): replay from a snapshot equals in-order processing of every reading."""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import timedelta

import pytest

from rules.alerts import AlertStatus, Severity, Signal, apply_signal
from rules.detectors import HealthDetector, WasteDetector, run_detectors, stale_signals
from rules.detectors.base import Detector, JsonDict
from rules.detectors.replay import Replay, new_signals, replay
from rules.detectors.runner import Snapshot, StateKey
from rules.thresholds import DEFAULTS, Thresholds
from sensors.catalogue import KINDS
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
    said,
    sig,
    truth,
    ts,
)

# --------------------------------------------------------------------------------------
# replay


class Arrival:
    """What the engine has after the early readings: states, snapshots and signals said."""

    def __init__(self, det: Detector, early: Sequence[Reading], every: float, seed: int) -> None:
        self.det, self.every = det, every
        self.states: dict[StateKey, JsonDict] = {}
        self.snaps: dict[StateKey, dict[float, JsonDict | None]] = {}
        self.said: list[Signal] = []
        self.anchors: dict[StateKey, float] = {}  # the last replay's snapshot time
        rng = random.Random(seed)
        rest = ordered(early)
        while rest:  # in time order, in batches of random size
            n = rng.randint(1, 20)
            assert self.arrive(rest[:n], ()) == {}
            rest = rest[n:]

    def keep(self, snapshots: Iterable[Snapshot]) -> None:
        for snap in snapshots:
            self.snaps.setdefault(snap.key, {})[snap.t] = snap.state

    def arrive(self, batch: Sequence[Reading], stored: Sequence[Reading]) -> dict[StateKey, Replay]:
        """A batch as the engine takes it: in-order groups stepped, late ones replayed from
        the latest snapshot at or before their first reading (``stored``: every reading)."""
        run = run_detectors([self.det], self.states, batch, Thresholds(), NOW, every=self.every)
        self.states.update(run.states)
        self.keep(run.snapshots)
        self.said += run.signals
        out = {}
        for key, group in run.late.items():
            kept = sorted(self.snaps[key])
            t0 = self.anchors[key] = max(t for t in kept if t <= ts(group[0]))
            result = replay(
                self.det,
                key,
                Snapshot(key, t0, self.snaps[key][t0]),
                [t for t in kept if t > t0],
                [r for r in stored if r.sensor_id == key[0] and ts(r) >= t0],
                {r.key for r in group},
                self.states[key],
                DEFAULTS,
                NOW,
                every=self.every,
            )
            self.states[key] = result.state
            self.keep(result.snapshots)
            self.said += new_signals(result.signals, result.already)
            out[key] = result
        return out

    def late(self, batch: Sequence[Reading], stored: Sequence[Reading]) -> dict[StateKey, Replay]:
        """A batch of late readings: every sensor's group is replayed, none stepped."""
        said_before = len(self.said)
        out = self.arrive(batch, stored)
        assert {k[0] for k in out} == {r.sensor_id for r in batch}
        assert len(self.said) - said_before == sum(
            len(new_signals(r.signals, r.already)) for r in out.values()
        )
        return out


def check_replay(det: Detector, stream: list[Reading], late: list[Reading], every: float) -> None:
    """Everything the replay gives equals what in-order processing would have given."""
    ref_state, ref_signals = truth(det, stream)
    late_keys = {r.key for r in late}
    early = [r for r in stream if r.key not in late_keys]
    arrival = Arrival(det, early, every, seed=len(stream))
    before = list(arrival.said)
    early_signals = truth(det, early)[1]
    assert said(before) == said(early_signals)

    results = arrival.late(late, stream)
    assert len(results) == 1
    ((key, result),) = results.items()
    t0 = arrival.anchors[key]

    assert bare(result.state) == bare(ref_state)
    assert result.state["t"] == max(ts(r) for r in stream)
    # what it says from the anchor on, with and without the late readings
    assert said(result.signals) == said(s for s in ref_signals if s.at.timestamp() >= t0)
    assert said(result.already) == said(s for s in early_signals if s.at.timestamp() >= t0)
    # every snapshot kept now covers exactly the readings (late ones too) before its time
    for t, state in arrival.snaps[key].items():
        ref, _ = truth(det, [r for r in stream if ts(r) < t])
        assert bare(state) == bare(ref), t - EPOCH0
    # this batch only adds signals, so what was said, plus the new ones, is the in-order set
    assert said(before) + said(new_signals(result.signals, result.already)) == said(ref_signals)
    assert said(arrival.said) == said(ref_signals)


def test_a_late_fill_reading_over_the_threshold_replays_into_the_collection_alert() -> None:
    fills = [40, 55, 70, 75, 90, 78, 85, 82, 40, 30, 20, 60, 81, 70]
    stream = [rd("bin-1", "waste_bin", "fill_level", v, i * 900) for i, v in enumerate(fills)]
    late = [stream[4]]  # the 90 % reading at 1 h arrives after all the others
    early_signals = truth(WasteDetector(), [r for r in stream if r is not stream[4]])[1]
    in_order = truth(WasteDetector(), stream)[1]
    # the late reading matters: on time it opens the alert an hour and a half earlier
    assert [(s.active, (s.at - T0).total_seconds()) for s in in_order][:2] == [
        (True, 4 * 900.0),
        (True, 6 * 900.0),
    ]
    assert (early_signals[0].active, early_signals[0].at) == (True, stream[6].time)
    check_replay(WasteDetector(), stream, late, every=1800.0)


def test_a_late_reading_completing_a_flatline_run_replays_into_the_flatline() -> None:
    n = int(DEFAULTS["health.flatline_count"])
    values = [10.0, 11.0] + [12.0] * n + [13.0, 14.0]
    stream = [rd("aq-1", "air_quality", "no2", v, i * 150) for i, v in enumerate(values)]
    late = [stream[6]]  # without it the run is one short
    assert not truth(HealthDetector(), [r for r in stream if r is not stream[6]])[1]
    assert [(s.active, s.at) for s in truth(HealthDetector(), stream)[1]] == [
        (True, stream[n + 1].time),
        (False, stream[n + 2].time),
    ]
    check_replay(HealthDetector(), stream, late, every=600.0)


@pytest.mark.parametrize("seed", [11, 12, 13, 14])
def test_replay_equals_in_order_processing_for_generated_streams(seed: int) -> None:
    """A random stretch of readings arrives after later ones (signals compared from the
    anchor on; the replayed state and snapshots compared everywhere)."""
    rng = random.Random(seed)
    for det, stream in ((WasteDetector(), bin_stream(seed)), (HealthDetector(), aq_stream(seed))):
        times = sorted({ts(r) for r in stream})
        lo = rng.randrange(1, len(times) - 20)
        window = set(times[lo : lo + rng.randint(2, 15)])
        late = [r for r in stream if ts(r) in window and rng.random() < 0.6] or [
            next(r for r in stream if ts(r) in window)
        ]
        if seed % 2 == 0:  # the batch also brings the newest readings: one group, replayed
            late += [r for r in stream if ts(r) == times[-1]]
        ref_state, ref_signals = truth(det, stream)
        keys = {r.key for r in late}
        early = [r for r in stream if r.key not in keys]
        arrival = Arrival(det, early, every=900.0, seed=seed)
        results = arrival.late(late, stream)
        ((key, result),) = results.items()
        t0 = arrival.anchors[key]
        assert bare(result.state) == bare(ref_state)
        assert result.state["t"] == times[-1]
        assert said(result.signals) == said(s for s in ref_signals if s.at.timestamp() >= t0)
        early_signals = truth(det, early)[1]
        assert said(result.already) == said(s for s in early_signals if s.at.timestamp() >= t0)
        for t, state in arrival.snaps[key].items():
            assert bare(state) == bare(truth(det, [r for r in stream if ts(r) < t])[0])


def test_a_second_late_batch_replays_from_the_snapshots_the_first_replay_rebuilt() -> None:
    det = WasteDetector()
    stream = bin_stream(21, hours=8)
    times = sorted({ts(r) for r in stream})
    first = [r for r in stream if ts(r) in set(times[40:44]) and r.metric == "fill_level"]
    second = [r for r in stream if ts(r) in set(times[20:60:7]) and r.metric == "temperature"]
    keys = {r.key for r in first + second}
    arrival = Arrival(det, [r for r in stream if r.key not in keys], every=1200.0, seed=21)
    arrival.late(first, [r for r in stream if r.key not in {x.key for x in second}])
    arrival.late(second, stream)
    ref_state, _ = truth(det, stream)
    assert bare(arrival.states[("bin-1", "waste")]) == bare(ref_state)
    for t, state in arrival.snaps[("bin-1", "waste")].items():
        assert bare(state) == bare(truth(det, [r for r in stream if ts(r) < t])[0])


def test_replay_snapshots_continue_the_cadence_from_the_anchor() -> None:
    det = WasteDetector()
    stream = ordered(bin_stream(31, hours=4))
    late = [r for r in stream if r.metric == "fill_level" and ts(r) == EPOCH0 + 3900]
    early = [r for r in stream if r not in late]
    arrival = Arrival(det, early, every=900.0, seed=31)
    key = ("bin-1", "waste")
    t0 = max(t for t in arrival.snaps[key] if t <= EPOCH0 + 3900)
    assert t0 > EPOCH0  # not the first snapshot: its state carries readings
    history = [r for r in stream if ts(r) >= t0]
    batch = {r.key for r in late}
    anchor = Snapshot(key, t0, arrival.snaps[key][t0])
    args = (history, batch, arrival.states[key], DEFAULTS, NOW)
    result = replay(det, key, anchor, [], *args, every=900.0)
    assert [s.t for s in result.snapshots] == expected_snapshot_times(history, 900.0, since=t0)
    for snap in result.snapshots:
        assert bare(snap.state) == bare(truth(det, [r for r in stream if ts(r) < snap.t])[0])
    later = [t for t in arrival.snaps[key] if t > t0]
    kept = replay(det, key, anchor, later, *args, every=900.0)
    assert set(later) <= {s.t for s in kept.snapshots}
    assert kept.state["cp"] == max(s.t for s in kept.snapshots)
    assert bare(kept.state) == bare(result.state) == bare(truth(det, stream)[0])


def test_readings_arriving_for_a_stale_sensor_clear_the_ticks_mark_in_a_replay() -> None:
    det = HealthDetector()
    interval = KINDS["waste_bin"].expected_interval_s
    stream = [rd("bin-1", "waste_bin", "battery", 90.0, i * interval) for i in range(4)]
    late = [stream[1]]
    arrival = Arrival(det, [r for r in stream if r not in late], every=2 * interval, seed=1)
    key = ("bin-1", "health")
    tick = T0 + timedelta(seconds=3 * interval + 3 * interval + 1)
    changed, raised = stale_signals([("bin-1", arrival.states[key])], Thresholds(), tick)
    assert [(s.rule, s.active, s.at) for s in raised] == [("sensor_stale", True, tick)]
    arrival.states[key] = changed["bin-1"]
    alert = replace(apply_signal(None, raised[0]), id=12)  # type: ignore[type-var]

    result = arrival.late(late, stream)[key]
    assert result.state["active"]["sensor_stale"] is False
    assert result.state["t"] == ts(stream[-1])  # still silent since then
    said_now = new_signals(result.signals, result.already)
    assert [(s.rule, s.active, s.at) for s in said_now] == [("sensor_stale", False, late[0].time)]
    # the clear is older than the tick's alert: it resolves it, at the time it opened
    done = apply_signal(alert, said_now[0])
    assert done is not None and (done.state, done.resolved_at) == (AlertStatus.RESOLVED, tick)


def test_a_reading_at_the_last_seen_time_arriving_in_the_next_batch_changes_nothing() -> None:
    n = int(DEFAULTS["health.flatline_count"])
    end = n + 3  # at `end` NO2 moves (its flatline ends) as PM10's run reaches n
    stream = []
    for i in range(end + 1):
        stream.append(rd("aq-1", "air_quality", "no2", 12.0 if i < end else 13.0, i * 150))
        stream.append(rd("aq-1", "air_quality", "pm10", 20.0 if i > end - n else 5.0, i * 150))
    det = HealthDetector()
    ref_state, ref_signals = truth(det, stream)
    # in (time, metric) order, no2 then pm10 at `end`: a clear, then a new flatline
    flat = [(s.active, s.at) for s in ref_signals if s.rule == "sensor_flatline"]
    assert flat[-2:] == [(False, stream[-1].time), (True, stream[-1].time)]
    # one reading per message: the batch ends between pm10 and no2 of the same time
    moved = stream[-2]
    assert moved.metric == "no2" and moved.time == stream[-1].time
    arrival = Arrival(det, [r for r in stream if r is not moved], every=600.0, seed=7)
    arrival.arrive([moved], stream)
    assert said(arrival.said) == said(ref_signals)
    assert bare(arrival.states[("aq-1", "health")]) == bare(ref_state)


def test_new_signals_is_a_multiset_difference_on_rule_verdict_time_and_severity() -> None:
    a = sig(0)
    b = sig(15)
    crit = sig(15, severity=Severity.CRITICAL)
    other_details = replace(sig(0), details={"x": 1})
    assert new_signals([a, a, b], [a]) == [a, b]
    assert new_signals([a, b, crit], [other_details, b]) == [crit]
    assert new_signals([a], [sig(0, active=False)]) == [a]
    assert new_signals([b], [crit]) == [b]  # said at another severity: not the same
    assert new_signals([], [a]) == []
