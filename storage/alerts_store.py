"""Alerts and detector state in PostgreSQL: loaded and saved inside the batch's transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import orjson
import psycopg
from psycopg.types.json import Jsonb

from rules.alert_notify import MAX_ATTEMPTS, next_attempt, payload
from rules.alerts import Alert, AlertStatus, Severity, SiteInfo
from rules.detectors import JsonDict, StateKey
from storage.state_cache import StateCache

# Batches take this advisory lock shared; the tick and operators' commands take it exclusive,
# so an acknowledgement or a stale check never interleaves with a batch's alert update.
ALERT_LOCK = 0x616C7274  # "alrt"

COLUMNS = (
    "id, council, sensor_id, site, kind, rule, severity, state, opened_at,"
    " last_seen_at, count, flaps, acknowledged_at, resolved_at, resolved_by, details,"
    " notified, flap_streak"
)
A_COLUMNS = ", ".join("a." + c.strip() for c in COLUMNS.split(","))


def lock_shared(cur: psycopg.Cursor[Any]) -> None:
    """Take the alert lock for a batch (many batches at once)."""
    cur.execute("SELECT pg_advisory_xact_lock_shared(%s)", (ALERT_LOCK,))


def lock_exclusive(cur: psycopg.Cursor[Any]) -> None:
    """Take the alert lock alone (tick, ack, resolve)."""
    cur.execute("SELECT pg_advisory_xact_lock(%s)", (ALERT_LOCK,))


def save_states(
    cur: psycopg.Cursor[Any], states: dict[StateKey, JsonDict], cache: StateCache | None = None
) -> None:
    """Upsert detector states (one JSON document: no per-state parameter to escape); with a
    ``cache``, remember them at the row versions written."""
    if not states:
        return
    rows = [(sensor_id, detector, state) for (sensor_id, detector), state in states.items()]
    cur.execute(
        """
        INSERT INTO detector_state (sensor_id, detector, state, updated_at)
        SELECT e->>0, e->>1, e->2, now() FROM jsonb_array_elements(%s::jsonb) AS e
        ON CONFLICT (sensor_id, detector)
        DO UPDATE SET state = EXCLUDED.state, updated_at = EXCLUDED.updated_at
        RETURNING sensor_id, detector, xmin::text
        """,
        (orjson.dumps(rows).decode(),),
    )
    if cache is not None:
        cache.saved(cur.fetchall(), states)


def load_sites(cur: psycopg.Cursor[Any], sensor_ids: Iterable[str]) -> dict[str, SiteInfo]:
    """The site registry (``sensor_sites``) entries of ``sensor_ids``."""
    cur.execute(
        "SELECT sensor_id, site, threshold_pct FROM sensor_sites WHERE sensor_id = ANY(%s)",
        (sorted(set(sensor_ids)),),
    )
    return {
        sid: SiteInfo(site, None if pct is None else float(pct))
        for sid, site, pct in cur.fetchall()
    }


def states_of(cur: psycopg.Cursor[Any], detector: str) -> list[tuple[str, JsonDict]]:
    """Every sensor's state for ``detector``."""
    cur.execute("SELECT sensor_id, state FROM detector_state WHERE detector = %s", (detector,))
    return [(s, state) for s, state in cur.fetchall()]


def row_to_alert(row: Sequence[Any]) -> Alert:
    (
        id_,
        council,
        sensor_id,
        site,
        kind,
        rule,
        severity,
        state,
        opened_at,
        last_seen_at,
        count,
        flaps,
        acknowledged_at,
        resolved_at,
        resolved_by,
        details,
        notified,
        flap_streak,
    ) = row
    return Alert(
        id=int(id_),
        council=council,
        sensor_id=sensor_id,
        site=site,
        kind=kind,
        rule=rule,
        severity=Severity(severity),
        state=AlertStatus(state),
        opened_at=opened_at,
        last_seen_at=last_seen_at,
        count=int(count),
        flaps=int(flaps),
        acknowledged_at=acknowledged_at,
        resolved_at=resolved_at,
        resolved_by=resolved_by,
        details=dict(details or {}),
        notified=notified,
        flap_streak=int(flap_streak or 0),
    )


def latest_alerts(
    cur: psycopg.Cursor[Any], keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], Alert]:
    """The latest alert (any state) per (sensor_id, rule); withdrawn ones are not in the
    timeline any more."""
    pairs = sorted(set(keys))
    if not pairs:
        return {}
    cur.execute(
        f"""
        SELECT DISTINCT ON (a.sensor_id, a.rule) {A_COLUMNS}
          FROM alert_events a
          JOIN unnest(%s::text[], %s::text[]) AS k(sensor_id, rule)
            ON a.sensor_id = k.sensor_id AND a.rule = k.rule
         WHERE a.resolved_by IS DISTINCT FROM 'withdrawn'
         ORDER BY a.sensor_id, a.rule, a.id DESC
        """,
        ([p[0] for p in pairs], [p[1] for p in pairs]),
    )
    return {(a.sensor_id, a.rule): a for a in map(row_to_alert, cur.fetchall())}


