"""The SQL the reports issue against the read contract (`readings`, `sensor_sites`)."""

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
