"""Abuse at the broker: flood, 1,000 connections, 10 MB payloads, slow-loris CONNECTs.

    python benchmarks/abuse_bench.py --broker embedded     # civicpulse run (PUBACK after commit)
    python benchmarks/abuse_bench.py --broker mosquitto    # devstack Mosquitto (PUBACK on receipt)

While each abuse runs, a well-behaved device publishes QoS 1 at 10 msg/s; the bench prints its
publish→PUBACK p50/p99 before and during the abuse, and what the broker refused.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import socket
import struct
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import paho.mqtt.client as mqtt  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402

HOST = "127.0.0.1"


def connect_packet(client_id: str) -> bytes:
    """A raw MQTT 3.1.1 CONNECT (clean session, keepalive 60 s)."""
    cid = client_id.encode()
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + struct.pack("!H", len(cid)) + cid
    return bytes([0x10, len(body)]) + body


def reading(sensor: str, value: float) -> bytes:
    now = datetime.now(UTC).isoformat()
    return json.dumps({"sensor_id": sensor, "time": now, "metric": "pm10", "value": value}).encode()


@dataclass
class Probe:
    """A well-behaved device: QoS 1 at ``rate``/s; publish→PUBACK latencies per phase."""

    port: int
    rate: float = 10.0
    phase: str = "baseline"
    latencies: dict[str, list[float]] = field(default_factory=dict)
    unacked: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="probe-device")
        sent: dict[int, tuple[str, float]] = {}
        lock = threading.Lock()

        def on_publish(_c: object, _u: object, mid: int, _rc: object, _p: object) -> None:
            with lock:
                phase, t = sent.pop(mid, ("", 0.0))
            if phase:
                self.latencies.setdefault(phase, []).append(time.perf_counter() - t)

        client.on_publish = on_publish
        client.connect(HOST, self.port)
        client.loop_start()
        i = 0
        while not self._stop.is_set():
            with lock:
                info = client.publish(
                    "civicpulse/york/air_quality/probe-1", reading("probe-1", i % 90), qos=1
                )
                sent[info.mid] = (self.phase, time.perf_counter())
            i += 1
            time.sleep(1 / self.rate)
        time.sleep(2.0)
        with lock:
            for phase, _t in sent.values():
                self.unacked[phase] = self.unacked.get(phase, 0) + 1
        client.disconnect()
        client.loop_stop()

    def stop(self) -> None:
        self._stop.set()

    def figures(self, phase: str) -> str:
        values = sorted(self.latencies.get(phase, []))
        late = self.unacked.get(phase, 0)
        if not values:
            return f"{phase}: no publish→PUBACK measured ({late} unacknowledged)"
        p50 = values[len(values) // 2] * 1000
        p99 = values[min(len(values) - 1, int(len(values) * 0.99))] * 1000
        return f"{phase}: {len(values)} acked, p50 {p50:.1f} ms, p99 {p99:.1f} ms, {late} unacked"


def flood(port: int, seconds: float) -> str:
    """One client publishing QoS 1 to one topic as fast as the broker acks it."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="flooder")
    acked = [0]
    client.on_publish = lambda *_a: acked.__setitem__(0, acked[0] + 1)
    dropped = threading.Event()
    client.on_disconnect = lambda *_a: dropped.set()
    client.max_inflight_messages_set(1000)
    client.connect(HOST, port)
    client.loop_start()
    sent = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not dropped.is_set():
        if sent - acked[0] < 5000:
            client.publish("civicpulse/york/air_quality/flood-1", reading("flood-1", 1.0), qos=1)
            sent += 1
        else:
            time.sleep(0.001)
    state = "disconnected by the broker" if dropped.is_set() else "kept its connection"
    client.disconnect()
    client.loop_stop()
    return f"flood: {sent} sent, {acked[0]} acked ({acked[0] / seconds:.0f}/s), {state}"


def many_connections(port: int, n: int, hold_s: float) -> str:
    """``n`` raw MQTT connections from one host, held open, then closed."""
    socks: list[socket.socket] = []
    accepted = refused = 0
    try:
        for i in range(n):
            try:
                s = socket.create_connection((HOST, port), timeout=5)
                s.sendall(connect_packet(f"many-{i}"))
                socks.append(s)
            except OSError:
                refused += 1
        for s in socks:
            try:
                accepted += s.recv(4)[:2] == b"\x20\x02"
            except OSError:
                refused += 1
        time.sleep(hold_s)
    finally:
        for s in socks:
            with contextlib.suppress(OSError):
                s.close()
    return f"{n} connections: {accepted} got CONNACK, {n - accepted} refused or unanswered"


