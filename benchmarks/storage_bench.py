"""Storage benchmark: COPY 90 days × 1,000 sensors of 5-minute readings, roll up, time queries."""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import psycopg

from sensors.reading import Reading
from storage import ReadingStore, migrate
from storage.rollups import LEVELS, refresh_range

COUNCILS = tuple(f"council-{i:02d}" for i in range(10))
# (kind, metric, unit, share of sensors, mean, spread)
MIX = (
    ("air_quality", "pm2_5", "ug/m3", 0.5, 12.0, 8.0),
    ("waste_bin", "fill_level", "%", 0.3, 50.0, 30.0),
    ("energy_meter", "power", "W", 0.2, 4000.0, 3000.0),
)
COLUMNS = "time, council, sensor_id, kind, metric, value, unit, received_at"

# The dashboard and report queries, each over the whole loaded period, from the rollups.
QUERIES: dict[str, str] = {
    "council daily mean, whole period (readings_council_1d)": """
        SELECT bucket AS "time", mean, sensors FROM readings_council_1d
         WHERE council = 'council-03' AND kind = 'air_quality' AND metric = 'pm2_5'
           AND bucket >= %(start)s AND bucket < %(stop)s ORDER BY 1""",
    "council hourly mean, whole period (readings_council_1h)": """
        SELECT bucket AS "time", mean, min, max FROM readings_council_1h
         WHERE council = 'council-03' AND kind = 'air_quality' AND metric = 'pm2_5'
           AND bucket >= %(start)s AND bucket < %(stop)s ORDER BY 1""",
    "one sensor hourly series (readings_1h)": """
        SELECT bucket AS "time", mean, min, max FROM readings_1h
         WHERE sensor_id = 'sensor-0007' AND metric = 'pm2_5'
           AND bucket >= %(start)s AND bucket < %(stop)s ORDER BY 1""",
    "top 10 sensors by period mean (readings_1d)": """
        SELECT sensor_id, council, sum(sum) / sum(n) AS mean FROM readings_1d
         WHERE metric = 'pm2_5' AND bucket >= %(start)s AND bucket < %(stop)s
         GROUP BY sensor_id, council ORDER BY mean DESC, sensor_id LIMIT 10""",
    "days over limit per sensor (readings_1d)": """
        SELECT sensor_id, count(*) FILTER (WHERE mean > 15) AS days_over FROM readings_1d
         WHERE metric = 'pm2_5' AND bucket >= %(start)s AND bucket < %(stop)s
         GROUP BY sensor_id ORDER BY days_over DESC, sensor_id""",
    "hours over limit, one council (readings_1h)": """
        SELECT sensor_id, count(*) FILTER (WHERE mean > 25) AS hours_over FROM readings_1h
         WHERE council = 'council-03' AND kind = 'air_quality' AND metric = 'pm2_5'
           AND bucket >= %(start)s AND bucket < %(stop)s
         GROUP BY sensor_id ORDER BY sensor_id""",
    "daily series via time_bucket, one council (readings_1h)": """
        SELECT time_bucket('86400.000s', bucket) AS "time", sum(sum) / sum(n) AS mean
          FROM readings_1h
         WHERE council = 'council-03' AND kind = 'air_quality' AND metric = 'pm2_5'
           AND bucket >= %(start)s AND bucket < %(stop)s GROUP BY 1 ORDER BY 1""",
    "latest value per sensor (readings_15m via readings_1d)": """
        SELECT k.sensor_id, k.metric, x.last, x.last_time
          FROM (SELECT DISTINCT sensor_id, metric FROM readings_1d
                 WHERE bucket >= %(stop)s::timestamptz - INTERVAL '1 day') k
         CROSS JOIN LATERAL (SELECT last, last_time FROM readings_15m f
                 WHERE f.sensor_id = k.sensor_id AND f.metric = k.metric
                 ORDER BY f.bucket DESC LIMIT 1) x
         ORDER BY 1, 2""",
    "latest value per sensor, DISTINCT ON form (readings_15m)": """
        SELECT DISTINCT ON (sensor_id, metric) sensor_id, metric, last, last_time
          FROM readings_15m WHERE bucket >= %(stop)s::timestamptz - INTERVAL '1 day'
         ORDER BY sensor_id, metric, bucket DESC""",
    "bin fill daily max, all bins (readings_1d)": """
        SELECT bucket AS "time", sensor_id, max FROM readings_1d
         WHERE kind = 'waste_bin' AND metric = 'fill_level'
           AND bucket >= %(start)s AND bucket < %(stop)s ORDER BY 1, 2""",
    "council power by day, Net Zero report (readings_council_1d)": """
        SELECT bucket AS "time", council, mean * 24 / 1000 AS kwh_per_sensor_day, sensors
          FROM readings_council_1d WHERE metric = 'power'
           AND bucket >= %(start)s AND bucket < %(stop)s ORDER BY 1, 2""",
}


