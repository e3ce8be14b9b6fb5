"""Open-data API latency on a big database: 1,000 sensors x 30 days of 1-minute readings.

Seeds (once, reusable with ``--keep``) a PostgreSQL with ``--sensors`` air-quality sensors, one
reading a minute of ``pm10`` for ``--days`` days, their rollups, sites and locations, and an
open-data agreement; starts the API (real uvicorn, tenancy on, public caller) and prints
p50/p95 latency of: an Observations page (``$top=1000``, filtered by time), a 1-hour aggregate
month for one sensor, the GeoJSON of all sensors (without and with its 10 s cache); and the
rows/s of a 1-day CSV export of raw readings (``/api/v1/readings.csv``).
Without ``--database-url`` it starts its own PostgreSQL (tools/devstack) in a temp dir.

    python benchmarks/api_bench.py                       # 1,000 x 30 days (43.2 M readings)
    python benchmarks/api_bench.py --sensors 100 --days 3 --requests 20
"""

from __future__ import annotations

import argparse
import random
import socket
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import uvicorn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from api.app import ApiConfig, create_app  # noqa: E402
from storage.migrations import migrate  # noqa: E402
from storage.rollups import refresh_range  # noqa: E402


def seed(url: str, sensors: int, days: int, end: datetime) -> None:
    """The readings by one INSERT … SELECT per day (in the server), then rollups."""
    start = end - timedelta(days=days)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO councils (slug, name) VALUES ('bench', 'Bench Council')")
        conn.execute(
            "INSERT INTO sensor_sites (sensor_id, council, site)"
            " SELECT format('aq-%%s', lpad(s::text, 4, '0')), 'bench', format('site-%%s', s / 4)"
            " FROM generate_series(0, %s - 1) s",
            (sensors,),
        )
        conn.execute(
            "INSERT INTO sensor_locations (sensor_id, latitude, longitude)"
            " SELECT format('aq-%%s', lpad(s::text, 4, '0')), 57.1 + (s %% 40) * 0.002,"
            " -2.1 - (s / 40) * 0.002 FROM generate_series(0, %s - 1) s",
            (sensors,),
        )
        t0 = time.monotonic()
        for day in range(days):
            conn.execute(
                "INSERT INTO readings (time, council, sensor_id, kind, metric, value, unit,"
                " received_at)"
                " SELECT t, 'bench', format('aq-%%s', lpad(s::text, 4, '0')), 'air_quality',"
                " 'pm10', 10 + 5 * sin(extract(epoch FROM t) / 3600.0 + s) + (s %% 7), 'ug/m3', t"
                " FROM generate_series(%s::timestamptz, %s::timestamptz - interval '1 minute',"
                " interval '1 minute') t, generate_series(0, %s - 1) s",
                (start + timedelta(days=day), start + timedelta(days=day + 1), sensors),
            )
            print(f"  day {day + 1}/{days} loaded ({time.monotonic() - t0:.0f} s)", flush=True)
        conn.execute(
            "INSERT INTO readings_1m (bucket, council, sensor_id, kind, metric, n, min, max,"
            " mean, last, last_time) SELECT date_trunc('minute', time), council, sensor_id,"
            " kind, metric, 1, value, value, value, value, time FROM readings"
            " WHERE time >= %s - interval '2 days'",
            (end,),
        )
        refresh_range(conn, start, end)
        conn.execute(
            "INSERT INTO agreements (provider, recipient, resolution, purpose, legal_basis,"
            " legal_basis_text, starts_at, min_contributors) VALUES ('bench', 'public', 'raw',"
            " 'open data', 'not_personal_data', 'not personal data', %s, 1)",
            (start - timedelta(days=1),),
        )
        conn.execute("VACUUM ANALYZE")
    print(f"seeded in {time.monotonic() - t0:.0f} s", flush=True)


class Server:
    """The API under uvicorn in a thread, on a loopback port."""

    def __init__(self, url: str, geojson_cache_s: float = 10.0) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.base = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = ApiConfig(
            database_url=url,
            public_url=self.base,
            public_rate_per_minute=10**9,
            geojson_cache_s=geojson_cache_s,
        )
        self.server = uvicorn.Server(
            uvicorn.Config(create_app(config), log_level="warning", lifespan="on")
        )
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True
        )

    def __enter__(self) -> Server:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def timed(client: httpx.Client, path: str, params: dict[str, Any]) -> tuple[float, int]:
    t = time.perf_counter()
    r = client.get(path, params=params)
    ms = (time.perf_counter() - t) * 1000
    if r.status_code != 200:
        raise SystemExit(f"{path} {params}: HTTP {r.status_code} {r.text[:300]}")
    return ms, len(r.content)


