"""Detection benchmark: per-rule precision, recall and delay of stored alerts vs labels, the
notifications queued vs those the labels call for, and staleness during backlog uploads."""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from benchmarks.detect_replay import Notification, StoredAlert, Transition
from rules.alerts import MAX_FLAP_NOTIFICATIONS, policy_for
from rules.thresholds import Thresholds
from sensors.catalogue import KINDS
from simulator.anomalies import Upload
from simulator.anomaly_labels import Label


def rule_window(rule: str, kind: str, label: Label, params: Mapping[str, Any]) -> float:
    """How long the rule must wait by its own definition (the delay target is this + 5 s)."""
    interval = KINDS[kind].expected_interval_s
    if rule == "sensor_stale":
        return float(params["health.stale_factor"]) * interval
    if rule == "sensor_flatline":
        return (int(params["health.flatline_count"]) - 1) * interval
    if rule == "energy_out_of_hours":  # N readings running, and (issue 20) a hold time
        hold = float(params.get("energy.ooh_hold_s", 0.0))
        return max((int(params["energy.ooh_readings"]) - 1) * interval, hold)
    return label.window_s


@dataclass(frozen=True, slots=True)
class RuleScore:
    rule: str
    labels: int
    alerts: int
    precision: float
    recall: float
    median_delay_s: float | None
    p95_delay_s: float | None
    window_s: float  # median of the labels' rule windows
    median_excess_s: float | None  # median of (delay - that label's window): target <= 5 s
    per_sensor_day: float
    opens: int = 0  # openings an operator sees: each alert plus each of its re-openings

    @property
    def passed(self) -> bool:
        return (
            self.precision >= 0.95
            and self.recall >= 0.95
            and (self.median_excess_s is not None and self.median_excess_s <= 5.0)
        )


def score(
    labels: Sequence[Label],
    alerts: Sequence[StoredAlert],
    sensor_days: Mapping[str, float],
    thresholds: Thresholds,
) -> list[RuleScore]:
    """Per-rule precision, recall and delay; an alert matches a label of its sensor and rule
    when their intervals overlap (label end + the rule's window + 2 intervals of grace)."""
    params = thresholds.for_sensor("aberdeen", "")
    out = []
    for rule in sorted({lb.rule for lb in labels} | {a.rule for a in alerts}):
        ls = [lb for lb in labels if lb.rule == rule]
        al = [a for a in alerts if a.rule == rule]
        kind = ls[0].kind if ls else "air_quality"
        matched_alerts: set[int] = set()
        delays, windows, excess = [], [], []
        for lb in ls:
            window = rule_window(rule, lb.kind, lb, params)
            windows.append(window)
            grace = window + 2 * KINDS[lb.kind].expected_interval_s + 60
            hits = [
                j
                for j, a in enumerate(al)
                if a.sensor_id == lb.sensor_id
                and a.opened_at <= lb.end + timedelta(seconds=grace)
                and (a.resolved_at is None or a.resolved_at >= lb.start)
            ]
            matched_alerts.update(hits)
            if hits:
                first = min(al[j].opened_at for j in hits)
                delays.append(max((first - lb.start).total_seconds(), 0.0))
                excess.append(delays[-1] - window)
        kinds_of_rule = {lb.kind for lb in ls} or {kind}
        days = sum(sensor_days.get(k, 0.0) for k in kinds_of_rule)
        out.append(
            RuleScore(
                rule,
                len(ls),
                len(al),
                len(matched_alerts) / len(al) if al else (1.0 if not ls else 0.0),
                len(delays) / len(ls) if ls else float("nan"),
                statistics.median(delays) if delays else None,
                _p95(delays),
                statistics.median(windows) if windows else 0.0,
                statistics.median(excess) if excess else None,
                len(al) / days if days else 0.0,
                sum(1 + a.flaps for a in al),
            )
        )
    return out


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


EVENTS = ("opened", "reopened", "escalated", "resolved", "withdrawn")
# event rules whose label lasts longer than its one event: a fill drop is one reading; its
# label runs to the next collection (the drop stays unexplained until then)
SINGLE_EVENT = frozenset({"bin_fill_drop_review"})


@dataclass(frozen=True, slots=True)
class NotificationCount:
    """One rule's notifications: expected from the labels, and queued by the platform."""

    rule: str
    expected: dict[str, int]
    actual: dict[str, int]

    @property
    def equal(self) -> bool:
        return all(self.expected.get(e, 0) == self.actual.get(e, 0) for e in EVENTS)


