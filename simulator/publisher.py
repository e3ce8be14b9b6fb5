"""Publish simulated or recorded messages to an MQTT broker at a steady rate (the I/O module)."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from sensors.errors import CivicPulseError
from sensors.mqtt_url import BrokerUrl
from simulator.recording import Message

MAX_INFLIGHT = 1000


class PublishError(CivicPulseError):
    """The broker could not be reached or did not acknowledge every message in time."""


@dataclass(frozen=True, slots=True)
class PublishStats:
    """What a :func:`publish` run did."""

    sent: int
    acked: int
    elapsed: float  # seconds from the first publish to the last PUBACK
    reconnects: int = 0

    @property
    def rate(self) -> float:
        """Achieved messages per second."""
        return self.sent / self.elapsed if self.elapsed > 0 else math.inf


class TokenBucket:
    """Paces calls to ``rate`` per second with ``burst``; no drift (scheduled from t0)."""

    def __init__(
        self,
        rate: float,
        burst: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        min_sleep: float = 0.001,
    ) -> None:
        if not rate > 0:
            raise ValueError("rate must be positive")
        self.rate, self.burst, self.clock, self.sleep, self.min_sleep = (
            rate,
            max(burst, 1.0),
            clock,
            sleep,
            min_sleep,
        )
        self._t0: float | None = None
        self._taken = 0

    def acquire(self) -> None:
        """Block until one more token is available, then take it."""
        now = self.clock()
        if self._t0 is None:
            self._t0 = now
        if math.isfinite(self.rate):
            due = self._t0 + (self._taken + 1 - self.burst) / self.rate
            if due > now:
                self.sleep(max(due - now, self.min_sleep))
        self._taken += 1


class _Acks:
    """Mids waiting for PUBACK; tolerant of a PUBACK that arrives before publish() returns."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.pending: set[int] = set()
        self.early: set[int] = set()
        self.acked = 0

    def sent(self, mid: int) -> None:
        with self.cond:
            if mid in self.early:
                self.early.discard(mid)
            else:
                self.pending.add(mid)

    def on_publish(self, _c: Any, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        with self.cond:
            if mid in self.pending:
                self.pending.discard(mid)
            else:
                self.early.add(mid)
            self.acked += 1
            if not self.pending:
                self.cond.notify_all()


def publish(
    messages: Iterable[Message],
    mqtt_url: str,
    rate: float,
    qos: int = 1,
    client_id: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    *,
    connect_timeout: float = 10.0,
    ack_timeout: float = 60.0,
) -> PublishStats:
    """Publish ``messages`` at ``rate`` per second and wait for every acknowledgement.

    ``progress(sent, acked)`` is called about once a second of publishing and at the end.
    Disconnects are survived: paho reconnects and resends unacknowledged QoS 1 messages.
    """
    url = BrokerUrl.parse(mqtt_url)
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or "", clean_session=True)
    if url.username is not None:
        client.username_pw_set(url.username, url.password)
    if url.tls:
        client.tls_set()
    client.max_inflight_messages_set(MAX_INFLIGHT)
    client.reconnect_delay_set(min_delay=1, max_delay=8)
    acks = _Acks()
    connected = threading.Event()
    connects = [0]

    def on_connect(_c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not reason.is_failure:
            connects[0] += 1
            connected.set()

    def on_disconnect(_c: Any, _u: Any, _f: Any, _rc: Any, _p: Any) -> None:
        connected.clear()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    if qos > 0:
        client.on_publish = acks.on_publish
    client.connect_async(url.host, url.port, keepalive=30)
    client.loop_start()
    try:
        if not connected.wait(connect_timeout):
            raise PublishError(f"could not connect to {url.host}:{url.port} in {connect_timeout} s")
        bucket = TokenBucket(rate, burst=max(1.0, rate / 100) if math.isfinite(rate) else 1.0)
        every = max(1, int(rate)) if math.isfinite(rate) else 1000
        sent = 0
        started = time.monotonic()
        for message in messages:
            bucket.acquire()
            info = client.publish(message.topic, message.payload, qos=qos)
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                raise PublishError(
                    f"publish to {message.topic!r} failed: {mqtt.error_string(info.rc)}"
                )
            sent += 1
            if qos > 0:
                acks.sent(info.mid)
            if progress is not None and sent % every == 0:
                progress(sent, acks.acked)
        with acks.cond:
            done = acks.cond.wait_for(lambda: not acks.pending, timeout=ack_timeout)
        elapsed = time.monotonic() - started
        acked = acks.acked if qos > 0 else sent
        if progress is not None:
            progress(sent, acked)
        if not done:
            raise PublishError(
                f"{len(acks.pending)} of {sent} messages unacknowledged after {ack_timeout} s"
            )
        return PublishStats(
            sent=sent, acked=acked, elapsed=elapsed, reconnects=max(connects[0] - 1, 0)
        )
    finally:
        client.disconnect()
        client.loop_stop()
