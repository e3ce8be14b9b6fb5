"""The alert state machine: signals from detectors become alert episodes (pure, no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any


class Severity(StrEnum):
    """How urgent an alert is; ordered info < warning < critical."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """0, 1, 2 for info, warning, critical."""
        return ("info", "warning", "critical").index(self.value)


class AlertStatus(StrEnum):
    """open → acknowledged → resolved (or open → resolved)."""

    OPEN = "open"
    ACKNOWLEDGED = "acknowledged"
    RESOLVED = "resolved"


@dataclass(frozen=True, slots=True)
class Signal:
    """A detector's verdict at event time ``at``: the rule's condition holds or has cleared.

    Condition rules send ``active=True`` for every reading that violates the rule and one
    ``active=False`` when it clears (detectors apply their own value hysteresis). Event rules
    (a reset, an impossible value) only ever send ``active=True``; quiet time resolves them.
    """

    sensor_id: str
    council: str
    kind: str
    rule: str
    active: bool
    at: datetime
    severity: Severity | None = None  # None: the rule's default
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RulePolicy:
    """How one rule's alerts live: default severity, resolution and flap suppression.

    ``quiet_resolve_s``: an event rule's alert resolves after this long without a repeat
    (checked by the periodic tick). ``reopen_within_s``: a condition that returns this soon
    after its alert resolved re-opens that same alert (``flaps`` + 1) instead of a new one,
    so a flapping sensor is one alert, not a storm. ``window_s`` is the rule's own averaging
    window, the yardstick for its detection delay.
    """

    severity: Severity
    event: bool = False
    quiet_resolve_s: float = 6 * 3600.0
    reopen_within_s: float = 3600.0
    window_s: float = 0.0
    description: str = ""
    wall_clock: bool = False  # raised by the tick on the engine's clock, not at event time


RULES: dict[str, RulePolicy] = {
    # Air quality
    "daqi_high": RulePolicy(
        Severity.WARNING, window_s=8 * 3600.0, description="Site DAQI High (7-9) or above"
    ),
    "daqi_very_high": RulePolicy(
        Severity.CRITICAL, window_s=8 * 3600.0, description="Site DAQI Very High (10)"
    ),
    "no2_hourly_exceedance": RulePolicy(
        Severity.WARNING,
        event=True,
        window_s=3600.0,
        description="NO2 hourly mean above the 200 µg/m³ limit",
    ),
    "pm10_daily_exceedance": RulePolicy(
        Severity.WARNING,
        event=True,
        window_s=86400.0,
        description="PM10 daily mean above the 50 µg/m³ limit",
    ),
    # Waste
    "bin_collection_needed": RulePolicy(Severity.INFO, description="Fill at or over threshold"),
    "bin_fire_risk": RulePolicy(
        Severity.CRITICAL,
        reopen_within_s=6 * 3600.0,
        description="Temperature over limit, fast rise or fire flag",
    ),
    "bin_tilted": RulePolicy(Severity.WARNING, description="Bin tilted or knocked over"),
    "bin_fill_drop_review": RulePolicy(
        Severity.INFO, event=True, description="Fill dropped with no collection due"
    ),
    # Energy
    "energy_out_of_hours": RulePolicy(
        Severity.WARNING, window_s=1800.0, description="Out-of-hours use above the learned baseline"
    ),
    "energy_spike": RulePolicy(  # a new spike an hour after the last is a new alert (issue 20)
        Severity.WARNING,
        event=True,
        quiet_resolve_s=3600.0,
        reopen_within_s=0.0,
        description="Power far above the hour-of-week baseline",
    ),
    "energy_register_reset": RulePolicy(
        Severity.WARNING,
        event=True,
        quiet_resolve_s=86400.0,
        description="Cumulative register went backwards",
    ),
    # Sensor health
    "sensor_stale": RulePolicy(
        Severity.WARNING, wall_clock=True, description="No reading for 3x the interval"
    ),
    "sensor_flatline": RulePolicy(Severity.WARNING, description="Same value N times running"),
    "sensor_impossible_value": RulePolicy(
        Severity.WARNING,
        event=True,
        wall_clock=True,
        description="Physically impossible value (dead letter)",
    ),
    "sensor_low_battery": RulePolicy(
        Severity.WARNING, reopen_within_s=86400.0, description="Battery below threshold"
    ),
    "sensor_data_delayed": RulePolicy(
        Severity.INFO, description="Readings received over 2x the interval after measured"
    ),
    # Statistical
    "statistical_outlier": RulePolicy(Severity.INFO, description="Robust z-score over limit"),
}


def policy_for(rule: str) -> RulePolicy:
    """The rule's policy; unknown rules (new detectors) get a warning condition policy."""
    return RULES.get(rule, RulePolicy(Severity.WARNING))