def expected_notifications(
    labels: Sequence[Label],
    sensor_end: dict[str, datetime],
    replay_end: datetime,
    thresholds: Thresholds,
) -> dict[str, Counter[str]]:
    """Per rule, the notifications the labelled episodes call for under the documented
    lifecycle (docs/alerts.md, "Notifications"), worked out from the labels alone.

    Condition rules: a label is live from its start + the rule's window to its end; one that
    starts within ``reopen_within_s`` of the previous resolution re-opens it; from the
    ``MAX_FLAP_NOTIFICATIONS``-th re-open on, resolutions are held back and the re-open that
    cancels one is not notified; a held resolution is notified once its window has passed.
    Event rules: a label within ``quiet_resolve_s`` of the previous one's end is a repeat;
    otherwise the previous resolved at its end + ``quiet_resolve_s``. A resolution is only
    expected if the sensor reports after it (condition rules) or the replay reaches it.
    """
    params = thresholds.for_sensor("aberdeen", "")
    out: dict[str, Counter[str]] = {}
    groups: dict[tuple[str, str], list[Label]] = {}
    for lb in sorted(labels, key=lambda x: (x.start, x.end)):
        groups.setdefault((lb.sensor_id, lb.rule), []).append(lb)
    for (sid, rule), ls in groups.items():
        policy = policy_for(rule)
        told = out.setdefault(rule, Counter())
        stop = sensor_end.get(sid, replay_end)
        reopen = timedelta(seconds=policy.reopen_within_s)
        quiet = timedelta(seconds=policy.quiet_resolve_s)
        # (opens at, clears at) per episode, overlapping labels merged
        episodes: list[tuple[datetime, datetime]] = []
        for lb in ls:
            opens = lb.start + timedelta(
                seconds=0 if policy.event else rule_window(rule, lb.kind, lb, params)
            )
            last_event = lb.start if rule in SINGLE_EVENT else lb.end
            end = last_event + quiet if policy.event else lb.end
            if opens > stop:
                continue  # after the sensor's part of the scenario
            if episodes and opens <= episodes[-1][1]:
                episodes[-1] = (episodes[-1][0], max(episodes[-1][1], end))
            else:
                episodes.append((opens, end))
        resolved_at: datetime | None = None
        streak, held = 0, False
        for opens, clears in episodes:
            if resolved_at is not None and opens - resolved_at <= reopen:
                streak += 1
                if not held:
                    told["reopened"] += 1
                held = False
            else:
                if held:
                    told["resolved"] += 1  # the window passed: the held resolution is final
                told["opened"] += 1
                streak, held = 0, False
            seen = clears <= (replay_end if policy.event or policy.wall_clock else stop)
            if not seen:
                resolved_at = None
                break
            resolved_at = clears
            held = streak >= MAX_FLAP_NOTIFICATIONS
            if not held:
                told["resolved"] += 1
        if held and resolved_at is not None:
            settle_by = stop if not (policy.event or policy.wall_clock) else replay_end
            if resolved_at + reopen <= settle_by:
                told["resolved"] += 1
    return out


def notification_counts(
    labels: Sequence[Label],
    notifications: Sequence[Notification],
    sensor_end: dict[str, datetime],
    replay_end: datetime,
    thresholds: Thresholds,
) -> list[NotificationCount]:
    """Per rule: expected notifications (from the labels) beside the queued ones."""
    expected = expected_notifications(labels, sensor_end, replay_end, thresholds)
    actual: dict[str, Counter[str]] = {}
    for n in notifications:
        actual.setdefault(n.rule, Counter())[n.event] += 1
    return [
        NotificationCount(
            rule,
            {e: expected.get(rule, Counter())[e] for e in EVENTS},
            {e: actual.get(rule, Counter())[e] for e in EVENTS},
        )
        for rule in sorted(set(expected) | set(actual))
    ]


def stale_during_uploads(uploads: Sequence[Upload], transitions: Sequence[Transition]) -> int:
    """``sensor_stale`` openings (opened or re-opened, notified or not) of a sensor while its
    backlog is arriving: there must be none (it is arriving, however old its readings)."""
    return sum(
        1
        for t in transitions
        if t.rule == "sensor_stale"
        and t.transition in ("opened", "reopened")
        and any(u.sensor_id == t.sensor_id and u.start <= t.at <= u.end for u in uploads)
    )