def sensors(count: int) -> list[tuple[str, str, str, str, str, float, float]]:
    """(sensor_id, council, kind, metric, unit, mean, spread) for ``count`` sensors."""
    out = []
    shares = np.cumsum([m[3] for m in MIX])
    for i in range(count):
        kind, metric, unit, _share, mean, spread = MIX[
            int(np.searchsorted(shares, (i + 0.5) / count))
        ]
        out.append(
            (f"sensor-{i:04d}", COUNCILS[i % len(COUNCILS)], kind, metric, unit, mean, spread)
        )
    return out


def day_rows(
    day: datetime, fleet: Sequence[tuple], step_s: int, rng: np.random.Generator
) -> Iterator[bytes]:
    """COPY text for one day of readings of every sensor."""
    n = 86400 // step_s
    stamps = [(day + timedelta(seconds=k * step_s)).isoformat() for k in range(n)]
    received = [(day + timedelta(seconds=k * step_s + 2)).isoformat() for k in range(n)]
    for sensor_id, council, kind, metric, unit, mean, spread in fleet:
        values = np.abs(rng.normal(mean, spread, n)).round(2).tolist()
        head = f"\t{council}\t{sensor_id}\t{kind}\t{metric}\t"
        yield "".join(
            f"{t}{head}{v}\t{unit}\t{r}\n" for t, v, r in zip(stamps, values, received, strict=True)
        ).encode()