@dataclass(frozen=True, slots=True)
class Alert:
    """One alert episode as stored; ``id`` is ``None`` until the store inserts it."""

    id: int | None
    council: str
    sensor_id: str
    site: str
    kind: str
    rule: str
    severity: Severity
    state: AlertStatus
    opened_at: datetime
    last_seen_at: datetime
    count: int = 1
    flaps: int = 0
    acknowledged_at: datetime | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    # What the last notification told operators ("open"/"resolved"; None: a row from before
    # it was kept) and the re-opens since a held-back resolution was last made final. Both
    # are bookkeeping of the notifications, not of the episode: equality ignores them.
    notified: str | None = field(default=None, compare=False)
    flap_streak: int = field(default=0, compare=False)

    @property
    def live(self) -> bool:
        """Open or acknowledged."""
        return self.state is not AlertStatus.RESOLVED

    @property
    def told(self) -> str:
        """What operators were last told: ``open`` or ``resolved`` (docs/alerts.md)."""
        return self.notified or ("open" if self.live else "resolved")

    @property
    def held(self) -> bool:
        """Resolved, but the resolution is held back (flapping) until it proves final."""
        return not self.live and self.told == "open"


@dataclass(frozen=True, slots=True)
class SiteInfo:
    """A sensor's entry in the site registry (the ``sensor_sites`` table)."""

    site: str
    fill_threshold_pct: float | None = None  # a bin's own collection threshold


Sites = Mapping[str, SiteInfo]  # sensor_id -> its site; a sensor not in it is its own site


def alert_to_json(alert: Alert) -> dict[str, Any]:
    """An alert as JSON: every column of ``alert_events`` the ``alerts`` view, webhooks,
    the CLI and detector snapshots show."""

    def iso(t: datetime | None) -> str | None:
        return t.isoformat() if t else None

    return {
        "id": alert.id,
        "council": alert.council,
        "sensor_id": alert.sensor_id,
        "site": alert.site,
        "kind": alert.kind,
        "rule": alert.rule,
        "severity": alert.severity.value,
        "state": alert.state.value,
        "opened_at": iso(alert.opened_at),
        "acknowledged_at": iso(alert.acknowledged_at),
        "resolved_at": iso(alert.resolved_at),
        "resolved_by": alert.resolved_by,
        "last_seen_at": iso(alert.last_seen_at),
        "count": alert.count,
        "flaps": alert.flaps,
        "details": alert.details,
        "notified": alert.told,
        "flap_streak": alert.flap_streak,
    }


def site_of(sensor_id: str, sites: Sites | None = None) -> str:
    """The site a sensor belongs to: its registry entry, or the sensor itself."""
    info = sites.get(sensor_id) if sites else None
    return info.site if info else sensor_id


def apply_signal(latest: Alert | None, signal: Signal, sites: Sites | None = None) -> Alert | None:
    """The alert after ``signal``, given the latest alert for its (sensor, rule); None: no change.

    A returned alert with ``id=None`` is new; otherwise it replaces the stored row.
    """
    policy = policy_for(signal.rule)
    severity = signal.severity or policy.severity
    if not signal.active:
        if latest is None or not latest.live or policy.event:
            return None
        if signal.at < latest.last_seen_at and not policy.wall_clock:
            return None  # a clear older than the last violation
        return auto_resolved(
            replace(latest, details={**latest.details, **signal.details}),
            max(signal.at, latest.opened_at),
        )
    if latest is not None and latest.live:
        return replace(
            latest,
            count=latest.count + 1,
            opened_at=min(latest.opened_at, signal.at),  # a late reading can start it earlier
            last_seen_at=max(latest.last_seen_at, signal.at),
            severity=severity if severity.rank > latest.severity.rank else latest.severity,
            details={**latest.details, **signal.details},
        )
    if (
        latest is not None
        and latest.resolved_by == "auto"
        and latest.resolved_at is not None
        and signal.at - latest.resolved_at <= timedelta(seconds=policy.reopen_within_s)
        and signal.at >= latest.resolved_at
    ):
        return replace(
            latest,
            state=AlertStatus.OPEN,
            resolved_at=None,
            resolved_by=None,
            acknowledged_at=None,
            count=latest.count + 1,
            flaps=latest.flaps + 1,
            last_seen_at=signal.at,
            details={**latest.details, **signal.details},
            notified="open",  # held back (flapping): operators still think it open
            flap_streak=latest.flap_streak + 1,
        )
    return Alert(
        id=None,
        council=signal.council,
        sensor_id=signal.sensor_id,
        site=site_of(signal.sensor_id, sites),
        kind=signal.kind,
        rule=signal.rule,
        severity=severity,
        state=AlertStatus.OPEN,
        opened_at=signal.at,
        last_seen_at=signal.at,
        details=dict(signal.details),
        notified="open",
    )


MAX_FLAP_NOTIFICATIONS = 3
"""A flapping alert notifies its first 3 re-opens; after that its automatic resolutions are
held back until final, so resolutions and re-opens are suppressed in pairs."""