def live_alerts(cur: psycopg.Cursor[Any], rules: Sequence[str]) -> list[Alert]:
    """Open or acknowledged alerts of ``rules``."""
    cur.execute(
        f"SELECT {COLUMNS} FROM alert_events WHERE state <> 'resolved' AND rule = ANY(%s)"
        " ORDER BY id",
        (list(rules),),
    )
    return [row_to_alert(r) for r in cur.fetchall()]


_INSERT_ALERT = """
INSERT INTO alert_events (council, sensor_id, site, kind, rule, opened_at,
    severity, state, last_seen_at, count, flaps, acknowledged_at,
    resolved_at, resolved_by, details, notified, flap_streak)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
RETURNING id
"""

_UPDATE_ALERT = """
UPDATE alert_events SET severity = %s, state = %s, last_seen_at = %s,
       count = %s, flaps = %s, acknowledged_at = %s, resolved_at = %s,
       resolved_by = %s, details = %s, notified = %s, flap_streak = %s,
       opened_at = %s, updated_at = now()
 WHERE id = %s
"""


def _alert_values(a: Alert) -> tuple[Any, ...]:
    return (
        a.severity.value,
        a.state.value,
        a.last_seen_at,
        a.count,
        a.flaps,
        a.acknowledged_at,
        a.resolved_at,
        a.resolved_by,
        Jsonb(a.details),
        a.told,
        a.flap_streak,
    )


def save_alerts(cur: psycopg.Cursor[Any], alerts: Sequence[Alert]) -> list[Alert]:
    """Insert new alerts (``id`` None) and update the others, in order; returns them with ids.

    Each run of consecutive inserts (or updates) is one pipelined ``executemany``: the
    statements run in the same order as one by one, in one round trip per run.
    """
    saved: list[Alert] = []
    start = 0
    while start < len(alerts):
        new = alerts[start].id is None
        stop = start
        while stop < len(alerts) and (alerts[stop].id is None) == new:
            stop += 1
        run = alerts[start:stop]
        if new:
            cur.executemany(
                _INSERT_ALERT,
                [
                    (a.council, a.sensor_id, a.site, a.kind, a.rule, a.opened_at, *_alert_values(a))
                    for a in run
                ],
                returning=True,
            )
            ids: list[int] = []
            while True:
                row = cur.fetchone()
                assert row is not None
                ids.append(int(row[0]))
                if not cur.nextset():
                    break
            saved += [replace(a, id=i) for a, i in zip(run, ids, strict=True)]
        else:
            cur.executemany(_UPDATE_ALERT, [(*_alert_values(a), a.opened_at, a.id) for a in run])
            saved += run
        start = stop
    return saved


def get_alert(cur: psycopg.Cursor[Any], alert_id: int) -> Alert | None:
    """One alert by id."""
    cur.execute(f"SELECT {COLUMNS} FROM alert_events WHERE id = %s", (alert_id,))
    row = cur.fetchone()
    return row_to_alert(row) if row else None


def list_alerts(
    cur: psycopg.Cursor[Any],
    *,
    states: Sequence[str],
    council: str | None = None,
    sensor_id: str | None = None,
    rule: str | None = None,
    since: datetime | None = None,
    limit: int = 100,
) -> list[Alert]:
    """Alerts newest first, filtered."""
    cur.execute(
        f"""
        SELECT {COLUMNS} FROM alert_events
         WHERE state = ANY(%s)
           AND (%s::text IS NULL OR council = %s) AND (%s::text IS NULL OR sensor_id = %s)
           AND (%s::text IS NULL OR rule = %s) AND (%s::timestamptz IS NULL OR opened_at >= %s)
         ORDER BY opened_at DESC, id DESC LIMIT %s
        """,
        (list(states), council, council, sensor_id, sensor_id, rule, rule, since, since, limit),
    )
    return [row_to_alert(r) for r in cur.fetchall()]


def take_out_of_range_letters(
    cur: psycopg.Cursor[Any], limit: int = 5000
) -> list[tuple[int, str, str, datetime]]:
    """Dead letters rejected as physically impossible and not yet alerted on; marks them."""
    cur.execute(
        """
        UPDATE dead_letters SET alerted_at = now()
         WHERE id IN (SELECT id FROM dead_letters
                       WHERE reason = 'out_of_range' AND alerted_at IS NULL
                       ORDER BY id LIMIT %s)
        RETURNING id, mqtt_topic, detail, received_at
        """,
        (limit,),
    )
    return sorted((int(i), t, d, r) for i, t, d, r in cur.fetchall())


