"""What every detector is: a pure step from (state, one sensor's readings, now) to signals."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

import orjson

from rules.alerts import Severity, Signal
from sensors.reading import Reading

JsonDict = dict[str, Any]
Params = Mapping[str, Any]


class Detector(Protocol):
    """A rule family for some kinds of sensor.

    ``step`` receives one sensor's newly stored readings sorted by event time, its previous
    state (``None`` the first time) and the parameters resolved for that sensor; it returns
    the new JSON-serialisable state and the signals. It must not read the clock: ``now`` is
    passed in, and only wall-clock rules (staleness, in ``tick``) use it. Because a step over
    two batches equals a step over their concatenation, alerts do not depend on batching.
    """

    name: str
    kinds: frozenset[str]
    rules: frozenset[str]  # every rule its signals can name

    def step(
        self, state: JsonDict | None, readings: Sequence[Reading], params: Params, now: datetime
    ) -> tuple[JsonDict, list[Signal]]: ...


def fresh(state: JsonDict | None) -> JsonDict:
    """A private deep copy of ``state`` to update (the caller's stays untouched)."""
    return orjson.loads(orjson.dumps(state)) if state else {}


def emit(
    r: Reading, rule: str, active: bool, severity: Severity | None = None, **details: Any
) -> Signal:
    """A signal about reading ``r``."""
    return Signal(r.sensor_id, r.council, r.kind, rule, active, r.time, severity, details)


class Conditions:
    """Remembers which condition rules are active for a sensor (inside its state dict).

    ``update`` sends an active signal for every violating reading, and one clear signal
    when a previously active condition meets its clear test (value hysteresis).
    """

    def __init__(self, state: JsonDict) -> None:
        self._active: dict[str, bool] = state.setdefault("active", {})

    def is_active(self, rule: str) -> bool:
        """Whether ``rule`` is currently active for this sensor."""
        return self._active.get(rule, False)

    def emits(self, rule: str, *, violated: bool, cleared: bool) -> bool:
        """Whether :meth:`update` with these outcomes sends a signal (callers on the hot path
        skip building its details when it does not)."""
        return violated or (cleared and self._active.get(rule, False))

    def update(
        self,
        out: list[Signal],
        r: Reading,
        rule: str,
        *,
        violated: bool,
        cleared: bool,
        severity: Severity | None = None,
        **details: Any,
    ) -> None:
        """Record one evaluation of ``rule`` at reading ``r``."""
        if violated:
            self._active[rule] = True
            out.append(emit(r, rule, True, severity, **details))
        elif cleared and self._active.get(rule):
            self._active[rule] = False
            out.append(emit(r, rule, False, None, **details))
