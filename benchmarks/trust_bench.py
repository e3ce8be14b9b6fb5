"""Ingest throughput with the trust model on vs off, in one run (issue 18's writer-path figure).

Two embedded engines, one after the other, same load: **off** — ``--auth off`` and no tenancy
views (the ``tenant`` schema dropped); **on** — ``--auth required`` (every publisher logs in as
its registered device, argon2-checked, topic-checked on every PUBLISH) with the tenancy views
and agreements in place. Prints sustained readings/s and send → PUBACK percentiles of each.

    python benchmarks/trust_bench.py --rate 3000 --duration 20 --batch 6
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from embedded_bench import free_port, payloads, pct, publish, start_engine

from storage import registry_store, sharing_store
from trust.registry import Device


def prepare(db_url: str, sensors: int, trust_on: bool) -> list[tuple[str, str]]:
    """Register the bench council and devices (their secrets), agreements; or drop tenancy."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        if not trust_on:
            conn.execute("DROP SCHEMA IF EXISTS tenant CASCADE")
            return []
    registry_store.add_council(db_url, "bench", "Bench Council")
    registry_store.add_council(db_url, "partner", "Partner Council")
    creds = []
    for i in range(sensors):
        sensor = f"bench-{i:04d}"
        secret = registry_store.add_device(db_url, Device(sensor, "bench", "air_quality"))
        creds.append((sensor, secret))
    now = datetime.now(UTC)
    sharing_store.grant(
        db_url,
        [
            {
                "provider": "bench",
                "recipient": r,
                "resolution": "1h",
                "purpose": "bench",
                "legal_basis": "public_task",
            }
            for r in ("partner", "public")
        ],
        now,
    )
    time.sleep(3)  # the engine reloads its device directory every 2 s
    return creds


def run(label: str, trust_on: bool, args: argparse.Namespace) -> dict[str, float]:
    n_messages = max(1, int(args.rate * args.duration / args.batch))
    messages, _ = payloads(n_messages, args.batch, args.clients)
    port = free_port()
    extra = ("--auth", "required") if trust_on else ("--auth", "off")
    data_dir = Path(tempfile.mkdtemp(prefix=f"civicpulse-trust-{label}-"))
    proc, db_url = start_engine(data_dir, port, extra)
    try:
        creds = prepare(db_url, args.clients, trust_on)
        sent, acked, elapsed = publish(
            port, messages, args.rate / args.batch, args.clients, creds or None
        )
        with psycopg.connect(db_url) as conn:
            row = conn.execute("SELECT count(*) FROM readings WHERE council = 'bench'").fetchone()
        stored = int(row[0]) if row else 0
    finally:
        proc.terminate()
        proc.wait(30)
    lat = [(acked[i] - sent[i]) * 1000 for i in sent if i in acked]
    readings = len(lat) * args.batch
    return {
        "acked": readings,
        "stored": stored,
        "per_s": readings / elapsed if elapsed == elapsed and elapsed > 0 else 0.0,
        "p50": pct(lat, 0.5),
        "p99": pct(lat, 0.99),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=3000.0, help="offered readings per second")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of publishing")
    ap.add_argument("--batch", type=int, default=6, help="readings per MQTT message")
    ap.add_argument("--clients", type=int, default=8, help="devices, one connection each")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    results = {label: run(label, on, args) for label, on in (("off", False), ("on", True))}
    print(
        f"offered {args.rate:,.0f} readings/s for {args.duration:.0f} s, {args.batch} per"
        f" message, {args.clients} devices"
    )
    for label, r in results.items():
        print(
            f"trust {label:>3}: acknowledged {r['acked']:,.0f}, stored {r['stored']:,.0f},"
            f" sustained {r['per_s']:,.0f} readings/s, PUBACK p50 {r['p50']:.0f} ms,"
            f" p99 {r['p99']:.0f} ms"
        )
    off, on = results["off"]["per_s"], results["on"]["per_s"]
    print(f"on / off: {on / off:.3f}" if off else "on / off: n/a")


if __name__ == "__main__":
    main()
