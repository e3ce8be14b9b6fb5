"""Which transitions notify, and the webhook retry schedule (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rules.alert_notify import (
    MAX_FLAP_NOTIFICATIONS,
    next_attempt,
    notification_event,
    payload,
)
from rules.alerts import Alert, Severity, Signal, apply_signals

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def sig(minutes: float, active: bool = True, severity: Severity | None = None) -> Signal:
    return Signal(
        "bin-1",
        "aberdeen",
        "waste_bin",
        "bin_fire_risk",
        active,
        T0 + timedelta(minutes=minutes),
        severity,
    )


def events(signals: list[Signal], latest: dict | None = None) -> list[str | None]:
    steps: list[tuple[int, Alert | None, Alert]] = []
    apply_signals(latest or {}, signals, steps)
    return [notification_event(before, after) for _, before, after in steps]


def test_open_repeat_escalate_resolve_reopen_in_one_batch() -> None:
    got = events(
        [
            sig(0, severity=Severity.WARNING),
            sig(1),
            sig(2, severity=Severity.CRITICAL),
            sig(3, active=False),
            sig(4),
        ]
    )
    # opened as warning; the next signal takes fire risk's default (critical): escalated once
    assert got == ["opened", "escalated", None, "resolved", "reopened"]


def test_a_flapping_alert_stops_notifying_after_a_few_reopens() -> None:
    flips = [sig(2 * i, active=i % 2 == 0) for i in range(2 * (MAX_FLAP_NOTIFICATIONS + 3))]
    got = [e for e in events(flips) if e]
    assert got.count("reopened") == MAX_FLAP_NOTIFICATIONS
    assert got[0] == "opened"


def test_steps_point_at_the_right_episode_and_payload_is_the_snapshot() -> None:
    steps: list[tuple[int, Alert | None, Alert]] = []
    result = apply_signals({}, [sig(0), sig(1, active=False), sig(600)], steps)
    assert len(result) == 2  # 10 h later is beyond the reopen window: a second episode
    assert [i for i, _, _ in steps] == [0, 0, 1]
    body = payload(steps[0][2], "opened")
    assert (body["state"], body["count"], body["event"]) == ("open", 1, "opened")


def test_retry_backoff_doubles_caps_and_gives_up() -> None:
    waits = [
        (next_attempt(n, T0, max_attempts=12) - T0).total_seconds()  # type: ignore[operator]
        for n in range(1, 12)
    ]
    assert waits[:4] == [10, 20, 40, 80] and max(waits) == 3600
    assert next_attempt(8, T0) is None and next_attempt(7, T0) is not None
