"""Sensor-health rules for every kind: stale (via the tick), flatline, low battery."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from rules.alerts import Signal, Sites
from rules.detectors.base import Conditions, JsonDict, Params, fresh
from rules.thresholds import Thresholds
from sensors.catalogue import kind_named
from sensors.errors import RejectedPayload
from sensors.reading import Reading
from sensors.topics import parse_topic


class HealthDetector:
    """Flatline, low battery and data delayed per reading; remembers the last arrival for
    staleness.

    State: ``rx`` is the newest ``received_at`` seen (epoch seconds), the clock of
    :func:`stale_signals`; a state saved before it existed falls back to the newest event
    time (``t``). ``sensor_data_delayed`` is a condition with one active signal per episode:
    a reading received more than ``health.delayed_factor`` intervals after its event time
    opens it, one received within ``health.delayed_clear_factor`` intervals clears it.
    """

    name = "health"
    rules = frozenset(
        {"sensor_stale", "sensor_flatline", "sensor_low_battery", "sensor_data_delayed"}
    )
    kinds = frozenset({"air_quality", "waste_bin", "energy_meter"})

    def step(
        self, state: JsonDict | None, readings: Sequence[Reading], params: Params, now: datetime
    ) -> tuple[JsonDict, list[Signal]]:
        """Evaluate flatline, battery and delay; clear a stale alert when readings arrive."""
        s = fresh(state)
        cond = Conditions(s)
        out: list[Signal] = []
        first = readings[0]
        s["kind"], s["council"] = first.kind, first.council
        newest = max(readings, key=lambda r: r.received_at)
        arrived = newest.received_at.timestamp()
        s["rx"] = max(float(s.get("rx", arrived)), arrived)
        if cond.is_active("sensor_stale"):  # cleared when they arrived, whatever their time
            cond.update(out, first, "sensor_stale", violated=False, cleared=True)
            out[-1] = replace(out[-1], at=newest.received_at)
        kind = kind_named(first.kind)
        interval = float(kind.expected_interval_s) if kind is not None else 0.0
        late_after = float(params["health.delayed_factor"]) * interval
        back_within = float(params["health.delayed_clear_factor"]) * interval
        flat_metrics = set(params["health.flatline_metrics"])
        need = int(params["health.flatline_count"])
        last: dict[str, list[float]] = s.setdefault("last", {})  # metric -> [value, run]
        flat: list[str] = s.setdefault("flat", [])
        for r in readings:
            if kind is not None:
                lag = (r.received_at - r.time).total_seconds()
                delayed = cond.is_active("sensor_data_delayed")
                opens = not delayed and lag > late_after
                back = lag <= back_within
                if cond.emits("sensor_data_delayed", violated=opens, cleared=back):
                    detail: dict[str, Any] = {"lag_s" if opens else "caught_up_lag_s": round(lag)}
                    cond.update(
                        out, r, "sensor_data_delayed", violated=opens, cleared=back, **detail
                    )
            if r.metric in flat_metrics:
                prev = last.get(r.metric)
                run = prev[1] + 1 if prev is not None and prev[0] == r.value else 1
                last[r.metric] = [r.value, run]
                if run >= need and r.metric not in flat:
                    flat.append(r.metric)
                elif run < need and r.metric in flat:
                    flat.remove(r.metric)
                is_flat = r.metric in flat
                if cond.emits("sensor_flatline", violated=is_flat, cleared=not flat):
                    cond.update(
                        out,
                        r,
                        "sensor_flatline",
                        violated=is_flat,
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
    """Health states of sensors from which nothing has ARRIVED for stale_factor x their
    interval, marked; and signals.

    Wall-clock rule: ``now`` is the engine's clock at the tick, compared with the newest
    ``received_at`` (``rx``), never with event time, so a sensor uploading a backlog of old
    readings is not stale. One signal per silence (the next arrival clears it in
    :class:`HealthDetector`).
    """
    changed: dict[str, JsonDict] = {}
    signals: list[Signal] = []
    for sensor_id, state in states:
        kind = kind_named(str(state.get("kind", "")))
        last = state.get("rx", state.get("t"))  # a state from before "rx": its event time
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
                details={
                    "silent_s": round(silent),
                    "last_arrival": float(last),
                    "last_reading": state.get("t"),
                },
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
