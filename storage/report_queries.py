"""The SQL the reports issue against the read contract (`readings`, `sensor_sites`).

The council names come from the `councils` registry when this login may read it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import psycopg

_SERIES = """
SELECT r.sensor_id, r.metric, r.council, coalesce(s.site, r.sensor_id), s.threshold_pct,
       r.time, r.value
  FROM readings r
  LEFT JOIN sensor_sites s ON s.sensor_id = r.sensor_id
 WHERE r.kind = %(kind)s AND r.metric = ANY(%(metrics)s)
   AND r.time >= %(since)s AND r.time < %(until)s
   AND (%(council)s::text IS NULL OR r.council = %(council)s)
 ORDER BY r.sensor_id, r.metric, r.time
"""


@dataclass(slots=True)
class Series:
    """One sensor's reads of one metric, in time order, with its site metadata."""

    sensor_id: str
    metric: str
    council: str
    site: str
    threshold_pct: float | None
    times: list[datetime] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


def series(
    conn: psycopg.Connection,
    kind: str,
    metrics: Sequence[str],
    since: datetime,
    until: datetime,
    council: str | None = None,
) -> dict[tuple[str, str], Series]:
    """Reads of ``kind``/``metrics`` in ``[since, until)``, keyed by (sensor id, metric)."""
    out: dict[tuple[str, str], Series] = {}
    params = {
        "kind": kind,
        "metrics": list(metrics),
        "since": since,
        "until": until,
        "council": council,
    }
    with conn.cursor() as cur:
        cur.execute(_SERIES, params)
        while batch := cur.fetchmany(50_000):
            for sensor_id, metric, cncl, site, threshold, t, v in batch:
                s = out.get((sensor_id, metric))
                if s is None:
                    s = out[(sensor_id, metric)] = Series(sensor_id, metric, cncl, site, threshold)
                s.times.append(t)
                s.values.append(float(v))
    return out


def council_names(conn: psycopg.Connection, slugs: Sequence[str]) -> dict[str, str]:
    """Display names of ``slugs`` from the ``councils`` registry, for those it has.

    Empty when the registry is not there or this login may not read it (the reader role
    and the council roles are never granted it): the reports then show the slugs.
    """
    with conn.cursor() as cur:
        cur.execute(
            "SELECT to_regclass('councils') IS NOT NULL"
            " AND has_table_privilege(to_regclass('councils'), 'SELECT')"
        )
        row = cur.fetchone()
        if not slugs or row is None or not row[0]:
            return {}
        cur.execute("SELECT slug, name FROM councils WHERE slug = ANY(%s)", (list(slugs),))
        return {str(slug): str(name) for slug, name in cur.fetchall()}


def council_is_known(conn: psycopg.Connection, council: str) -> bool:
    """True when ``council`` is registered, has site metadata or has sent any reading."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT EXISTS (SELECT 1 FROM readings WHERE council = %(c)s)"
            " OR EXISTS (SELECT 1 FROM sensor_sites WHERE council = %(c)s)",
            {"c": council},
        )
        row = cur.fetchone()
        if row is not None and row[0]:
            return True
    return council in council_names(conn, [council])


def councils_with(conn: psycopg.Connection, kind: str) -> list[str]:
    """Every council with a reading of ``kind`` (for the message that names the choices)."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT DISTINCT council FROM readings WHERE kind = %s ORDER BY 1 LIMIT 50", (kind,)
        )
        return [str(r[0]) for r in cur.fetchall()]


def extent(
    conn: psycopg.Connection, kind: str, council: str | None = None
) -> tuple[datetime, datetime] | None:
    """First and last reading time of ``kind`` (of one council), ``None`` without any."""
    with conn.cursor() as cur:
        cur.execute(
            "SELECT min(time), max(time) FROM readings WHERE kind = %(kind)s"
            " AND (%(council)s::text IS NULL OR council = %(council)s)",
            {"kind": kind, "council": council},
        )
        row = cur.fetchone()
    if row is None or row[0] is None:
        return None
    return row[0], row[1]
