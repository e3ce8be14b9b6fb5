"""Late readings (pure): segmented stepping with snapshots, replay from a snapshot, alert
episodes re-derived from replayed signals and reconciled with the stored ones."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import pytest

from rules.alert_history import (
    Reconciled,
    alert_from_json,
    alert_to_json,
    fold,
    latest_before,
    reconcile,
)
from rules.alerts import (
    Alert,
    AlertStatus,
    Severity,
    Signal,
    apply_signal,
    is_new_episode,
    policy_for,
)
from rules.detectors import (
    HealthDetector,
    WasteDetector,
    default_detectors,
    run_detectors,
    stale_signals,
)
from rules.detectors.base import Detector, JsonDict
from rules.detectors.replay import Replay, new_signals, replay
from rules.detectors.runner import Snapshot, StateKey, step_segmented
from rules.thresholds import DEFAULTS, Thresholds
from sensors.catalogue import KINDS
from sensors.reading import Reading

T0 = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)  # a Monday
EPOCH0 = T0.timestamp()
NOW = T0 + timedelta(days=2)  # the engine's clock: detectors must not depend on it here


def rd(sensor: str, kind: str, metric: str, value: float, seconds: float) -> Reading:
    t = T0 + timedelta(seconds=seconds)
    unit = KINDS[kind].metrics[metric].unit
    return Reading(
        sensor_id=sensor,
        council="aberdeen",
        kind=kind,
        metric=metric,
        value=value,
        unit=unit,
        time=t,
        received_at=t,
    )


def ordered(readings: Iterable[Reading]) -> list[Reading]:
    """The order a detector sees a sensor's readings in (as ``by_sensor`` sorts them)."""
    return sorted(readings, key=lambda r: (r.time, r.metric))


def ts(r: Reading) -> float:
    return r.time.timestamp()


def bare(state: JsonDict | None) -> JsonDict | None:
    """A state without the runner's bookkeeping (last event time seen, last snapshot time)."""
    if state is None:
        return None
    return {k: v for k, v in state.items() if k not in ("t", "tm", "cp")}


def said(signals: Iterable[Signal]) -> Counter[tuple[str, bool, datetime]]:
    return Counter((s.rule, s.active, s.at) for s in signals)


def truth(det: Detector, readings: Sequence[Reading]) -> tuple[JsonDict | None, list[Signal]]:
    """One plain step over every reading in event-time order: the reference result."""
    if not readings:
        return None, []
    return det.step(None, ordered(readings), DEFAULTS, NOW)


