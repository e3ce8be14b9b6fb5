"""Detection benchmark: per-rule precision, recall and delay of stored alerts vs labels."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from benchmarks.detect_replay import StoredAlert
from rules.thresholds import Thresholds
from sensors.catalogue import KINDS
from simulator.anomaly_labels import Label


def rule_window(rule: str, kind: str, label: Label, params: dict) -> float:
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
    sensor_days: dict[str, float],
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
