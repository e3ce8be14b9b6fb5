"""Which alert changes are worth a notification, their payload, and the retry schedule (pure)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from rules.alerts import MAX_FLAP_NOTIFICATIONS, Alert, alert_to_json

__all__ = ["MAX_FLAP_NOTIFICATIONS", "next_attempt", "notification_event", "payload"]
MAX_ATTEMPTS = 8  # ~10 s, 20 s, 40 s, ... then the notification is dead-lettered
FIRST_RETRY_S = 10.0
MAX_RETRY_S = 3600.0


def notification_event(before: Alert | None, after: Alert) -> str | None:
    """``opened``, ``reopened``, ``escalated``, ``resolved`` or None (repeats stay quiet).

    ``before`` is the same episode just before this step (None for a new episode). A
    notification is due when what operators were told (``Alert.told``) changes, so a
    flapping alert's held-back resolution and the re-open that cancels it both stay quiet,
    and its resolution is notified once it proves final (docs/alerts.md, "Notifications").
    """
    if before is None:
        return "opened" if after.live else None
    if before.told != after.told:
        return "resolved" if after.told == "resolved" else "reopened"
    if after.live and after.severity.rank > before.severity.rank:
        return "escalated"
    return None


def payload(alert: Alert, event: str) -> dict[str, Any]:
    """The JSON body posted to the webhook: the alert's columns plus the event."""
    return {"event": event, **alert_to_json(alert)}


def next_attempt(attempts: int, now: datetime, max_attempts: int = MAX_ATTEMPTS) -> datetime | None:
    """When to retry after ``attempts`` failed tries; None: give up (dead-letter it)."""
    if attempts >= max_attempts:
        return None
    return now + timedelta(seconds=min(FIRST_RETRY_S * 2 ** (attempts - 1), MAX_RETRY_S))
