"""Late readings (pure): alert episodes folded from signals, reconciled, and late signals."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from rules.alert_history import (
    Reconciled,
    alert_from_json,
    alert_to_json,
    fold,
    latest_before,
    reconcile,
)
from rules.alerts import Alert, AlertStatus, Severity, apply_signal, is_new_episode, policy_for
from tests.rules.late_helpers import T0, sig

# --------------------------------------------------------------------------------------
# alert episodes


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
