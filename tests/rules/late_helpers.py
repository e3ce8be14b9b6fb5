"""Shared helpers for the late-readings tests: reading builders, streams, reference steps."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta

from rules.alerts import Severity, Signal
from rules.detectors.base import Detector, JsonDict
from rules.thresholds import DEFAULTS
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


def sig(
    minutes: float,
    active: bool = True,
    rule: str = "bin_collection_needed",
    severity: Severity | None = None,
) -> Signal:
    return Signal(
        "bin-1", "aberdeen", "waste_bin", rule, active, T0 + timedelta(minutes=minutes), severity
    )
