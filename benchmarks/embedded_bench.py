"""Embedded-mode benchmark: sustained readings/s and publish→stored latency at an offered rate.

Starts ``civicpulse run`` (embedded broker + PostgreSQL in a temp dir) unless ``--mqtt-url``
and ``--database-url`` name a running one, publishes civicpulse JSON batches of ``--batch``
readings per MQTT message (QoS 1) at ``--rate`` readings/s for ``--duration`` seconds, and
reports, per message, send → PUBACK (the embedded broker PUBACKs only after the database
commit, so this bounds send → committed from above) and send → ``stored_at`` (the database's
``now()`` of the storing transaction), plus the readings actually in the database.

    python benchmarks/embedded_bench.py --rate 1000 --duration 20
    python benchmarks/embedded_bench.py --rate 20000 --duration 15   # offered > capacity
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from sensors.codecs import civicpulse_json  # noqa: E402
from sensors.reading import Sample  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_engine(
    data_dir: Path, port: int, extra: tuple[str, ...] = ()
) -> tuple[subprocess.Popen[str], str]:
    """``civicpulse run`` in a subprocess; returns it and the database URL it printed."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "civicpulse.cli",
            "run",
            "--mqtt-url",
            f"mqtt://127.0.0.1:{port}",
            "--data-dir",
            str(data_dir),
            *extra,
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    url = ""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise SystemExit("civicpulse run exited before it was ready")
        if m := re.search(r"psql '([^']+)'", line):
            url = m.group(1)
        if line.startswith("ready"):
            return proc, url
    raise SystemExit("civicpulse run was not ready within 60 s")


def payloads(
    n_messages: int, batch: int, sensors: int
) -> tuple[list[tuple[str, bytes]], list[tuple[str, datetime]]]:
    """Unique readings: message i is sensor i % sensors, ``batch`` seconds from its own t0."""
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
    out, firsts = [], []
    for i in range(n_messages):
        sensor = f"bench-{i % sensors:04d}"
        t0 = base + timedelta(seconds=(i // sensors) * batch)
        samples = [
            Sample(metric="pm10", value=float(k % 97), time=t0 + timedelta(seconds=k))
            for k in range(batch)
        ]
        topic = f"civicpulse/bench/air_quality/{sensor}"
        out.append((topic, civicpulse_json.encode(sensor, samples)))
        firsts.append((sensor, t0))
    return out, firsts


def client_of(topic: str, n_clients: int) -> int:
    """The connection a topic's device publishes on: one per device, as a real fleet does.

    (Spreading one sensor's messages over several connections reorders them in transit, so
    many arrive late for their own detectors and take the replay path.)
    """
    return int(topic.rsplit("-", 1)[1]) % n_clients


def publish(
    port: int,
    messages: list[tuple[str, bytes]],
    msg_rate: float,
    n_clients: int,
    credentials: list[tuple[str, str]] | None = None,
) -> tuple[dict[int, float], dict[int, float], float]:
    """Publish at ``msg_rate`` over ``n_clients`` connections; send/PUBACK wall times by index.

    Several connections with a bounded in-flight window, like a fleet of devices: one paho
    client with thousands of messages in flight spends O(in-flight) per PUBACK in
    ``_update_inflight`` and becomes the bottleneck itself.
    """
    sent: dict[int, float] = {}
    acked: dict[int, float] = {}
    index_of: list[dict[int, int]] = [{} for _ in range(n_clients)]
    done = threading.Event()
    clients = []
    for c in range(n_clients):
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-{c}", userdata=c)
        client.max_inflight_messages_set(100)
        client.max_queued_messages_set(0)

        def on_publish(_c: object, c: int, mid: int, _rc: object, _p: object) -> None:
            # paho's thread: never take a lock that the publishing thread holds into paho
            while mid not in index_of[c]:
                time.sleep(0.0005)  # PUBACK raced ahead of publish() returning
            acked[index_of[c].pop(mid)] = time.time()
            if len(acked) == len(messages):
                done.set()

        client.on_publish = on_publish
        if credentials:  # client c logs in as device c (it publishes only that device's topic)
            client.username_pw_set(*credentials[c])
        client.connect("127.0.0.1", port)
        client.loop_start()
        clients.append(client)
    t0 = time.monotonic()
    for i, (topic, payload) in enumerate(messages):
        due = t0 + i / msg_rate
        if (wait := due - time.monotonic()) > 0:
            time.sleep(wait)
        sent[i] = time.time()
        c = client_of(topic, n_clients)
        info = clients[c].publish(topic, payload, qos=1)
        index_of[c][info.mid] = i
    done.wait(120)
    for client in clients:
        client.disconnect()
        client.loop_stop()
    elapsed = max(acked.values()) - min(sent.values()) if acked else float("nan")
    return sent, acked, elapsed


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rate", type=float, default=1000.0, help="offered readings per second")
    ap.add_argument("--duration", type=float, default=20.0, help="seconds of publishing")
    ap.add_argument("--batch", type=int, default=50, help="readings per MQTT message")
    ap.add_argument("--sensors", type=int, default=300)
    ap.add_argument("--clients", type=int, default=8, help="publishing MQTT connections")
    ap.add_argument("--mqtt-port", type=int, help="a running embedded broker's port")
    ap.add_argument("--database-url", help="its database (with --mqtt-port)")
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # so `finally` stops the engine

    n_messages = max(1, int(args.rate * args.duration / args.batch))
    messages, firsts = payloads(n_messages, args.batch, args.sensors)
    proc = None
    if args.mqtt_port:
        port, db_url = args.mqtt_port, args.database_url
    else:
        port = free_port()
        proc, db_url = start_engine(Path(tempfile.mkdtemp(prefix="civicpulse-bench-")), port)
    try:
        sent, acked, elapsed = publish(port, messages, args.rate / args.batch, args.clients)
        with psycopg.connect(db_url) as conn:
            rows = conn.execute(
                "SELECT sensor_id, time, extract(epoch FROM stored_at)::float8 FROM readings"
                " WHERE council = 'bench'"
            ).fetchall()
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
    stored_at = {(sensor, t): at for sensor, t, at in rows}
    lat = [(acked[i] - sent[i]) * 1000 for i in sent if i in acked]
    db_lat = [(stored_at[firsts[i]] - sent[i]) * 1000 for i in sent if firsts[i] in stored_at]
    readings_acked = len(lat) * args.batch
    print(
        f"offered {args.rate:,.0f} readings/s for {args.duration:.0f} s "
        f"({n_messages} messages of {args.batch})"
    )
    print(
        f"acknowledged {readings_acked:,} readings; stored {len(rows):,}; "
        f"sustained {readings_acked / elapsed:,.0f} readings/s (first send → last PUBACK)"
    )
    print(
        f"send → PUBACK (≥ send → commit): p50 {pct(lat, 0.5):.0f} ms, "
        f"p99 {pct(lat, 0.99):.0f} ms, max {max(lat):.0f} ms"
    )
    print(
        f"send → stored_at (transaction start): p50 {pct(db_lat, 0.5):.0f} ms, "
        f"p99 {pct(db_lat, 0.99):.0f} ms"
    )
    transactions = len(set(stored_at.values()))
    print(
        f"{transactions} database transactions, "
        f"{len(rows) / max(1, transactions):.0f} readings each on average"
    )


if __name__ == "__main__":
    main()