def auto_resolved(alert: Alert, at: datetime) -> Alert:
    """``alert`` resolved automatically at ``at``; held back (told stays open) when flapping."""
    flapping = alert.flap_streak >= MAX_FLAP_NOTIFICATIONS
    return replace(
        alert,
        state=AlertStatus.RESOLVED,
        resolved_at=at,
        resolved_by="auto",
        notified=alert.told if flapping else "resolved",
    )


def settled(alert: Alert) -> Alert:
    """A held-back resolution made final: operators are told, the flap streak starts again."""
    return replace(alert, notified="resolved", flap_streak=0)


def settle_due(alert: Alert, now: datetime, watermark: float | None, arrival: float | None) -> bool:
    """Whether a held-back resolution is final: its rule's re-open window has passed.

    On event time for condition rules (``watermark``: the sensor's newest reading, epoch s),
    so both engines settle the same alerts whatever their batching; on ``now`` for wall-clock
    and event rules, and for a sensor from which nothing has arrived for the window.
    """
    if not alert.held or alert.resolved_at is None:
        return False
    policy = policy_for(alert.rule)
    window = policy.reopen_within_s
    end = alert.resolved_at.timestamp() + window
    if policy.wall_clock or policy.event:
        return now.timestamp() >= end
    if watermark is not None and watermark >= end:
        return True
    quiet = arrival is None or now.timestamp() - arrival >= window
    return quiet and now.timestamp() >= end


def is_new_episode(before: Alert | None, after: Alert) -> bool:
    """Whether ``apply_signal`` turned ``before`` into a new episode rather than a step of it."""
    if before is None:
        return True
    if after.id is not None:
        return False  # a stored episode keeps its id
    return before.id is not None or (after.count == 1 and after.opened_at != before.opened_at)


def apply_signals(
    latest: dict[tuple[str, str], Alert],
    signals: list[Signal],
    steps: list[tuple[int, Alert | None, Alert]] | None = None,
    sites: Sites | None = None,
) -> list[Alert]:
    """Apply signals in event-time order; returns every changed or new alert, in order.

    ``latest`` holds the latest stored alert per (sensor, rule). Two episodes of one rule in
    one batch come back as two alerts (the first already resolved). ``steps``, when given,
    receives every transition (before is None for a new episode), e.g. for notifications.
    """
    current = dict(latest)
    changed: dict[tuple[str, str], list[Alert]] = {}
    raw: list[tuple[tuple[str, str], int, Alert | None, Alert]] = []
    for signal in sorted(signals, key=lambda s: (s.at, s.sensor_id, s.rule, s.active)):
        key = (signal.sensor_id, signal.rule)
        before = current.get(key)
        after = apply_signal(before, signal, sites)
        if after is None:
            continue
        episodes = changed.setdefault(key, [])
        fresh = is_new_episode(before, after)
        if fresh and before is not None and before.held:  # its re-open window has passed
            final = settled(before)
            if episodes:
                episodes[-1] = final
            else:
                episodes.append(final)
            raw.append((key, len(episodes) - 1, before, final))
            current[key] = final
        if fresh or not episodes:
            episodes.append(after)
        else:
            episodes[-1] = after
        raw.append((key, len(episodes) - 1, None if fresh else before, after))
        current[key] = after
    order = [(key, i) for key, episodes in changed.items() for i in range(len(episodes))]
    if steps is not None:
        position = {k: n for n, k in enumerate(order)}
        steps.extend((position[(k, i)], b, a) for k, i, b, a in raw)
    return [changed[k][i] for k, i in order]


def quiet_resolutions(live: list[Alert], now: datetime) -> list[Alert]:
    """Event-rule alerts with no repeat for their quiet period, resolved at ``now``."""
    out = []
    for alert in live:
        policy = policy_for(alert.rule)
        if (
            alert.live
            and policy.event
            and now - alert.last_seen_at >= timedelta(seconds=policy.quiet_resolve_s)
        ):
            out.append(auto_resolved(alert, now))
    return out


def acknowledge(alert: Alert, at: datetime) -> Alert:
    """Operator acknowledgement; only an open alert can be acknowledged."""
    if alert.state is not AlertStatus.OPEN:
        raise ValueError(f"alert {alert.id} is {alert.state.value}, not open")
    return replace(alert, state=AlertStatus.ACKNOWLEDGED, acknowledged_at=at)


def resolve(alert: Alert, at: datetime, by: str) -> Alert:
    """Operator resolution of a live alert (never re-opened by a later repeat)."""
    if not alert.live:
        raise ValueError(f"alert {alert.id} is already resolved")
    return replace(
        alert,
        state=AlertStatus.RESOLVED,
        resolved_at=at,
        resolved_by=by,
        notified="resolved",
        flap_streak=0,
    )