def report(name: str, samples: list[float]) -> None:
    q = statistics.quantiles(samples, n=20)
    print(f"{name:<44} p50 {statistics.median(samples):7.1f} ms   p95 {q[18]:7.1f} ms")


def bench(base: str, sensors: int, end: datetime, days: int, requests: int, label: str) -> None:
    rng = random.Random(7)
    iso = lambda t: t.isoformat().replace("+00:00", "Z")  # noqa: E731
    with httpx.Client(base_url=base, timeout=120) as client:
        streams = client.get("/v1.1/Datastreams", params={"$top": 1, "$select": "id"}).json()
        ds = streams["value"][0]["@iot.id"]
        obs, agg, geo = [], [], []
        for _ in range(requests):
            t = end - timedelta(minutes=rng.randrange(60, days * 1440 - 1500))
            ms, _ = timed(
                client,
                f"/v1.1/Datastreams({ds})/Observations",
                {
                    "$top": 1000,
                    "$filter": f"phenomenonTime ge {iso(t)} and phenomenonTime lt"
                    f" {iso(t + timedelta(days=1))}",
                    "$orderby": "phenomenonTime asc",
                },
            )
            obs.append(ms)
            sensor = f"aq-{rng.randrange(sensors):04d}"
            month_end = end - timedelta(days=rng.randrange(0, 2))
            ms, _ = timed(
                client,
                "/api/v1/aggregates",
                {
                    "council": "bench",
                    "sensor": sensor,
                    "metric": "pm10",
                    "resolution": "1h",
                    "from": iso(month_end - timedelta(days=30)),
                    "to": iso(month_end),
                },
            )
            agg.append(ms)
            ms, _ = timed(client, "/api/v1/sensors.geojson", {})
            geo.append(ms)
        report("Observations page ($top=1000, one day)", obs)
        report("1h aggregate month, one sensor (JSON)", agg)
        report(f"GeoJSON of all {sensors:,} sensors ({label})", geo)
        t = time.perf_counter()
        rows = 0
        params = {"from": iso(end - timedelta(days=1)), "to": iso(end)}
        with RssSampler() as rss, client.stream("GET", "/api/v1/readings.csv", params=params) as r:
            if r.status_code != 200:
                raise SystemExit(f"CSV export: HTTP {r.status_code} {r.read()[:300]!r}")
            for chunk in r.iter_bytes():
                rows += chunk.count(b"\n")
        seconds = time.perf_counter() - t
        print(
            f"1-day CSV export of raw readings: {rows - 1:,} rows in {seconds:.2f} s ="
            f" {(rows - 1) / seconds:,.0f} rows/s; {rss.summary()}"
        )


def _rss_mb() -> float:
    """This process's resident set (the API server runs in it, on a thread), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class RssSampler:
    """Samples RSS every 50 ms while in the ``with`` block: is memory flat while streaming?"""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.samples.append(_rss_mb())

    def __enter__(self) -> RssSampler:
        self.samples.append(_rss_mb())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append(_rss_mb())

    def summary(self) -> str:
        """RSS at the start, its peak and at the end of the export."""
        s = self.samples
        peak = max(s)
        return f"RSS (server + client) start {s[0]:.0f} MB, peak {peak:.0f} MB, end {s[-1]:.0f} MB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sensors", type=int, default=1000)
    ap.add_argument("--days", type=int, default=30)
    ap.add_argument("--requests", type=int, default=50, help="timed requests of each kind")
    ap.add_argument("--database-url", help="an already seeded database (skips seeding)")
    args = ap.parse_args()
    end = datetime.now(UTC).replace(second=0, microsecond=0)
    service = None
    url = args.database_url
    if url is None:
        from tools import devstack

        workdir = Path(tempfile.mkdtemp(prefix="civicpulse-api-bench-"))
        workdir.chmod(0o755)
        service = devstack.start("postgres", workdir)
        url = service.url
    try:
        if args.database_url is None:
            migrate(url)
            print(f"seeding {args.sensors:,} sensors x {args.days} days of 1-minute readings")
            seed(url, args.sensors, args.days, end)
        else:
            with psycopg.connect(url) as conn:
                row = conn.execute("SELECT max(time) FROM readings").fetchone()
            end = row[0] if row and row[0] else end
        for cache, label in ((0.0, "no cache"), (10.0, "10 s cache, the default")):
            with Server(url, cache) as server:
                print(f"-- API server with sensors.geojson {label}")
                bench(server.base, args.sensors, end, args.days, args.requests, label)
    finally:
        if service is not None:
            service.stop()


if __name__ == "__main__":
    main()