def bin_stream(seed: int, hours: float = 6.0, step: float = 300.0) -> list[Reading]:
    """A waste bin: fill rising and emptied, temperature with hot spells, tilt, battery."""
    rng = random.Random(seed)
    out = []
    fill = 40.0
    for i in range(int(hours * 3600 / step)):
        t = i * step
        fill = 5.0 if fill > 95 else fill + rng.uniform(0, 6)
        temp = rng.choice([12.0, 13.0, 14.0, 40.0, 70.0]) if i % 7 == 3 else 12.0 + (i % 3)
        out.append(rd("bin-1", "waste_bin", "fill_level", round(fill, 1), t))
        out.append(rd("bin-1", "waste_bin", "temperature", temp, t))
        out.append(rd("bin-1", "waste_bin", "battery", [22.0, 18.0, 14.0, 21.0][(i // 5) % 4], t))
        if i % 4 == 0:
            out.append(rd("bin-1", "waste_bin", "tilt", float(rng.random() < 0.3), t))
    return out


def aq_stream(seed: int, hours: float = 6.0, step: float = 150.0) -> list[Reading]:
    """An air-quality monitor whose NO2 sticks at one value for long runs (flatlines)."""
    rng = random.Random(seed)
    out = []
    value = 30.0
    for i in range(int(hours * 3600 / step)):
        if rng.random() < 0.06:
            value = float(rng.randint(20, 40))
        out.append(rd("aq-1", "air_quality", "no2", value, i * step))
        out.append(rd("aq-1", "air_quality", "humidity", 60.0 + rng.gauss(0, 2), i * step))
    return out


# --------------------------------------------------------------------------------------
# step_segmented


def expected_snapshot_times(
    readings: Sequence[Reading], every: float, since: float | None = None
) -> list[float]:
    """Independent: the first reading ever (none if a snapshot was taken ``since``), then
    each first reading at or after the previous snapshot + every."""
    times: list[float] = [] if since is None else [since]
    for r in readings:
        t = ts(r)
        if not times or t >= times[-1] + every:
            times.append(t)
    return times if since is None else times[1:]


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


# --------------------------------------------------------------------------------------
# alert episodes


def sig(
    minutes: float,
    active: bool = True,
    rule: str = "bin_collection_needed",
    severity: Severity | None = None,
) -> Signal:
    return Signal(
        "bin-1", "aberdeen", "waste_bin", rule, active, T0 + timedelta(minutes=minutes), severity
    )


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def episode(
    opened: float,
    seen: float,
    resolved: float | None = None,
    *,
    id_: int | None = None,
    count: int = 1,
    flaps: int = 0,
    acked: float | None = None,
    rule: str = "bin_collection_needed",
    **kw: Any,
) -> Alert:
    state = (
        AlertStatus.RESOLVED
        if resolved is not None
        else (AlertStatus.ACKNOWLEDGED if acked is not None else AlertStatus.OPEN)
    )
    return Alert(
        id=id_,
        council="aberdeen",
        sensor_id="bin-1",
        site="bin-1",
        kind="waste_bin",
        rule=rule,
        severity=kw.pop("severity", policy_for(rule).severity),
        state=kw.pop("state", state),
        opened_at=at(opened),
        last_seen_at=at(seen),
        count=count,
        flaps=flaps,
        acknowledged_at=at(acked) if acked is not None else None,
        resolved_at=at(resolved) if resolved is not None else None,
        resolved_by="auto" if resolved is not None else None,
        **kw,
    )


def test_fold_builds_episodes_with_flaps_and_new_episodes_in_event_time_order() -> None:
    window = policy_for("bin_collection_needed").reopen_within_s / 60
    assert window == 60
    signals = [
        sig(0),
        sig(15),
        sig(30, active=False),
        sig(70),  # 40 min after the clear: the same alert re-opens (a flap)
        sig(90, active=False),
        sig(90 + window + 30),  # past the window: a new episode
        sig(200),
    ]
    shuffled = signals[::-1]  # fold orders them itself
    assert fold(None, shuffled) == [
        episode(0, 70, 90, count=3, flaps=1),
        episode(180, 200, count=2),
    ]
    assert fold(None, []) == []
    assert fold(None, [sig(5, active=False)]) == []  # a clear with nothing open
    assert fold(None, [sig(10, active=False), sig(0)]) == [episode(0, 0, 10)]


def test_fold_applies_a_clear_before_an_active_signal_at_the_same_time() -> None:
    """As apply_signals orders them: resolved at 30, then re-opened at 30 (a flap)."""
    signals = [sig(0), sig(30), sig(30, active=False)]
    assert fold(None, signals) == [episode(0, 30, count=2, flaps=1)]
    assert fold(None, signals[::-1]) == [episode(0, 30, count=2, flaps=1)]


def test_fold_continues_a_stored_anchor_and_a_snapshot_anchor_alike() -> None:
    stored = episode(-30, -15, id_=5, count=2)
    signals = [sig(10), sig(20, active=False), sig(400)]
    expected = [
        episode(-30, 10, 20, id_=5, count=3),
        episode(400, 400),
    ]
    assert fold(stored, signals) == expected
    # the same anchor as a snapshot keeps it (no id): still one episode continued, then a new one
    anchor = alert_from_json(alert_to_json(stored))
    assert anchor.id is None
    assert fold(anchor, signals) == [replace(expected[0], id=None), expected[1]]
    # a resolved anchor with no signals is returned as is
    assert fold(expected[0], []) == [expected[0]]


def test_latest_before_applies_only_the_signals_before_the_time() -> None:
    signals = [sig(0), sig(15), sig(30, active=False), sig(200)]
    assert latest_before(None, signals, at(0).timestamp()) is None
    assert latest_before(None, signals, at(16).timestamp()) == episode(0, 15, count=2)
    assert latest_before(None, signals, at(30).timestamp()) == episode(0, 15, count=2)
    assert latest_before(None, signals, at(31).timestamp()) == episode(0, 15, 30, count=2)
    assert latest_before(None, signals, at(201).timestamp()) == episode(200, 200)


def test_reconcile_pairs_overlapping_episodes_inserts_and_deletes() -> None:
    stored = [
        episode(0, 20, 30, id_=1, count=3, acked=5),  # -> paired with a longer one
        episode(100, 110, 120, id_=2),  # no longer supported, not acknowledged -> deleted
        episode(200, 205, 210, id_=3, acked=201),  # not supported, acknowledged -> kept
        episode(300, 320, id_=4, count=2, acked=305),  # live, acknowledged -> paired
    ]
    derived = [
        episode(-10, 35, 45, count=5),
        episode(150, 150, 160),  # new
        episode(290, 330, count=4),
    ]
    plan = reconcile(stored, derived)
    assert plan.updates == [
        (stored[0], replace(derived[0], id=1, acknowledged_at=at(5))),
        (
            stored[3],
            replace(derived[2], id=4, acknowledged_at=at(305), state=AlertStatus.ACKNOWLEDGED),
        ),
    ]
    assert plan.inserts == [derived[1]]
    assert plan.deletes == [stored[1]]
    assert plan


def test_reconcile_of_the_same_episodes_writes_nothing_and_of_none_inserts_all() -> None:
    stored = [episode(0, 20, 30, id_=1, count=3), episode(100, 120, id_=2, count=2)]
    derived = [
        replace(stored[0], id=None, details={"fill_pct": 85.0}),
        replace(stored[1], id=None),
    ]
    same = reconcile(stored, derived)
    assert same == Reconciled() and not same
    assert reconcile([], derived) == Reconciled(inserts=derived)
    assert reconcile(stored, []) == Reconciled(deletes=stored)


def test_alert_json_round_trip_keeps_everything_but_the_id() -> None:
    # the id is written (webhooks, CLI) but a snapshot's episode is re-derived without it
    alert = replace(
        episode(0, 20, 30, id_=9, count=3, flaps=1, acked=5, severity=Severity.CRITICAL),
        details={"fill_pct": 91.5, "nested": {"a": [1, 2]}},
    )
    doc = alert_to_json(alert)
    assert doc["id"] == 9 and doc["opened_at"] == "2026-03-02T00:00:00+00:00"
    assert alert_from_json(doc) == replace(alert, id=None)
    live = episode(0, 20)
    assert alert_from_json(alert_to_json(live)) == live


# --------------------------------------------------------------------------------------
# apply_signal with late signals


def test_an_older_active_signal_moves_a_live_alerts_opening_earlier() -> None:
    alert = episode(60, 90, id_=3, count=2)
    after = apply_signal(alert, sig(30))
    assert after == replace(alert, opened_at=at(30), count=3)  # last seen stays the latest
    assert after is not None and not is_new_episode(alert, after)
    newer = apply_signal(alert, sig(120))
    assert newer == replace(alert, last_seen_at=at(120), count=3)


def test_a_stale_clear_older_than_last_seen_still_resolves_a_wall_clock_alert() -> None:
    assert policy_for("sensor_stale").wall_clock
    stale = episode(100, 100, id_=8, rule="sensor_stale")  # raised by the tick at 100
    # a late reading from before the tick clears it: resolved no earlier than it opened
    out = apply_signal(stale, sig(50, active=False, rule="sensor_stale"))
    assert out == replace(
        stale, state=AlertStatus.RESOLVED, resolved_at=at(100), resolved_by="auto"
    )
    later = apply_signal(stale, sig(150, active=False, rule="sensor_stale"))
    assert later is not None and later.resolved_at == at(150)


def test_a_condition_clear_older_than_the_last_violation_is_ignored() -> None:
    assert not policy_for("bin_collection_needed").wall_clock
    alert = episode(0, 90, id_=2, count=4)
    assert apply_signal(alert, sig(60, active=False)) is None
    done = apply_signal(alert, sig(90, active=False))
    assert done is not None and (done.state, done.resolved_at) == (AlertStatus.RESOLVED, at(90))


def test_is_new_episode() -> None:
    first = apply_signal(None, sig(0))
    assert first is not None and is_new_episode(None, first)
    closed = apply_signal(first, sig(5, active=False))
    assert closed is not None and closed.count == 1 and not is_new_episode(first, closed)
    repeat = apply_signal(first, sig(10))
    assert repeat is not None and not is_new_episode(first, repeat)
    resolved = apply_signal(repeat, sig(20, active=False))
    assert resolved is not None
    flap = apply_signal(resolved, sig(30))
    assert flap is not None and flap.flaps == 1 and not is_new_episode(resolved, flap)
    new = apply_signal(resolved, sig(20 + 61))
    assert new is not None and is_new_episode(resolved, new)
    stored = replace(resolved, id=4)
    assert is_new_episode(stored, replace(new, id=None))
    assert not is_new_episode(stored, apply_signal(stored, sig(30)))  # type: ignore[arg-type]
