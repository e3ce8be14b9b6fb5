"""The alert state machine: open, repeat, resolve, reopen (flap), operator actions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rules.alerts import (
    Alert,
    AlertStatus,
    Severity,
    Signal,
    acknowledge,
    apply_signal,
    apply_signals,
    policy_for,
    quiet_resolutions,
    resolve,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def sig(
    minutes: float,
    active: bool = True,
    rule: str = "bin_collection_needed",
    severity: Severity | None = None,
) -> Signal:
    return Signal(
        "bin-1",
        "aberdeen",
        "waste_bin",
        rule,
        active,
        T0 + timedelta(minutes=minutes),
        severity,
        {"m": minutes},
    )


def stored(alert: Alert | None, id_: int = 7) -> Alert:
    assert alert is not None
    return Alert(**{**{f: getattr(alert, f) for f in alert.__dataclass_fields__}, "id": id_})


def test_first_active_signal_opens_an_alert_with_the_rule_default_severity() -> None:
    a = apply_signal(None, sig(0))
    assert a is not None and a.id is None
    assert (a.state, a.severity, a.count, a.opened_at) == (AlertStatus.OPEN, Severity.INFO, 1, T0)


def test_repeats_update_count_last_seen_and_escalate_severity_only_upwards() -> None:
    a = stored(apply_signal(None, sig(0)))
    b = apply_signal(a, sig(15, severity=Severity.CRITICAL))
    c = apply_signal(b, sig(30, severity=Severity.INFO))
    assert c is not None and c.id == 7
    assert (c.count, c.last_seen_at, c.severity) == (
        3,
        T0 + timedelta(minutes=30),
        Severity.CRITICAL,
    )


def test_clear_resolves_and_a_quick_return_reopens_the_same_alert_as_a_flap() -> None:
    a = stored(apply_signal(None, sig(0)))
    r = apply_signal(a, sig(10, active=False))
    assert r is not None and r.state is AlertStatus.RESOLVED and r.resolved_by == "auto"
    back = apply_signal(r, sig(20))
    assert back is not None and back.id == 7
    assert (back.state, back.flaps, back.count, back.resolved_at) == (AlertStatus.OPEN, 1, 2, None)


def test_a_return_after_the_reopen_window_is_a_new_alert() -> None:
    a = stored(apply_signal(None, sig(0)))
    r = apply_signal(a, sig(10, active=False))
    window = policy_for("bin_collection_needed").reopen_within_s / 60
    new = apply_signal(r, sig(10 + window + 1))
    assert new is not None and new.id is None and new.flaps == 0


def test_operator_resolution_is_never_reopened_and_clear_without_alert_is_noop() -> None:
    a = stored(apply_signal(None, sig(0)))
    done = resolve(a, T0 + timedelta(minutes=1), by="ops")
    assert apply_signal(done, sig(2)).id is None  # type: ignore[union-attr]
    assert apply_signal(None, sig(5, active=False)) is None
    with pytest.raises(ValueError, match="already resolved"):
        resolve(done, T0, by="ops")


def test_acknowledged_alerts_keep_counting_and_resolve_when_cleared() -> None:
    a = acknowledge(stored(apply_signal(None, sig(0))), T0 + timedelta(minutes=1))
    b = apply_signal(a, sig(5))
    assert b is not None and (b.state, b.count) == (AlertStatus.ACKNOWLEDGED, 2)
    c = apply_signal(b, sig(6, active=False))
    assert c is not None and c.state is AlertStatus.RESOLVED
    with pytest.raises(ValueError, match="not open"):
        acknowledge(c, T0)


def test_event_rules_resolve_only_after_their_quiet_period() -> None:
    rule = "energy_register_reset"
    a = stored(apply_signal(None, sig(0, rule=rule)))
    assert apply_signal(a, sig(1, active=False, rule=rule)) is None
    quiet = policy_for(rule).quiet_resolve_s
    assert quiet_resolutions([a], T0 + timedelta(seconds=quiet - 1)) == []
    [r] = quiet_resolutions([a], T0 + timedelta(seconds=quiet))
    assert r.state is AlertStatus.RESOLVED


def test_apply_signals_in_any_batching_gives_the_same_alerts() -> None:
    pattern = [True] * 3 + [False] + [True] * 2 + [False] * 2
    signals = [sig(i * 300.0, active) for i, active in enumerate(pattern)]  # 5 h apart
    whole = apply_signals({}, signals)
    latest: dict[tuple[str, str], Alert] = {}
    pieces: list[Alert] = []
    next_id = 1
    for chunk in (signals[:2], signals[2:5], signals[5:]):
        for a in apply_signals(latest, chunk):
            if a.id is None:
                a, next_id = stored(a, next_id), next_id + 1
            pieces = [p for p in pieces if p.id != a.id] + [a]
            latest[(a.sensor_id, a.rule)] = a
    strip = [(a.opened_at, a.state, a.count, a.resolved_at) for a in whole]
    assert strip == [(a.opened_at, a.state, a.count, a.resolved_at) for a in pieces]
    assert len(whole) == 2  # two episodes: 5 h gap is beyond the 1 h reopen window
