"""The read-contract queries the platform and its dashboards issue, and how results compare."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import psycopg

from storage import migrate
from storage.rollups import refresh_range
from tests.storage.conformance.seed import START, Seed, load_with_inserts, load_with_store

# Every query that reads the contract, with the parameters it runs with in the suite.
# Dashboards: add each panel's SQL here (Grafana macros expanded the way Grafana does, with
# `timescaledb: true`; plain PostgreSQL gets a compatible time_bucket from migration 012).
PARAMS: dict[str, Any] = {
    "start": START,
    "stop": datetime.fromisoformat("2026-03-30T12:00:00+00:00"),
    "sensor": "abe-air-0",
    "metric": "pm2_5",
    "council": "edinburgh",
    "limit": 25.0,
}
QUERIES: dict[str, str] = {
    "sensor_series_1h": """
        SELECT bucket AS "time", mean, min, max, n FROM readings_1h
         WHERE sensor_id = %(sensor)s AND metric = %(metric)s
           AND bucket >= %(start)s AND bucket < %(stop)s ORDER BY 1""",
    "sensor_series_15m_grafana": """
        SELECT time_bucket('3600.000s', bucket) AS "time", sum(sum) / sum(n) AS pm2_5
          FROM readings_15m
         WHERE bucket BETWEEN '2026-03-28T00:00:00Z' AND '2026-03-30T12:00:00Z'
           AND sensor_id = %(sensor)s AND metric = %(metric)s
         GROUP BY 1 ORDER BY 1""",
    "council_hourly_mean": """
        SELECT bucket AS "time", mean, sensors, n FROM readings_council_1h
         WHERE council = %(council)s AND kind = 'air_quality' AND metric = %(metric)s
           AND bucket >= %(start)s AND bucket < %(stop)s ORDER BY 1""",
    "council_daily_all": """
        SELECT bucket, council, kind, metric, sensors, n, sum, min, max, mean
          FROM readings_council_1d ORDER BY 1, 2, 3, 4""",
    "period_mean_top_sensors": """
        SELECT sensor_id, council, sum(sum) / sum(n) AS mean, sum(n) AS n FROM readings_1d
         WHERE metric = %(metric)s AND bucket >= %(start)s AND bucket < %(stop)s
         GROUP BY sensor_id, council ORDER BY mean DESC, sensor_id LIMIT 10""",
    "exceedance_hours": """
        SELECT sensor_id, count(*) FILTER (WHERE mean > %(limit)s) AS hours_over,
               count(*) AS hours FROM readings_1h
         WHERE metric = %(metric)s AND bucket >= %(start)s AND bucket < %(stop)s
         GROUP BY sensor_id ORDER BY sensor_id""",
    "latest_per_sensor": """
        SELECT DISTINCT ON (sensor_id, metric) sensor_id, metric, last, last_time
          FROM readings_15m WHERE bucket >= %(stop)s::timestamptz - INTERVAL '2 days'
         ORDER BY sensor_id, metric, bucket DESC""",
    "latest_per_sensor_lateral": """
        SELECT k.sensor_id, k.metric, x.last, x.last_time
          FROM (SELECT DISTINCT sensor_id, metric FROM readings_1d
                 WHERE bucket >= %(stop)s::timestamptz - INTERVAL '2 days') k
         CROSS JOIN LATERAL (SELECT last, last_time FROM readings_15m f
                 WHERE f.sensor_id = k.sensor_id AND f.metric = k.metric
                 ORDER BY f.bucket DESC LIMIT 1) x
         ORDER BY 1, 2""",
    "bin_fill_daily_max": """
        SELECT bucket AS "time", sensor_id, max, last FROM readings_1d
         WHERE kind = 'waste_bin' AND metric = 'fill_level' ORDER BY 1, 2""",
    "power_by_council_1h": """
        SELECT bucket AS "time", council, sum(mean) AS watts FROM readings_1h
         WHERE metric = 'power' GROUP BY 1, 2 ORDER BY 1, 2""",
    "ward_daily_mean": """
        SELECT d.bucket AS "time", s.ward, sum(d.sum) / sum(d.n) AS mean, sum(d.n) AS n
          FROM readings_1d d JOIN sensor_sites s USING (sensor_id)
         WHERE d.metric = %(metric)s GROUP BY 1, 2 ORDER BY 1, 2""",
    "minute_series": """
        SELECT bucket AS "time", n, mean, last FROM readings_1m
         WHERE sensor_id = %(sensor)s AND metric = %(metric)s ORDER BY 1""",
    "raw_window": """
        SELECT time, value FROM readings
         WHERE sensor_id = %(sensor)s AND metric = %(metric)s
           AND time >= %(start)s AND time < %(start)s::timestamptz + INTERVAL '6 hours'
         ORDER BY time""",
}
ROLLUP_DUMP = "SELECT * FROM {name} ORDER BY bucket, council, {rest}"


def fetch(url: str, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple]:
    """Run one query on its own connection (the WASM server takes one at a time)."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


def same_rows(a: Sequence[tuple], b: Sequence[tuple], rel: float = 1e-9) -> str | None:
    """None when equal (floats to ``rel``); otherwise the first difference, for the message."""
    if len(a) != len(b):
        return f"{len(a)} rows vs {len(b)} rows"
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        if len(x) != len(y) or not all(_same(p, q, rel) for p, q in zip(x, y, strict=True)):
            return f"row {i}: {x} != {y}"
    return None


def _same(p: object, q: object, rel: float) -> bool:
    if isinstance(p, float) or isinstance(q, float):
        return (
            isinstance(p, int | float)
            and isinstance(q, int | float)
            and math.isclose(p, q, rel_tol=rel, abs_tol=1e-9)
        )
    return p == q


@dataclass
class ContractDatabases:
    """Both databases migrated and loaded with the same seed (Timescale refreshed)."""

    postgres: str
    timescale: str
    seed: Seed
    realtime: dict[str, list[tuple]] = field(default_factory=dict)

    @property
    def urls(self) -> dict[str, str]:
        """Backend name → URL, for running one query on both."""
        return {"postgres": self.postgres, "timescale": self.timescale}


def dump(url: str, name: str) -> list[tuple]:
    """Every row of a rollup relation in a stable order."""
    rest = "sensor_id, kind, metric" if "council_" not in name else "kind, metric"
    return fetch(url, ROLLUP_DUMP.format(name=name, rest=rest))


def build(
    postgres: str, timescale: str, seed: Seed, rollup_names: Sequence[str]
) -> ContractDatabases:
    """Migrate and seed both; on Timescale keep the real-time answers, then materialize."""
    migrate(postgres)
    migrate(timescale)
    load_with_store(postgres, seed)
    load_with_inserts(timescale, seed)
    sites = sorted({(r.sensor_id, r.council) for r in seed.readings})
    for url in (postgres, timescale):
        with psycopg.connect(url, autocommit=True) as conn:
            for i, (sensor_id, council) in enumerate(sites):
                conn.execute(
                    "INSERT INTO sensor_sites (sensor_id, council, site, ward)"
                    " VALUES (%s, %s, %s, %s)",
                    (sensor_id, council, f"site-{i // 2}", f"ward-{i % 3}"),
                )
    dbs = ContractDatabases(postgres, timescale, seed)
    dbs.realtime = {name: dump(timescale, name) for name in rollup_names}
    times = [r.time for r in seed.readings]
    with psycopg.connect(timescale, autocommit=True) as conn:
        refresh_range(conn, min(times), max(times))
    return dbs
