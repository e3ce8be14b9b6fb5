"""Sensor-health rules for every kind: stale (via the tick), flatline, low battery."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from rules.alerts import Signal, Sites
from rules.detectors.base import Conditions, JsonDict, Params, fresh
from rules.thresholds import Thresholds
from sensors.catalogue import kind_named
from sensors.errors import RejectedPayload
from sensors.reading import Reading
from sensors.topics import parse_topic


class HealthDetector:
    """Flatline and low battery per reading; remembers last-seen time for staleness."""

    name = "health"
    rules = frozenset({"sensor_stale", "sensor_flatline", "sensor_low_battery"})
    kinds = frozenset({"air_quality", "waste_bin", "energy_meter"})

    def step(
        self, state: JsonDict | None, readings: Sequence[Reading], params: Params, now: datetime
    ) -> tuple[JsonDict, list[Signal]]:
        """Evaluate flatline and battery; clear a stale alert when readings return."""
        s = fresh(state)
        cond = Conditions(s)
        out: list[Signal] = []
        first = readings[0]
        s["kind"], s["council"] = first.kind, first.council
        if cond.is_active("sensor_stale"):
            cond.update(out, first, "sensor_stale", violated=False, cleared=True)
        flat_metrics = set(params["health.flatline_metrics"])
        need = int(params["health.flatline_count"])
        last: dict[str, list[float]] = s.setdefault("last", {})  # metric -> [value, run]
        flat: list[str] = s.setdefault("flat", [])
        for r in readings:
            if r.metric in flat_metrics:
                prev = last.get(r.metric)
                run = prev[1] + 1 if prev is not None and prev[0] == r.value else 1
                last[r.metric] = [r.value, run]
                if run >= need and r.metric not in flat:
                    flat.append(r.metric)
                elif run < need and r.metric in flat:
                    flat.remove(r.metric)
                cond.update(
                    out,
                    r,
                    "sensor_flatline",
                    violated=r.metric in flat,
                    cleared=not flat,
                    metric=r.metric,
                    value=r.value,
                    run=run,
                )
            elif r.metric == "battery":
                cond.update(
                    out,
                    r,
                    "sensor_low_battery",
                    violated=r.value < float(params["health.low_battery_pct"]),
                    cleared=r.value >= float(params["health.battery_clear_pct"]),
                    battery_pct=r.value,
                )
        return s, out


def stale_signals(
    states: Iterable[tuple[str, JsonDict]],
    thresholds: Thresholds,
    now: datetime,
    sites: Sites | None = None,
) -> tuple[dict[str, JsonDict], list[Signal]]:
    """Health states of sensors silent for stale_factor x their interval, marked; and signals.

    Wall-clock rule: ``now`` is the engine's clock at the tick. One signal per silence (the
    next reading clears it in :class:`HealthDetector`).
    """
    changed: dict[str, JsonDict] = {}
    signals: list[Signal] = []
    for sensor_id, state in states:
        kind = kind_named(str(state.get("kind", "")))
        last = state.get("t")
        active = state.get("active", {})
        if kind is None or last is None or active.get("sensor_stale"):
            continue
        params = thresholds.for_sensor(str(state.get("council", "")), sensor_id, sites)
        silent = now.timestamp() - float(last)
        if silent <= float(params["health.stale_factor"]) * kind.expected_interval_s:
            continue
        new = fresh(state)
        new.setdefault("active", {})["sensor_stale"] = True
        changed[sensor_id] = new
        signals.append(
            Signal(
                sensor_id,
                str(state.get("council", "")),
                kind.name,
                "sensor_stale",
                True,
                now,
                details={"silent_s": round(silent), "last_reading": last},
            )
        )
    return changed, signals


def impossible_value_signals(
    letters: Sequence[tuple[int, str, str, datetime]],
) -> list[Signal]:
    """Dead letters rejected as out of range → sensor-health signals (topic names the sensor)."""
    out = []
    for letter_id, topic, detail, received_at in letters:
        try:
            address = parse_topic(topic)
        except RejectedPayload:
            continue  # a bad topic names no sensor; the dead letter itself is the record
        out.append(
            Signal(
                address.sensor_id,
                address.council,
                address.kind,
                "sensor_impossible_value",
                True,
                received_at,
                details={"detail": detail[:300], "dead_letter_id": letter_id},
            )
        )
    return out
