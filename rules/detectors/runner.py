"""Run every detector over a batch of stored readings, sensor by sensor (pure)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import NamedTuple

from rules.alerts import Signal, Sites
from rules.detectors.base import Detector, JsonDict, Params
from rules.thresholds import Thresholds
from sensors.reading import Reading

StateKey = tuple[str, str]  # (sensor_id, detector name)

CHECKPOINT_EVERY_S = 3600.0  # event time between two snapshots of a detector's state


class Snapshot(NamedTuple):
    """A detector's state as of event time ``t``: every reading before ``t``, none at or after."""

    key: StateKey
    t: float
    state: JsonDict | None


class DetectorRun(NamedTuple):
    """What one batch did: changed states, signals, new snapshots, and the late groups.

    ``late`` holds each (sensor, detector) whose batch has a reading older than one the
    detector has already seen: such a group is not stepped here but replayed from a
    snapshot by the caller (it needs the sensor's stored history, see ``replay``).
    """

    states: dict[StateKey, JsonDict]
    signals: list[Signal]
    snapshots: list[Snapshot]
    late: dict[StateKey, list[Reading]]


def reading_order(r: Reading) -> tuple[float, str]:
    """The order detectors see a sensor's readings in: event time, then metric."""
    return r.time.timestamp(), r.metric


def last_seen(state: JsonDict | None) -> tuple[float, str]:
    """The newest reading (in :func:`reading_order`) a detector state has seen."""
    if not state or "t" not in state:
        return (float("-inf"), "")
    return float(state["t"]), str(state.get("tm", ""))


def set_last_seen(state: JsonDict, seen: tuple[float, str]) -> None:
    """Record ``seen`` as the newest reading in ``state`` ("t" is also the stale clock)."""
    state["t"], state["tm"] = seen


def by_sensor(readings: Sequence[Reading]) -> dict[str, list[Reading]]:
    """Readings grouped per sensor, each group sorted by (event time, metric)."""
    groups: dict[str, list[Reading]] = defaultdict(list)
    for r in readings:
        groups[r.sensor_id].append(r)
    for group in groups.values():
        group.sort(key=lambda r: (r.time, r.metric))
    return dict(groups)


def step_segmented(
    det: Detector,
    key: StateKey,
    state: JsonDict | None,
    readings: Sequence[Reading],
    params: Params,
    now: datetime,
    *,
    every: float = CHECKPOINT_EVERY_S,
    forced: Iterable[float] = (),
    since: float | None = None,
) -> tuple[JsonDict | None, list[Signal], list[Snapshot]]:
    """Step ``det`` over time-sorted ``readings``, snapshotting its state on the way.

    A snapshot is taken before the first reading at or after each time in ``forced`` and
    whenever ``every`` seconds of event time passed since the last one (the first reading a
    detector ever sees gets one too). ``since`` is the last snapshot's time (default: the
    one ``state`` records). Stepping in segments equals one step over the whole
    (the detector contract), so the signals do not depend on where snapshots fall.
    """
    signals: list[Signal] = []
    snaps: list[Snapshot] = []
    pending = sorted(forced)
    last_cp = since if since is not None else (state.get("cp") if state else None)
    start = 0

    def flush(end: int) -> None:
        nonlocal state, start
        if end <= start:
            return
        seen = last_seen(state)
        state, out = det.step(state, readings[start:end], params, now)
        set_last_seen(state, max(seen, reading_order(readings[end - 1])))
        signals.extend(out)
        start = end

    for i, r in enumerate(readings):
        t = r.time.timestamp()
        while pending and pending[0] <= t:
            flush(i)
            last_cp = pending.pop(0)
            snaps.append(Snapshot(key, last_cp, state))
        if last_cp is None or t >= last_cp + every:
            flush(i)
            last_cp = t
            snaps.append(Snapshot(key, t, state))
    flush(len(readings))
    snaps.extend(Snapshot(key, t, state) for t in pending)
    if state is not None and last_cp is not None:
        state = {**state, "cp": last_cp}
    return state, signals, snaps


def run_detectors(
    detectors: Sequence[Detector],
    states: Mapping[StateKey, JsonDict],
    readings: Sequence[Reading],
    thresholds: Thresholds,
    now: datetime,
    *,
    every: float = CHECKPOINT_EVERY_S,
    sites: Sites | None = None,
) -> DetectorRun:
    """New states (only those that changed), signals and snapshots for one batch.

    A group with a reading before what its detector has already seen for the sensor (in
    :func:`reading_order`: a batch may end between two metrics of one instant) is returned
    in ``late`` instead of being stepped, so a detector always sees a sensor's
    readings in event-time order and its result never depends on batching or arrival order.
    """
    new_states: dict[StateKey, JsonDict] = {}
    signals: list[Signal] = []
    snapshots: list[Snapshot] = []
    late: dict[StateKey, list[Reading]] = {}
    for sensor_id, group in by_sensor(readings).items():
        kind, council = group[0].kind, group[0].council
        params = thresholds.for_sensor(council, sensor_id, sites)
        for det in detectors:
            if kind not in det.kinds:
                continue
            key = (sensor_id, det.name)
            old = states.get(key)
            if reading_order(group[0]) < last_seen(old):
                late[key] = group
                continue
            state, out, snaps = step_segmented(det, key, old, group, params, now, every=every)
            assert state is not None
            new_states[key] = state
            signals.extend(out)
            snapshots.extend(snaps)
    return DetectorRun(new_states, signals, snapshots, late)
