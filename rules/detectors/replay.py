"""Late readings: re-run one detector from a snapshot over the sensor's stored history (pure)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from datetime import datetime
from typing import NamedTuple

from rules.alerts import Signal, policy_for
from rules.detectors.base import Detector, JsonDict, Params, emit
from rules.detectors.runner import (
    CHECKPOINT_EVERY_S,
    Snapshot,
    StateKey,
    last_seen,
    set_last_seen,
    step_segmented,
)
from sensors.reading import Reading


class Replay(NamedTuple):
    """A detector re-run with the late readings in place.

    ``signals`` is everything the detector says from the snapshot on, in event-time order;
    ``already`` is what it had said for the same span before this batch arrived (already
    applied to alerts). ``snapshots`` are the later snapshots, rebuilt.
    """

    state: JsonDict
    signals: list[Signal]
    already: list[Signal]
    snapshots: list[Snapshot]


def replay(
    det: Detector,
    key: StateKey,
    anchor: Snapshot,
    later: Sequence[float],
    history: Sequence[Reading],
    batch: Collection[tuple[str, str, datetime]],
    current: JsonDict,
    params: Params,
    now: datetime,
    *,
    every: float = CHECKPOINT_EVERY_S,
) -> Replay:
    """Re-run ``det`` from ``anchor`` over ``history`` (the sensor's stored readings at or
    after the anchor, this batch's included), and once more without the batch's readings
    (keys in ``batch``) to know what was said before. ``current`` is the detector's state
    before this batch; marks the wall-clock tick put in it are honoured.
    """
    ordered = sorted(history, key=lambda r: (r.time, r.metric))
    older = [r for r in ordered if r.key not in batch]

    def run(readings: Sequence[Reading]) -> tuple[JsonDict | None, list[Signal], list[Snapshot]]:
        return step_segmented(
            det, key, anchor.state, readings, params, now, every=every, forced=later, since=anchor.t
        )

    state, signals, snaps = run(ordered)
    _, already, _ = run(older)
    final: JsonDict = dict(state or {})
    set_last_seen(final, max(last_seen(current), last_seen(final)))
    _clear_wall_clock_marks(final, current, [r for r in ordered if r.key in batch], signals)
    return Replay(final, signals, already, snaps)


def _clear_wall_clock_marks(
    final: JsonDict, current: JsonDict, arrived: list[Reading], signals: list[Signal]
) -> None:
    """A tick-raised condition (a stale sensor) in ``current`` is cleared by readings arriving."""
    marks = current.get("active", {})
    for rule, active in marks.items():
        if active and policy_for(rule).wall_clock and arrived:
            final.setdefault("active", {})[rule] = False
            signals.append(emit(max(arrived, key=lambda r: r.time), rule, False))


def new_signals(signals: Sequence[Signal], already: Sequence[Signal]) -> list[Signal]:
    """Signals of the replay not said before (matched by rule, verdict, time and severity)."""
    said = Counter(_said(s) for s in already)
    out = []
    for s in signals:
        k = _said(s)
        if said[k]:
            said[k] -= 1
        else:
            out.append(s)
    return out


def _said(s: Signal) -> tuple[str, bool, datetime, str | None]:
    return s.rule, s.active, s.at, s.severity


StoredSnapshot = tuple[float, JsonDict | None, JsonDict]
"""(time, detector state or None for "nothing seen before", latest condition episodes)."""


def starting_snapshot(
    kept: Sequence[StoredSnapshot], first: float
) -> tuple[StoredSnapshot, bool] | None:
    """The snapshot a replay starts from, for late readings whose earliest time is ``first``.

    The latest one at or before ``first``; if all are later, the first one stands in when it
    says "nothing seen before" (it holds for any earlier time: returned at ``first``, flagged
    synthesised), else the oldest one (readings before it are too late). None: no snapshots.
    """
    usable = [k for k in kept if k[0] <= first]
    if usable:
        return usable[-1], False
    if not kept:
        return None
    if kept[0][1] is None:
        return (first, None, kept[0][2]), True
    return kept[0], False
