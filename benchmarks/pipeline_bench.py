"""Benchmark the distributed path: simulator → Mosquitto → bridge → Kafka → Faust → PostgreSQL.

Prints sustained readings/s and publish→stored latency percentiles. Uses the services in
CIVICPULSE_MQTT_URL / CIVICPULSE_KAFKA_BOOTSTRAP / CIVICPULSE_DATABASE_URL when all are set,
otherwise starts real ones with tools/devstack/ (Mosquitto, Kafka from .cache/kafka/libs,
PostgreSQL) in a temp dir and stops them afterwards.

    .venv/bin/python benchmarks/pipeline_bench.py --messages 6000 --rate 600
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import psycopg
from kafka import KafkaConsumer, TopicPartition

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from simulator import Fleet, publish  # noqa: E402
from tests.processes import CivicProcess, civic_env, running  # noqa: E402
from tools import devstack  # noqa: E402


def _services(workdir: Path) -> tuple[dict[str, str], list[devstack.Service]]:
    names = {
        "mosquitto": "CIVICPULSE_MQTT_URL",
        "kafka": "CIVICPULSE_KAFKA_BOOTSTRAP",
        "postgres": "CIVICPULSE_DATABASE_URL",
    }
    if all(os.environ.get(v) for v in names.values()):
        return {n: os.environ[v] for n, v in names.items()}, []
    started = [devstack.start(n, workdir) for n in names]
    return {s.name: s.url for s in started}, started


def _in_kafka(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=[bootstrap])
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(parts).values()) if parts else 0
    finally:
        consumer.close()


def main() -> int:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so `finally` stops what we started
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sensors", type=int, default=300)
    ap.add_argument("--messages", type=int, default=6000, help="MQTT messages to publish")
    ap.add_argument("--rate", type=float, default=600.0, help="offered MQTT messages/s")
    ap.add_argument("--workers", type=int, default=1, help="Faust worker processes")
    args = ap.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="cp-bench-"))
    os.chmod(workdir, 0o755)  # noqa: S103 - the postgres OS user must reach its data dir
    urls, started = _services(workdir)
    try:
        run = uuid.uuid4().hex[:8]
        db = urls["postgres"]
        bench_db = f"bench_{run}"
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {bench_db}")
        db_url = db.rsplit("/", 1)[0] + f"/{bench_db}"
        env = civic_env(
            mqtt_url=urls["mosquitto"],
            kafka_bootstrap=urls["kafka"],
            database_url=db_url,
            readings_topic=f"bench.{run}.readings",
            deadletter_topic=f"bench.{run}.dead",
            mqtt_client_id=f"b-{run}",
            mqtt_share_group=f"bench-{run}",
            mqtt_session_expiry_s="60",
            faust_app_id=f"bench-{run}",
            log_level="WARNING",
        )
        procs = [CivicProcess(["ingest"], env, workdir / "bridge.log")]
        procs += [
            CivicProcess(["process"], env, workdir / f"worker{i}.log") for i in range(args.workers)
        ]
        fleet = Fleet.build(args.sensors, seed=1)
        start = datetime.now(UTC)
        messages = list(fleet.emissions(args.messages, start=start, rate=args.rate))
        expected = sum(len(m.samples) for m in messages)
        with running(*procs):
            time.sleep(8.0)  # let the bridge subscribe and the workers join their group
            start = datetime.now(UTC)
            messages = list(fleet.emissions(args.messages, start=start, rate=args.rate))
            t0 = time.monotonic()
            stats = publish(messages, urls["mosquitto"], rate=args.rate, client_id=f"p-{run}")
            published = time.monotonic() - t0
            deadline = time.monotonic() + 600
            count = 0
            bridged_at = None
            while time.monotonic() < deadline:
                topic = f"bench.{run}.readings"
                if bridged_at is None and _in_kafka(urls["kafka"], topic) >= expected:
                    bridged_at = time.monotonic() - t0
                with psycopg.connect(db_url) as conn:
                    row = conn.execute("SELECT count(*) FROM readings").fetchone()
                count = int(row[0]) if row else 0
                if count >= expected:
                    break
                time.sleep(0.2)
            elapsed = time.monotonic() - t0
            with psycopg.connect(db_url) as conn:
                lat = np.array(
                    [
                        r[0]
                        for r in conn.execute(
                            "SELECT extract(epoch FROM stored_at - time) FROM readings"
                        ).fetchall()
                    ],
                    dtype=float,
                )
        print(
            f"published {stats.sent} messages ({expected} readings) at "
            f"{stats.rate:.0f} msg/s offered {args.rate:.0f}"
        )
        print(
            f"publisher done after {published:.1f}s; all readings in Kafka after "
            f"{bridged_at if bridged_at is not None else float('nan'):.1f}s (bridge)"
        )
        print(
            f"stored {count}/{expected} readings in {elapsed:.1f}s → "
            f"{count / elapsed:.0f} readings/s end to end"
        )
        if lat.size:
            print(
                f"publish→stored latency: p50 {np.percentile(lat, 50) * 1000:.0f} ms, "
                f"p99 {np.percentile(lat, 99) * 1000:.0f} ms, max {lat.max() * 1000:.0f} ms"
            )
        return 0 if count >= expected else 1
    finally:
        for s in started:
            s.stop()


if __name__ == "__main__":
    raise SystemExit(main())
