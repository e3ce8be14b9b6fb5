"""Detector snapshots, a sensor's stored history and episode rewrites for late readings."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
import psycopg

from rules.alerts import Alert
from rules.detectors import JsonDict, StateKey
from sensors.reading import Reading
from storage.alerts_store import COLUMNS, row_to_alert

SnapshotRow = tuple[float, JsonDict | None, dict[str, Any]]  # (t, state, alerts by rule)


def load_snapshots(cur: psycopg.Cursor[Any], key: StateKey) -> list[SnapshotRow]:
    """A (sensor, detector)'s snapshots, oldest first."""
    cur.execute(
        "SELECT t, state, alerts FROM detector_snapshots"
        " WHERE sensor_id = %s AND detector = %s ORDER BY t",
        key,
    )
    return [(float(t), state, dict(alerts or {})) for t, state, alerts in cur.fetchall()]


def save_snapshots(
    cur: psycopg.Cursor[Any], rows: Sequence[tuple[StateKey, float, JsonDict | None, JsonDict]]
) -> None:
    """Upsert snapshots ((sensor, detector), t, state, alerts)."""
    if not rows:
        return
    cur.execute(
        """
        INSERT INTO detector_snapshots (sensor_id, detector, t, state, alerts)
        SELECT s, d, t, j::jsonb, a::jsonb
          FROM unnest(%s::text[], %s::text[], %s::float8[], %s::text[], %s::text[])
               AS u(s, d, t, j, a)
        ON CONFLICT (sensor_id, detector, t)
        DO UPDATE SET state = EXCLUDED.state, alerts = EXCLUDED.alerts
        """,
        (
            [k[0] for k, *_ in rows],
            [k[1] for k, *_ in rows],
            [t for _, t, _, _ in rows],
            [None if st is None else orjson.dumps(st).decode() for _, _, st, _ in rows],
            [orjson.dumps(al).decode() for *_, al in rows],
        ),
    )


def prune_snapshots(cur: psycopg.Cursor[Any], keys: Sequence[StateKey], horizon_s: float) -> None:
    """Drop snapshots more than ``horizon_s`` of event time behind each key's newest one,
    keeping the newest one that is (it still covers the horizon's start)."""
    if not keys:
        return
    cur.execute(
        """
        DELETE FROM detector_snapshots d
         USING unnest(%s::text[], %s::text[]) AS k(s, det)
         WHERE d.sensor_id = k.s AND d.detector = k.det
           AND d.t < (SELECT max(t) FROM detector_snapshots m
                       WHERE m.sensor_id = k.s AND m.detector = k.det
                         AND m.t <= (SELECT max(t) FROM detector_snapshots n
                                      WHERE n.sensor_id = k.s AND n.detector = k.det) - %s)
        """,
        ([k[0] for k in keys], [k[1] for k in keys], horizon_s),
    )


def readings_since(cur: psycopg.Cursor[Any], sensor_id: str, t: float) -> list[Reading]:
    """The sensor's stored readings at or after event time ``t`` (epoch s)."""
    cur.execute(
        "SELECT time, council, sensor_id, kind, metric, value, unit, received_at FROM readings"
        " WHERE sensor_id = %s AND time >= to_timestamp(%s)",
        (sensor_id, t),
    )
    return [
        Reading(
            time=time,
            council=council,
            sensor_id=sid,
            kind=kind,
            metric=metric,
            value=value,
            unit=unit,
            received_at=received,
        )
        for time, council, sid, kind, metric, value, unit, received in cur.fetchall()
    ]


def episodes_since(
    cur: psycopg.Cursor[Any], sensor_id: str, rule: str, opened_from: datetime
) -> list[Alert]:
    """A (sensor, rule)'s episodes opened at or after ``opened_from``, oldest first."""
    cur.execute(
        f"SELECT {COLUMNS} FROM alert_events WHERE sensor_id = %s AND rule = %s"
        " AND opened_at >= %s AND resolved_by IS DISTINCT FROM 'withdrawn'"
        " ORDER BY opened_at, id",
        (sensor_id, rule, opened_from),
    )
    return [row_to_alert(r) for r in cur.fetchall()]


def withdraw_episodes(cur: psycopg.Cursor[Any], ids: Sequence[int], now: datetime) -> None:
    """Close episodes the readings no longer support, kept as ``resolved_by = 'withdrawn'``."""
    if ids:
        cur.execute(
            "UPDATE alert_events SET state = 'resolved', resolved_by = 'withdrawn',"
            " resolved_at = COALESCE(resolved_at, %s), updated_at = now() WHERE id = ANY(%s)",
            (now, list(ids)),
        )