def bench_db(url: str, name: str) -> str:
    """(Re)create database ``name`` on the server of ``url``; return its URL."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def load(url: str, start: datetime, days: int, fleet: Sequence[tuple], step_s: int) -> int:
    """COPY every reading straight into ``readings``; returns rows loaded."""
    rng = np.random.default_rng(5)
    rows = 0
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        for d in range(days):
            day = start + timedelta(days=d)
            with conn.transaction(), cur.copy(f"COPY readings ({COLUMNS}) FROM STDIN") as copy:
                for block in day_rows(day, fleet, step_s, rng):
                    copy.write(block)
            rows += len(fleet) * (86400 // step_s)
            if d % 10 == 9:
                print(f"  loaded {d + 1} days, {rows:,} rows", flush=True)
    return rows


def timings(url: str, params: dict, runs: int) -> dict[str, tuple[float, float, int]]:
    """p50, p95 (ms) and row count of each query over ``runs`` runs after one warm-up."""
    out = {}
    with psycopg.connect(url, autocommit=True) as conn:
        for name, sql in QUERIES.items():
            rows = len(conn.execute(sql, params).fetchall())  # type: ignore[arg-type]
            samples = []
            for _ in range(runs):
                t0 = time.perf_counter()
                conn.execute(sql, params).fetchall()  # type: ignore[arg-type]
                samples.append((time.perf_counter() - t0) * 1000)
            samples.sort()
            p95 = samples[min(len(samples) - 1, round(0.95 * (len(samples) - 1)))]
            out[name] = (statistics.median(samples), p95, rows)
    return out


def live_writes(
    url: str, first: datetime, fleet: Sequence[tuple], step_s: int, ticks: int
) -> dict[bool, float]:
    """The streaming path after the load: one reading per sensor per tick through the store,
    alternating with and without rollup upkeep. Returns ms a batch for each."""
    stores = {True: ReadingStore(url), False: ReadingStore(url, maintain_rollups=False)}
    rng = np.random.default_rng(9)
    spent = dict.fromkeys(stores, 0.0)
    try:
        for k in range(2 * ticks):
            with_rollups = k % 2 == 0
            t = first + timedelta(seconds=k * step_s)
            batch = [
                Reading(
                    sensor_id=s,
                    council=c,
                    kind=kd,
                    metric=m,
                    unit=u,
                    time=t,
                    value=float(abs(rng.normal(mu, sd))),
                    received_at=t,
                )
                for s, c, kd, m, u, mu, sd in fleet
            ]
            t0 = time.perf_counter()
            stores[with_rollups].write(batch)
            spent[with_rollups] += time.perf_counter() - t0
    finally:
        for store in stores.values():
            store.close()
    return {flag: total / ticks * 1000 for flag, total in spent.items()}


def build(url: str, start: datetime, stop: datetime, fleet: Sequence[tuple], args: Any) -> None:
    """Migrate, COPY the readings in, build the rollups; prints rates and sizes."""
    migrate(url)
    print(
        f"loading {args.sensors} sensors × {args.days} days every {args.interval}s"
        f" ({start:%Y-%m-%d} … {stop:%Y-%m-%d}) with COPY into readings",
        flush=True,
    )
    t0 = time.perf_counter()
    rows = load(url, start, args.days, fleet, args.interval)
    load_s = time.perf_counter() - t0
    print(
        f"load: {rows:,} rows in {load_s:.1f} s = {rows / load_s:,.0f} rows/s"
        " (COPY, primary key and two indexes maintained)",
        flush=True,
    )
    t0 = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"SET work_mem = '{args.work_mem}'")
        refresh_range(conn, start, stop)
        for level in LEVELS:
            conn.execute(f"VACUUM ANALYZE {level.name}")
        conn.execute("ANALYZE readings")
        sizes = {
            lv.name: conn.execute(f"SELECT count(*) FROM {lv.name}").fetchone() for lv in LEVELS
        }
    build_s = time.perf_counter() - t0
    print(
        f"rollups built in {build_s:.1f} s: "
        + ", ".join(f"{k} {v[0] if v else 0:,}" for k, v in sizes.items()),
        flush=True,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--database-url",
        default="postgresql://postgres@127.0.0.1:55432/civicpulse",
        help="server to use; the benchmark makes its own database there",
    )
    parser.add_argument("--db-name", default="civicpulse_storage_bench")
    parser.add_argument("--sensors", type=int, default=1000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--interval", type=int, default=300, help="seconds between readings")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--ticks", type=int, default=12, help="live batches after the load")
    parser.add_argument(
        "--reuse", action="store_true", help="time the queries on an earlier run's database"
    )
    parser.add_argument("--work-mem", default="256MB", help="for the rollup build")
    args = parser.parse_args(argv)

    fleet = sensors(args.sensors)
    stop = datetime(2026, 11, 1, tzinfo=UTC)
    start = stop - timedelta(days=args.days)
    if args.reuse:
        url = urlunsplit(urlsplit(args.database_url)._replace(path=f"/{args.db_name}"))
    else:
        url = bench_db(args.database_url, args.db_name)
        build(url, start, stop, fleet, args)
    with psycopg.connect(url) as conn:
        version = conn.execute("SELECT version()").fetchone()
        latest = conn.execute("SELECT max(time) FROM readings").fetchone()
    print(f"database: {version[0] if version else '?'}")

    results = timings(url, {"start": start, "stop": stop}, args.runs)
    width = max(len(k) for k in results)
    print(f"\nquery latency over the whole period, {args.runs} runs each (ms):")
    print(f"{'query':<{width}}  {'p50':>7}  {'p95':>7}  {'rows':>6}")
    slow = 0
    for name, (p50, p95, n) in results.items():
        flag = "" if p95 < 300 else "  > 300 ms!"
        slow += bool(flag)
        print(f"{name:<{width}}  {p50:7.1f}  {p95:7.1f}  {n:6d}{flag}")
    after = (latest[0] if latest and latest[0] else stop) + timedelta(seconds=args.interval)
    live = live_writes(url, after, fleet, args.interval, args.ticks)
    print(
        f"\nlive path (ReadingStore, {len(fleet)} readings a batch, {args.ticks} batches each,"
        f" alternating): {live[True]:.0f} ms a batch with the rollups kept in the same"
        f" transaction ({len(fleet) / live[True] * 1000:,.0f} rows/s), {live[False]:.0f} ms"
        f" without ({len(fleet) / live[False] * 1000:,.0f} rows/s)"
    )
    print(f"\n{len(results) - slow}/{len(results)} queries answer in < 300 ms at p95")
    return 0 if slow == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