def held_alerts(cur: psycopg.Cursor[Any]) -> list[Alert]:
    """Alerts resolved automatically whose resolution is held back (flapping), oldest first."""
    cur.execute(
        f"SELECT {COLUMNS} FROM alert_events WHERE state = 'resolved' AND notified = 'open'"
        " ORDER BY id"
    )
    return [row_to_alert(r) for r in cur.fetchall()]


def transition_name(before: Alert | None, after: Alert) -> str | None:
    """The transition one step of an episode makes; None for a repeat (count, details)."""
    if before is None:
        return "opened"
    if before.live and not after.live:
        return "withdrawn" if after.resolved_by == "withdrawn" else "resolved"
    if not before.live and after.live:
        return "reopened"
    if before.held and not after.held:
        return "settled"
    if after.live and after.severity.rank > before.severity.rank:
        return "escalated"
    return None


def record_transitions(
    cur: psycopg.Cursor[Any], steps: Sequence[tuple[Alert, Alert | None, Alert, str | None]]
) -> None:
    """Log ``(saved episode, before, after, event queued)`` steps in ``alert_transitions``."""
    rows = []
    for saved, before, after, event in steps:
        name = transition_name(before, after)
        if name is None:
            continue
        at = {
            "opened": after.opened_at,
            "resolved": after.resolved_at,
            "settled": after.resolved_at,
            "withdrawn": after.resolved_at,
        }.get(name) or after.last_seen_at
        actor = after.resolved_by if name in ("resolved", "withdrawn", "settled") else None
        rows.append(
            (saved.id, name, at, after.state.value, after.severity.value, after.flaps, actor, event)
        )
    if rows:
        cur.executemany(
            "INSERT INTO alert_transitions (alert_id, transition, at, state, severity, flaps,"
            " actor, event) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            rows,
        )


def enqueue_notifications(cur: psycopg.Cursor[Any], events: Sequence[tuple[Alert, str]]) -> None:
    """Queue webhook notifications (the outbox) in the caller's transaction, in order."""
    if events:
        cur.executemany(
            "INSERT INTO alert_notifications (alert_id, event, payload) VALUES (%s, %s, %s)",
            [(alert.id, event, Jsonb(payload(alert, event))) for alert, event in events],
        )


def deliver_due(
    conn: psycopg.Connection[Any],
    post: Callable[[dict[str, Any]], None],
    now: datetime,
    *,
    limit: int = 100,
    max_attempts: int = MAX_ATTEMPTS,
) -> tuple[int, int, int]:
    """Post pending notifications in order; returns (delivered, to retry, dead-lettered).

    In order: the oldest pending notification goes first, and a pass stops at a failure or
    at one whose retry is not due, so a receiver never sees "resolved" before "opened". One
    that exhausts its attempts is dead-lettered and the queue moves on. ``post`` raises on
    failure. Each outcome commits on its own: a crash re-posts at most the one in flight.
    """
    delivered = retry = dead = 0
    for _ in range(limit):
        with conn.transaction(), conn.cursor() as cur:
            cur.execute(
                "SELECT id, payload, attempts, next_attempt_at FROM alert_notifications"
                " WHERE delivered_at IS NULL AND dead_at IS NULL"
                " ORDER BY id LIMIT 1 FOR UPDATE"
            )
            row = cur.fetchone()
            if row is None or row[3] > now:
                break
            note_id, body, attempts = int(row[0]), dict(row[1]), int(row[2]) + 1
            try:
                post(body)
            except Exception as exc:  # any failure of the receiver is a retry, never a crash
                error = f"{type(exc).__name__}: {exc}"[:500]
                when = next_attempt(attempts, now, max_attempts)
                cur.execute(
                    "UPDATE alert_notifications SET attempts = %s, last_error = %s,"
                    " next_attempt_at = COALESCE(%s, next_attempt_at),"
                    " dead_at = CASE WHEN %s::timestamptz IS NULL THEN %s END WHERE id = %s",
                    (attempts, error, when, when, now, note_id),
                )
                if when is not None:
                    retry += 1
                    break
                dead += 1
                continue
            cur.execute(
                "UPDATE alert_notifications SET attempts = %s, delivered_at = %s,"
                " last_error = NULL WHERE id = %s",
                (attempts, now, note_id),
            )
            delivered += 1
    return delivered, retry, dead
