"""Notification lifecycle: flapping and outage replays against hand-written notification lists.

Every transition an operator should know about notifies exactly once; a flapping alert's
automatic resolutions are held back and cancelled by the re-open that follows (suppressed in
pairs), and the last one is notified once it is final; what was last notified always matches
the alert in the end; ``resolved_at`` is the latest resolution.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from rules.alert_notify import notification_event
from rules.alerts import (
    MAX_FLAP_NOTIFICATIONS,
    Alert,
    Severity,
    Signal,
    apply_signals,
    quiet_resolutions,
    settle_due,
    settled,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
KEY = ("bin-1", "bin_collection_needed")


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def sig(minutes: float, active: bool = True, rule: str = "bin_collection_needed",
        severity: Severity | None = None) -> Signal:  # fmt: skip
    return Signal("bin-1", "aberdeen", "waste_bin", rule, active, at(minutes), severity)


@dataclass(frozen=True)
class Tick:
    """The engine's periodic tick at ``now``; ``watermark``: the sensor's newest reading."""

    minutes: float
    watermark: float | None = None  # minutes; None: same as now
    arrival: float | None = None  # minutes of the last arrival; None: same as watermark


class Replay:
    """Applies signals batch by batch and ticks, as Detection does; records notifications."""

    def __init__(self) -> None:
        self.latest: dict[tuple[str, str], Alert] = {}
        self.notes: list[tuple[str, float]] = []  # (event, minutes of the alert's change)
        self.alerts: list[Alert] = []
        self._ids = 0

    def _save(self, alert: Alert) -> Alert:
        if alert.id is None:
            self._ids += 1
            from dataclasses import replace

            alert = replace(alert, id=self._ids)
        self.latest[(alert.sensor_id, alert.rule)] = alert
        self.alerts = [a for a in self.alerts if a.id != alert.id] + [alert]
        return alert

    def _note(self, before: Alert | None, after: Alert) -> None:
        event = notification_event(before, after)
        if event:
            when = after.resolved_at if event == "resolved" else after.last_seen_at
            assert when is not None
            self.notes.append((event, (when - T0).total_seconds() / 60))

    def batch(self, signals: list[Signal]) -> None:
        steps: list[tuple[int, Alert | None, Alert]] = []
        changed = apply_signals(self.latest, signals, steps)
        saved = [self._save(a) for a in changed]
        del saved
        for _i, before, after in steps:
            self._note(before, after)

    def tick(self, t: Tick) -> None:
        now = at(t.minutes)
        live = [a for a in self.latest.values() if a.live]
        for a in quiet_resolutions(live, now):
            self._note(self.latest[(a.sensor_id, a.rule)], a)
            self._save(a)
        watermark = at(t.minutes if t.watermark is None else t.watermark).timestamp()
        arrival = watermark if t.arrival is None else at(t.arrival).timestamp()
        for a in list(self.latest.values()):
            if settle_due(a, now, watermark, arrival):
                final = settled(a)
                self._note(a, final)
                self._save(final)

    def run(self, script: list[Signal | Tick]) -> Replay:
        for item in script:
            if isinstance(item, Tick):
                self.tick(item)
            else:
                self.batch([item])
        return self


def flapping(start: float, n: int, every: float = 10.0, rule: str = "bin_collection_needed"):
    """``n`` rounds of violated-then-cleared, ``every`` minutes apart."""
    out: list[Signal | Tick] = []
    for i in range(n):
        out.append(sig(start + 2 * i * every, True, rule))
        out.append(sig(start + (2 * i + 1) * every, False, rule))
    return out


def test_a_flapping_condition_notifies_in_pairs_and_its_final_resolution_once() -> None:
    # 6 rounds open/clear 10 min apart, then the reopen window (1 h) passes in event time
    r = Replay().run([*flapping(0, 6), Tick(111, watermark=110), Tick(171, watermark=171)])
    assert r.notes == [
        ("opened", 0),
        ("resolved", 10),
        ("reopened", 20),
        ("resolved", 30),
        ("reopened", 40),
        ("resolved", 50),
        ("reopened", 60),  # the 3rd re-open notifies; from here resolutions are held
        # 70 resolved (held), 80 re-opened (cancels it), ... 110 resolved (held) ...
        ("resolved", 110),  # ... and notified once the window has passed without a re-open
    ]
    events = [e for e, _ in r.notes]
    assert events.count("opened") + events.count("reopened") == events.count("resolved")
    (alert,) = r.alerts
    assert (alert.flaps, alert.count, alert.resolved_at) == (5, 6, at(110))  # latest resolution
    assert alert.told == "resolved" and alert.flap_streak == 0


def test_held_resolution_waits_for_event_time_not_for_the_wall_clock() -> None:
    # a replay of history: the wall clock is far ahead, the sensor's readings are not
    r = Replay().run([*flapping(0, 4), Tick(10_000, watermark=75, arrival=9_999)])
    assert [e for e, _ in r.notes][-1] == "reopened"  # the resolution at 70 still held
    r.run([sig(100), Tick(10_001, watermark=200, arrival=10_000)])  # re-opened within the hour
    assert [e for e, _ in r.notes] == ["opened", "resolved", "reopened", "resolved",
                                       "reopened", "resolved", "reopened"]  # fmt: skip
    assert r.alerts[0].live and r.alerts[0].told == "open"


def test_a_violation_after_the_window_settles_the_held_resolution_then_opens_anew() -> None:
    r = Replay().run([*flapping(0, 4), sig(200)])  # no tick in between: the batch settles it
    assert r.notes[-2:] == [("resolved", 70), ("opened", 200)]
    assert len(r.alerts) == 2 and r.alerts[0].told == "resolved"


def test_same_notifications_whatever_the_batching() -> None:
    script = flapping(0, 7)
    reference = Replay().run([*script, Tick(500, watermark=500)]).notes
    rng = random.Random(7)
    for _ in range(20):
        replay, signals = Replay(), [s for s in script if isinstance(s, Signal)]
        while signals:
            n = rng.randint(1, 5)
            replay.batch(signals[:n])
            signals = signals[n:]
        replay.tick(Tick(500, watermark=500))
        assert replay.notes == reference


def stale(minutes: float, active: bool = True) -> Signal:
    return sig(minutes, active, "sensor_stale")


def test_an_outage_after_flapping_is_one_open_alert_and_one_final_resolution() -> None:
    # a sensor's link drops and recovers every few minutes, then a real 4-hour outage
    script: list[Signal | Tick] = []
    for i in range(4):
        script += [stale(20 * i), stale(20 * i + 5, False)]
    script += [stale(80), Tick(81)]  # the genuine outage starts: re-opens the held alert
    script += [stale(320, False), Tick(321), Tick(379), Tick(381)]  # back; final after 1 h
    script += [stale(400), Tick(401)]  # down again 80 min after: a new episode
    r = Replay().run(script)
    assert r.notes == [
        ("opened", 0),
        ("resolved", 5),
        ("reopened", 20),
        ("resolved", 25),
        ("reopened", 40),
        ("resolved", 45),
        ("reopened", 60),
        # 65 resolved: held; 80 the outage re-opens it: operators were never told it ended
        ("resolved", 320),  # the outage's end, notified once it stood for the window
        ("opened", 400),
    ]


def test_a_reopen_after_a_settled_suppression_notifies_once() -> None:
    # flapping, then the sensor falls silent: an hour later the held resolution is notified;
    # its backlog then shows the condition back within the hour: re-opened, and said so once
    script = [*flapping(0, 4), Tick(200, watermark=75, arrival=75)]
    script += [sig(100), sig(105), Tick(201, watermark=105, arrival=200)]
    got = Replay().run(script).notes
    assert got[-2:] == [("resolved", 70), ("reopened", 100)]


def test_escalation_notifies_even_while_resolutions_are_held() -> None:
    script = [*flapping(0, 4), sig(80), sig(85, severity=Severity.CRITICAL)]
    got = [e for e, _ in Replay().run(script).notes]
    assert got[-1] == "escalated"
    assert got.count("resolved") == 3 and got.count("reopened") == MAX_FLAP_NOTIFICATIONS


def test_event_rules_resolve_quietly_and_notify_each_change_once() -> None:
    rule = "energy_register_reset"  # event rule: quiet for 24 h resolves it
    script: list[Signal | Tick] = [sig(0, rule=rule), sig(30, rule=rule)]
    script += [Tick(30 + 24 * 60 + 1), sig(30 + 24 * 60 + 20, rule=rule), Tick(4000)]
    got = Replay().run(script).notes
    assert [e for e, _ in got] == ["opened", "resolved", "reopened", "resolved"]
