"""The embedded broker enforcing the device registry, with real paho clients on 127.0.0.1.

An in-process ``EmbeddedEngine`` on the test PostgreSQL (``fresh_db``): who gets in, what a
device may publish, that a refused publish is neither stored nor acknowledged, and that a
device disabled in the registry is refused within 5 s.
"""

from __future__ import annotations

import asyncio
import json
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from embedded import EmbeddedConfig, EmbeddedEngine
from sensors.validation import DEFAULT_LIMITS
from trust import AuthMode, Device, Directory, StaticDirectory

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
AQ = Device("aq-auth-1", "camden", "air_quality")
OFF = Device("aq-auth-2", "camden", "air_quality", enabled=False)
OWN = "civicpulse/camden/air_quality/aq-auth-1"
OTHER = "civicpulse/camden/air_quality/aq-auth-2"


def registry(*devices: Device) -> StaticDirectory:
    return StaticDirectory(
        devices={d.sensor_id: d for d in devices},
        hashes={"aq-auth-1": "h:s3cret", "aq-auth-2": "h:other"},
        verify=lambda stored, secret: stored == "h:" + secret,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


class Running:
    """An EmbeddedEngine on its own event loop thread; ``directory`` is what the loader returns."""

    def __init__(self, database_url: str, auth: AuthMode, directory: Directory) -> None:
        self.port = free_port()
        self.database_url = database_url
        self.directory = directory
        self.loaded: list[str] = []
        config = EmbeddedConfig(
            mqtt_host=HOST,
            mqtt_port=self.port,
            data_dir=Path(tempfile.gettempdir()),  # unused: the database is external
            limits=DEFAULT_LIMITS,
            database_url=database_url,
            auth=auth,
        )
        self.engine = EmbeddedEngine(config, directory_loader=self._load)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def _load(self, url: str) -> Directory:
        self.loaded.append(url)
        return self.directory

    def __enter__(self) -> Running:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.engine.start(), self.loop).result(60)
        return self

    def __exit__(self, *_exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.engine.stop(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]


class Client:
    """A paho client that records its CONNACK, disconnects and PUBACKs."""

    def __init__(
        self,
        port: int,
        username: str | None = None,
        password: str | None = None,
        protocol: int = mqtt.MQTTv311,
        name: str = "",
    ) -> None:
        self.connack: Any = None
        self.disconnected = threading.Event()
        self.connacked = threading.Event()
        self.acked: set[int] = set()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=name or f"t-{username}-{time.monotonic_ns()}",
            protocol=protocol,
        )
        self.client.reconnect_delay_set(30, 60)  # no automatic retries inside a test
        if username is not None:
            self.client.username_pw_set(username, password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_a: self.disconnected.set()
        self.client.on_publish = lambda _c, _u, mid, _rc, _p: self.acked.add(mid)
        self.client.connect(HOST, port)
        self.client.loop_start()

    def _on_connect(self, _c: Any, _u: Any, _flags: Any, reason: Any, _p: Any) -> None:
        self.connack = reason
        self.connacked.set()

    def accepted(self, timeout: float = 5.0) -> bool:
        """Whether the broker accepted the connection (False: refused, or no CONNACK)."""
        self.connacked.wait(timeout)
        return self.connack is not None and not self.connack.is_failure

    def publish(self, topic: str, payload: bytes) -> int:
        return int(self.client.publish(topic, payload, qos=1).mid)

    def wait_ack(self, mid: int, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while mid not in self.acked and time.monotonic() < deadline:
            time.sleep(0.02)
        return mid in self.acked

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def reading(sensor: str, value: float) -> bytes:
    return json.dumps(
        {
            "v": 1,
            "sensor_id": sensor,
            "time": datetime.now(UTC).isoformat(),
            "readings": [{"metric": "pm10", "value": value, "unit": "ug/m3"}],
        }
    ).encode()


@pytest.fixture
def required(fresh_db: str) -> Iterator[Running]:
    with Running(fresh_db, AuthMode.REQUIRED, registry(AQ, OFF)) as running:
        yield running


def test_only_registered_enabled_devices_with_the_right_secret_get_in(required: Running) -> None:
    port = required.port
    assert required.loaded == [required.database_url]  # loaded once at start, with the URL
    for username, password in ((None, None), ("aq-auth-1", "wrong"), ("aq-auth-2", "other")):
        c = Client(port, username, password)
        try:
            assert not c.accepted(), (username, password)
            assert c.connack.getName() == "Not authorized"
        finally:
            c.close()
    # amqtt 0.12 speaks MQTT 3.1.1 only: a v5 client is refused (with or without a secret)
    v5 = Client(port, "aq-auth-1", "s3cret", protocol=mqtt.MQTTv5)
    try:
        assert not v5.accepted(timeout=3)
    finally:
        v5.close()
    ok = Client(port, "aq-auth-1", "s3cret")
    try:
        assert ok.accepted()
    finally:
        ok.close()


def test_a_device_stores_on_its_own_topic_and_is_cut_off_on_anothers(required: Running) -> None:
    device = Client(required.port, "aq-auth-1", "s3cret")
    try:
        assert device.accepted()
        assert device.wait_ack(device.publish(OWN, reading("aq-auth-1", 12.5)), 10)
        stored = required.rows("SELECT sensor_id, value FROM readings")
        assert stored == [("aq-auth-1", 12.5)]  # committed before the PUBACK

        refused = device.publish(OTHER, reading("aq-auth-2", 99.0))
        assert device.disconnected.wait(5), "a refused publish must drop the connection"
        assert not device.wait_ack(refused, 1), "a refused publish was acknowledged"
    finally:
        device.close()
    time.sleep(0.5)
    assert required.rows("SELECT count(*) FROM readings WHERE sensor_id = 'aq-auth-2'") == [(0,)]
    assert required.rows("SELECT count(*) FROM dead_letters") == [(0,)]
    assert required.engine.committer.stats.messages == 1  # never routed at all

    # and a device may not subscribe, not even to its own topic
    again = Client(required.port, "aq-auth-1", "s3cret")
    try:
        assert again.accepted()
        granted: list[Any] = []
        subscribed = threading.Event()

        def on_subscribe(_c: Any, _u: Any, _mid: int, codes: list[Any], _p: Any) -> None:
            granted.extend(codes)
            subscribed.set()

        again.client.on_subscribe = on_subscribe
        again.client.subscribe(OWN, qos=1)
        assert subscribed.wait(5)
        assert [c.is_failure for c in granted] == [True]
    finally:
        again.close()


def test_a_device_disabled_in_the_registry_is_refused_within_five_seconds(
    required: Running,
) -> None:
    connected = Client(required.port, "aq-auth-1", "s3cret")
    try:
        assert connected.accepted()
        required.directory = registry(Device("aq-auth-1", "camden", "air_quality", enabled=False))
        disabled_at = time.monotonic()
        while True:
            probe = Client(required.port, "aq-auth-1", "s3cret")
            try:
                if not probe.accepted():
                    break
            finally:
                probe.close()
            assert time.monotonic() - disabled_at < 5, "still let in 5 s after being disabled"
            time.sleep(0.2)
        assert time.monotonic() - disabled_at < 5
        # the connection it still holds may publish no more either: nothing is stored
        mid = connected.publish(OWN, reading("aq-auth-1", 1.0))
        assert connected.disconnected.wait(5)
        assert not connected.wait_ack(mid, 1)
    finally:
        connected.close()
    assert required.rows("SELECT count(*) FROM readings") == [(0,)]


def test_auto_on_loopback_still_lets_anonymous_clients_publish(fresh_db: str) -> None:
    with Running(fresh_db, AuthMode.AUTO, registry(AQ, OFF)) as running:
        assert running.engine.gate.anonymous
        anonymous = Client(running.port)
        try:
            assert anonymous.accepted()
            # anywhere, as before: an unregistered sensor, and a disabled device's topic
            for sensor in ("aq-anon-1", "aq-auth-2"):
                topic = f"civicpulse/camden/air_quality/{sensor}"
                assert anonymous.wait_ack(anonymous.publish(topic, reading(sensor, 3.0)), 10)
        finally:
            anonymous.close()
        wrong = Client(running.port, "aq-auth-1", "wrong")  # a wrong secret is still wrong
        try:
            assert not wrong.accepted()
        finally:
            wrong.close()
        stored = running.rows("SELECT sensor_id FROM readings ORDER BY sensor_id")
    assert stored == [("aq-anon-1",), ("aq-auth-2",)]
