"""Re-derive a sensor rule's alert episodes from replayed signals, paired with stored ones."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from rules.alerts import (
    Alert,
    AlertStatus,
    Severity,
    Signal,
    Sites,
    alert_to_json,
    apply_signal,
    is_new_episode,
)

_TIMES = ("opened_at", "last_seen_at", "acknowledged_at", "resolved_at")

__all__ = ["Reconciled", "alert_from_json", "alert_to_json", "fold", "latest_before", "reconcile"]


def alert_from_json(doc: dict[str, Any]) -> Alert:
    """The inverse of :func:`alert_to_json`, as an episode to re-derive from (``id`` None)."""
    times = {k: (datetime.fromisoformat(doc[k]) if doc.get(k) else None) for k in _TIMES}
    opened, seen = times.pop("opened_at"), times.pop("last_seen_at")
    assert opened is not None and seen is not None
    return Alert(
        id=None,
        council=doc["council"],
        sensor_id=doc["sensor_id"],
        site=doc["site"],
        kind=doc["kind"],
        rule=doc["rule"],
        severity=Severity(doc["severity"]),
        state=AlertStatus(doc["state"]),
        opened_at=opened,
        last_seen_at=seen,
        count=int(doc["count"]),
        flaps=int(doc["flaps"]),
        resolved_by=doc.get("resolved_by"),
        details=dict(doc.get("details") or {}),
        notified=doc.get("notified"),
        flap_streak=int(doc.get("flap_streak") or 0),
        **times,
    )


def _order(s: Signal) -> tuple[datetime, bool]:
    return s.at, s.active  # as apply_signals orders one (sensor, rule)'s signals


def fold(
    anchor: Alert | None, signals: Sequence[Signal], sites: Sites | None = None
) -> list[Alert]:
    """The episodes of one (sensor, rule) from ``anchor`` on: the anchor (as updated) first.

    ``signals`` are that rule's signals after the anchor's time, in any order.
    """
    episodes = [anchor] if anchor is not None else []
    current = anchor
    for signal in sorted(signals, key=_order):
        after = apply_signal(current, signal, sites)
        if after is None:
            continue
        if is_new_episode(current, after) or not episodes:
            episodes.append(after)
        else:
            episodes[-1] = after
        current = after
    return episodes


def latest_before(anchor: Alert | None, signals: Sequence[Signal], t: float) -> Alert | None:
    """The latest episode once every signal before event time ``t`` (epoch s) is applied."""
    episodes = fold(anchor, [s for s in signals if s.at.timestamp() < t])
    return episodes[-1] if episodes else None


def operator_closed(alert: Alert) -> bool:
    """Resolved by a person (never reshaped by a replay)."""
    return alert.resolved_by not in (None, "auto")


@dataclass(slots=True)
class Reconciled:
    """Writes that turn the stored episodes into the derived ones.

    ``updates`` pairs each stored episode with its new content (same id); ``inserts`` are
    episodes the stored ones lack; ``deletes`` are stored episodes the readings no longer
    support (acknowledged ones are kept).
    """

    updates: list[tuple[Alert, Alert]] = field(default_factory=list)
    inserts: list[Alert] = field(default_factory=list)
    deletes: list[Alert] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.updates or self.inserts or self.deletes)


def _overlap(a: Alert, b: Alert) -> bool:
    a_end, b_end = (
        a.resolved_at or datetime.max.replace(tzinfo=a.opened_at.tzinfo),
        (b.resolved_at or datetime.max.replace(tzinfo=b.opened_at.tzinfo)),
    )
    return a.opened_at <= b_end and b.opened_at <= a_end


def _same(a: Alert, b: Alert) -> bool:
    def core(x: Alert) -> Alert:  # what was notified is the stored row's to keep
        return replace(x, id=None, details={}, notified=None, flap_streak=0)

    return core(a) == core(b)


def reconcile(stored: Sequence[Alert], derived: Sequence[Alert]) -> Reconciled:
    """Pair stored and derived episodes (both in time order) that overlap, in order.

    A paired episode keeps its id and its acknowledgement; an unpaired derived one is new; an
    unpaired stored one is withdrawn unless someone acknowledged it.
    """
    out = Reconciled()
    i = j = 0
    while i < len(stored) or j < len(derived):
        if j == len(derived) or (i < len(stored) and _ends_before(stored[i], derived[j])):
            if stored[i].acknowledged_at is None:
                out.deletes.append(stored[i])
            i += 1
        elif i == len(stored) or not _overlap(stored[i], derived[j]):
            out.inserts.append(derived[j])
            j += 1
        else:
            old, new = stored[i], derived[j]
            new = replace(new, id=old.id, acknowledged_at=old.acknowledged_at)
            if old.acknowledged_at is not None and new.state is AlertStatus.OPEN:
                new = replace(new, state=AlertStatus.ACKNOWLEDGED)
            if not _same(old, new):
                out.updates.append((old, new))
            i += 1
            j += 1
    return out


def _ends_before(a: Alert, b: Alert) -> bool:
    return a.resolved_at is not None and a.resolved_at < b.opened_at
