"""The simulated fleet as real paho QoS 1 clients at a fixed rate, each keeping a PUBACK ledger."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from sensors.reading import Sample
from sensors.topics import SensorAddress
from simulator import Fleet, bad_messages
from simulator.fleet import KIND_PREFIX

ReadingKey = tuple[str, str, datetime]  # (sensor_id, metric, time): the readings table's key


@dataclass(slots=True)
class Message:
    """One MQTT message of the run and what the publisher saw of it."""

    index: int
    topic: str
    payload: bytes
    sensor_id: str
    event_time: datetime
    samples: tuple[Sample, ...]  # empty for a deliberately bad message
    expected_reason: str = ""  # a bad message's reject reason
    client: int = 0
    sent_at: float | None = None  # wall clock (epoch seconds) of publish()
    acked_at: float | None = None  # wall clock of the PUBACK

    @property
    def good(self) -> bool:
        """A message the platform must store (not a deliberate dead letter)."""
        return not self.expected_reason


def build_messages(
    n_sensors: int, seed: int, rate: float, duration_s: float, start: datetime, bad_every: int
) -> list[Message]:
    """``rate × duration_s`` messages of a seeded fleet; every ``bad_every``-th one is bad."""
    fleet = Fleet.build(n_sensors, seed=seed, councils=("chaos-a", "chaos-b"))
    total = max(1, round(rate * duration_s))
    n_bad = total // bad_every if bad_every > 0 else 0
    n_good = total - n_bad
    out = [
        Message(i, e.topic, e.payload, e.sensor_id, e.time, e.samples)
        for i, e in enumerate(fleet.emissions(n_good, start, rate * n_good / total))
    ]
    # Bad messages come from sensors of their own, so they never collide with a good key.
    pool = [
        SensorAddress("chaos-a", k, f"{p}-bad{j}") for k, p in KIND_PREFIX.items() for j in (1, 2)
    ]
    bad = list(bad_messages(seed, n_bad, start, pool))
    for j, b in enumerate(bad[:n_bad]):
        pos = min(len(out), (j + 1) * bad_every - 1)
        at = out[min(pos, len(out) - 1)].event_time if out else start
        sensor = b.topic.rsplit("/", 1)[-1]
        out.insert(pos, Message(0, b.topic, b.payload, sensor, at, (), b.expected_reason.value))
    for i, m in enumerate(out):
        m.index = i
    return out


class _Client:
    """One device connection: paho QoS 1, reconnecting, resending unacknowledged messages."""

    def __init__(self, number: int, host: str, port: int, run: str) -> None:
        self.number = number
        self._lock = threading.Lock()
        self._by_mid: dict[int, Message] = {}
        self._early: dict[int, float] = {}
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"chaos-{run}-dev{number}", clean_session=True
        )
        self.client.max_inflight_messages_set(100)
        self.client.reconnect_delay_set(1, 2)
        self.client.on_publish = self._on_publish
        self.client.connect_async(host, port, keepalive=20)
        self.client.loop_start()

    def _on_publish(self, _c: Any, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        now = time.time()
        with self._lock:
            message = self._by_mid.pop(mid, None)
            if message is None:
                self._early[mid] = now
            elif message.acked_at is None:
                message.acked_at = now

    def publish(self, message: Message) -> None:
        message.client = self.number
        message.sent_at = time.time()
        info = self.client.publish(message.topic, message.payload, qos=1)
        with self._lock:
            early = self._early.pop(info.mid, None)
            if early is not None:
                message.acked_at = early
            else:
                self._by_mid[info.mid] = message

    def pending(self) -> int:
        with self._lock:
            return len(self._by_mid)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class FleetRun:
    """Publishes ``messages`` at their offsets from ``run`` start across ``clients`` devices."""

    messages: Sequence[Message]
    rate: float
    host: str
    port: int
    run: str
    n_clients: int = 8
    started: float = 0.0
    _clients: list[_Client] = field(default_factory=list)
    _thread: threading.Thread | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        """Connect the devices and start publishing in a background thread."""
        self._clients = [_Client(i, self.host, self.port, self.run) for i in range(self.n_clients)]
        owner: dict[str, int] = {}
        rng = random.Random(self.run)
        for m in self.messages:  # each sensor is one device connection, as in the field
            owner.setdefault(m.sensor_id, rng.randrange(self.n_clients))
        self._owner = owner
        self.started = time.time()
        self._thread = threading.Thread(target=self._publish_all, name="chaos-fleet", daemon=True)
        self._thread.start()

    def _publish_all(self) -> None:
        t0 = time.monotonic()
        for i, m in enumerate(self.messages):
            if self._stop.is_set():
                return
            delay = t0 + i / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self._clients[self._owner[m.sensor_id]].publish(m)

    @property
    def sent(self) -> int:
        return sum(1 for m in self.messages if m.sent_at is not None)

    @property
    def acked(self) -> int:
        return sum(1 for m in self.messages if m.acked_at is not None)

    def wait_published(self, timeout: float) -> bool:
        """Until every message was handed to its client (the offered load is over)."""
        assert self._thread is not None
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def wait_acked(self, timeout: float) -> bool:
        """Until every sent message is acknowledged, or ``timeout``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(m.acked_at is not None for m in self.messages if m.sent_at is not None):
                return True
            time.sleep(0.5)
        return False

    def close(self) -> None:
        self._stop.set()
        for c in self._clients:
            c.close()


def event_start(now: datetime) -> datetime:
    """Event times start at the wall clock: the platform sees live data."""
    return now - timedelta(seconds=1)
