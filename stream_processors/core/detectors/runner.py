"""Run every detector over a batch of stored readings, sensor by sensor (pure)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime

from sensors.reading import Reading
from stream_processors.core.alerts import Signal
from stream_processors.core.detectors.base import Detector, JsonDict
from stream_processors.core.thresholds import Thresholds

StateKey = tuple[str, str]  # (sensor_id, detector name)


def by_sensor(readings: Sequence[Reading]) -> dict[str, list[Reading]]:
    """Readings grouped per sensor, each group sorted by (event time, metric)."""
    groups: dict[str, list[Reading]] = defaultdict(list)
    for r in readings:
        groups[r.sensor_id].append(r)
    for group in groups.values():
        group.sort(key=lambda r: (r.time, r.metric))
    return dict(groups)


def run_detectors(
    detectors: Sequence[Detector],
    states: Mapping[StateKey, JsonDict],
    readings: Sequence[Reading],
    thresholds: Thresholds,
    now: datetime,
) -> tuple[dict[StateKey, JsonDict], list[Signal]]:
    """New states (only those that changed) and the signals, for one batch of readings.

    Readings older than what a detector has already seen for the sensor (late arrivals
    across batches) are skipped by that detector, so its result never depends on how the
    stream was cut into batches; they are still stored and aggregated.
    """
    new_states: dict[StateKey, JsonDict] = {}
    signals: list[Signal] = []
    for sensor_id, group in by_sensor(readings).items():
        kind, council = group[0].kind, group[0].council
        params = thresholds.for_sensor(council, sensor_id)
        for det in detectors:
            if kind not in det.kinds:
                continue
            key = (sensor_id, det.name)
            old = states.get(key)
            seen = old.get("t") if old else None
            todo = [r for r in group if seen is None or r.time.timestamp() >= seen]
            if not todo:
                continue
            state, out = det.step(old, todo, params, now)
            state["t"] = max(seen or 0.0, todo[-1].time.timestamp())
            new_states[key] = state
            signals.extend(out)
    return new_states, signals