def big_payloads(port: int, size: int, count: int) -> str:
    """``count`` QoS 1 publishes of ``size`` bytes; what became of each."""
    outcomes: list[str] = []
    for i in range(count):
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"big-{i}")
        done = threading.Event()
        result = ["no PUBACK within 20 s"]

        def on_publish(*_a: object, r: list[str] = result, d: threading.Event = done) -> None:
            r[0] = "acknowledged"
            d.set()

        def on_disconnect(*_a: object, r: list[str] = result, d: threading.Event = done) -> None:
            if not d.is_set():
                r[0] = "connection closed by the broker"
                d.set()

        client.on_publish = on_publish
        client.on_disconnect = on_disconnect
        client.connect(HOST, port)
        client.loop_start()
        client.publish("civicpulse/york/air_quality/big-1", b"x" * size, qos=1)
        done.wait(20)
        client.disconnect()
        client.loop_stop()
        outcomes.append(result[0])
    summary = ", ".join(f"{outcomes.count(o)}× {o}" for o in sorted(set(outcomes)))
    return f"{count} payloads of {size / 1e6:.0f} MB: {summary}"


def slow_loris(port: int, n: int, seconds: float) -> str:
    """``n`` clients each sending its CONNECT one byte per second."""
    packets = [connect_packet(f"loris-{i}") for i in range(n)]
    socks: list[socket.socket | None] = []
    for _ in range(n):
        try:
            socks.append(socket.create_connection((HOST, port), timeout=5))
        except OSError:
            socks.append(None)
    closed = 0
    t0 = time.monotonic()
    step = 0
    while time.monotonic() - t0 < seconds:
        for i, s in enumerate(socks):
            if s is None or step >= len(packets[i]):
                continue
            try:
                s.sendall(packets[i][step : step + 1])
            except OSError:
                socks[i] = None
                closed += 1
        step += 1
        time.sleep(1.0)
    left = sum(1 for s in socks if s is not None)
    for s in socks:
        if s is not None:
            with contextlib.suppress(OSError):
                s.close()
    return (
        f"slow loris: {n} clients, 1 byte/s for {seconds:.0f}s: {closed} closed by the broker,"
        f" {left} still open"
    )


@contextmanager
def broker(kind: str, workdir: Path) -> Iterator[int]:
    """The broker under test on a free loopback port: devstack Mosquitto or civicpulse run."""
    if kind == "mosquitto":
        from tools.devstack import start_mosquitto

        svc = start_mosquitto(workdir)
        try:
            yield svc.port
        finally:
            svc.stop()
        return
    from benchmarks.chaos.engines import Embedded

    engine = Embedded(workdir)
    try:
        engine.start()
        yield engine.mqtt_port
    finally:
        engine.close()


ABUSES: dict[str, Callable[[int, bool], str]] = {
    "flood": lambda port, short: flood(port, 5.0 if short else 20.0),
    "connections": lambda port, short: many_connections(port, 200 if short else 1000, 3.0),
    "big": lambda port, short: big_payloads(port, 10_000_000, 1 if short else 3),
    "slow_loris": lambda port, short: slow_loris(
        port, 20 if short else 200, 8.0 if short else 30.0
    ),
}


def run(kind: str, short: bool, say: Callable[[str], None] = print) -> dict[str, str]:
    """Every abuse against one broker; returns the figures by abuse (and the probe's)."""
    out: dict[str, str] = {}
    with (
        tempfile.TemporaryDirectory(prefix="civicpulse-abuse-") as tmp,
        broker(kind, Path(tmp)) as port,
    ):
        probe = Probe(port)
        thread = threading.Thread(target=probe.run, daemon=True)
        thread.start()
        time.sleep(3.0 if short else 10.0)
        for name, abuse in ABUSES.items():
            probe.phase = name
            out[name] = abuse(port, short)
            say(f"{kind} {out[name]}")
            probe.phase = f"after {name}"
            time.sleep(2.0)
        probe.stop()
        thread.join(15)
        for phase in ["baseline", *(p for n in ABUSES for p in (n, f"after {n}"))]:
            out[f"probe {phase}"] = probe.figures(phase)
            say(f"{kind} probe {probe.figures(phase)}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--broker", choices=("embedded", "mosquitto", "both"), default="both")
    p.add_argument("--short", action="store_true", help="Smaller numbers (CI)")
    args = p.parse_args(argv)
    kinds = ["embedded", "mosquitto"] if args.broker == "both" else [args.broker]
    for kind in kinds:
        run(kind, args.short)
    return 0


if __name__ == "__main__":
    sys.exit(main())
