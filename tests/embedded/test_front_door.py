"""The embedded broker's front door, with hand-built MQTT packets over TCP on 127.0.0.1.

A real ``EmbeddedEngine`` (amqtt + group commit) on the test PostgreSQL (``fresh_db``): a
malformed or oversize packet closes its connection, is counted, leaves nothing stored as a
reading (a bad-topic or oversize PUBLISH leaves a dead letter), and a well-behaved paho
client connected all along keeps publishing and being acknowledged.
"""

from __future__ import annotations

import asyncio
import json
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

from embedded import EmbeddedConfig, EmbeddedEngine
from embedded.broker import DurableBroker
from embedded.frontdoor import (
    CONNECT_TIMEOUT_S,
    DEFAULT_MAX_PACKET_BYTES,
    check_body,
    check_fixed_header,
)
from sensors.validation import DEFAULT_LIMITS
from tests.embedded.test_auth_broker import Client, free_port
from trust import AuthMode

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"
GOOD = "civicpulse/camden/air_quality/aq-fd-good"
VICTIM = "civicpulse/camden/air_quality/aq-fd-victim"


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def string(raw: bytes) -> bytes:
    return struct.pack("!H", len(raw)) + raw


def packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


def connect(client_id: bytes, keep_alive_s: int = 60) -> bytes:
    flags_and_keep_alive = b"\x02" + struct.pack("!H", keep_alive_s)
    return packet(0x10, string(b"MQTT") + b"\x04" + flags_and_keep_alive + string(client_id))


def publish(topic: bytes, payload: bytes, qos: int = 0, packet_id: int = 1) -> bytes:
    body = string(topic) + (struct.pack("!H", packet_id) if qos else b"") + payload
    return packet(0x30 | qos << 1, body)


def reading(sensor_id: str, value: float) -> bytes:
    return json.dumps(
        {
            "v": 1,
            "sensor_id": sensor_id,
            "time": datetime.now(UTC).isoformat(),
            "readings": [{"metric": "pm10", "value": value, "unit": "ug/m3"}],
        }
    ).encode()


class Engine:
    """An ``EmbeddedEngine`` on its own event-loop thread, anonymous clients on loopback."""

    def __init__(self, database_url: str, max_packet_bytes: int) -> None:
        self.port = free_port()
        self.database_url = database_url
        config = EmbeddedConfig(
            mqtt_host=HOST,
            mqtt_port=self.port,
            data_dir=Path(tempfile.gettempdir()),  # unused: the database is external
            limits=DEFAULT_LIMITS,
            database_url=database_url,
            auth=AuthMode.AUTO,
            max_packet_bytes=max_packet_bytes,
        )
        self.engine = EmbeddedEngine(config)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.engine.start(), self.loop).result(60)

    @property
    def refused(self) -> dict[str, int]:
        broker = self.engine._broker
        assert isinstance(broker, DurableBroker)
        return dict(broker.front_door.refused)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.engine.stop(), self.loop).result(60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    def rows(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]

    def readings_of(self, sensor_id: str) -> int:
        return int(self.rows("SELECT count(*) FROM readings WHERE sensor_id = %s", sensor_id)[0][0])

    def letters(self, stage: str = "broker") -> list[tuple[Any, ...]]:
        return self.rows(
            "SELECT reason, mqtt_topic, payload, payload_size, detail FROM dead_letters"
            " WHERE stage = %s ORDER BY id",
            stage,
        )


class Raw:
    """A hand-driven TCP connection to the broker."""

    def __init__(
        self, port: int, client_id: bytes | None = b"raw-client", keep_alive_s: int = 60
    ) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=5)
        if client_id is not None:
            self.sock.sendall(connect(client_id, keep_alive_s))
            assert self.recv_exactly(4) == b"\x20\x02\x00\x00", "CONNACK accepted"

    def recv_exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            assert chunk, f"connection closed after {data!r}"
            data += chunk
        return data

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def closed_by_broker(self, within_s: float = 5.0) -> bool:
        """Whether the broker closes the connection (EOF or reset) within ``within_s``."""
        self.sock.settimeout(within_s)
        deadline = time.monotonic() + within_s
        try:
            while time.monotonic() < deadline:
                if not self.sock.recv(65536):
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
        return False

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def _module_db(database_url: str) -> Iterator[str]:
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    name = f"test_front_door_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def engine(_module_db: str) -> Iterator[Engine]:
    running = Engine(_module_db, DEFAULT_MAX_PACKET_BYTES)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def good(engine: Engine) -> Iterator[Client]:
    """A well-behaved paho client connected for the whole module."""
    client = Client(engine.port, name="well-behaved")
    assert client.accepted()
    try:
        yield client
    finally:
        client.close()


_value = iter(range(1, 10**6))


def good_still_works(engine: Engine, client: Client) -> None:
    """The long-lived paho client and a brand-new one: both PUBACKed and stored."""
    before = engine.readings_of("aq-fd-good")
    mid = client.publish(GOOD, reading("aq-fd-good", float(next(_value))))
    assert client.wait_ack(mid, 10), "the well-behaved client is no longer acknowledged"
    fresh = Client(engine.port, name=f"fresh-{time.monotonic_ns()}")
    try:
        assert fresh.accepted(), "a new client cannot connect"
        mid = fresh.publish(GOOD, reading("aq-fd-good", float(next(_value))))
        assert fresh.wait_ack(mid, 10)
    finally:
        fresh.close()
    assert engine.readings_of("aq-fd-good") == before + 2


def test_publish_smuggled_in_a_wildcard_publish_is_not_stored(engine: Engine, good: Client) -> None:
    """Issue 21: amqtt dropped the header of a PUBLISH to a wildcard topic and parsed its
    payload as packets; a PUBLISH inside it was stored as a reading of another sensor."""
    smuggled = publish(VICTIM.encode(), reading("aq-fd-victim", 999.0), qos=1, packet_id=7)
    raw = Raw(engine.port, b"smuggler")
    try:
        good_still_works(engine, good)  # during: the bad client is connected
        raw.send(publish(b"civicpulse/camden/air_quality/+", smuggled, qos=1, packet_id=6))
        assert raw.closed_by_broker(), "the broker kept the connection open"
    finally:
        raw.close()
    good_still_works(engine, good)  # after: everything before it is committed
    assert engine.readings_of("aq-fd-victim") == 0, "the smuggled PUBLISH was stored"
    assert engine.refused.get("wildcard_in_topic", 0) >= 1
    letters = [row for row in engine.letters() if row[1] == "civicpulse/camden/air_quality/+"]
    assert letters and letters[-1][0] == "bad_topic"
    assert bytes(letters[-1][2]) == smuggled  # the evidence: what was sent, as payload


def test_invalid_utf8_topic_closes_the_connection_and_leaves_a_dead_letter(
    engine: Engine, good: Client
) -> None:
    raw = Raw(engine.port, b"bad-utf8")
    try:
        raw.send(publish(b"civicpulse/camden/air_quality/aq-\xff\xfe", b"{}", qos=1, packet_id=3))
        assert raw.closed_by_broker(), "the broker kept the connection open (or sent PUBACK)"
    finally:
        raw.close()
    good_still_works(engine, good)
    assert engine.refused.get("bad_utf8", 0) >= 1
    assert any(
        row[0] == "bad_topic" and row[1] == "civicpulse/camden/air_quality/aq-\\xff\\xfe"
        for row in engine.letters()
    )


MALFORMED = {
    "reserved_type_0": b"\x00\x00",
    "reserved_type_15": b"\xf0\x00",
    "remaining_length_5_bytes": b"\x30\xff\xff\xff\xff\x7f",
    "connack_from_client": b"\x20\x02\x00\x00",
    "second_connect": connect(b"again"),
    "publish_qos_3": bytes([0x36]) + varint(9) + string(b"a/b") + b"\x00\x01xx",
    "publish_qos0_dup": bytes([0x38]) + varint(5) + string(b"a/b"),
    "publish_empty_topic": publish(b"", b"x"),
    "publish_packet_id_0": publish(b"civicpulse/x", b"x", qos=1, packet_id=0),
    "publish_topic_past_the_end": b"\x30\x03\x00\x09a",
    "publish_nul_in_topic": publish(b"civicpulse/\x00x", b"x"),
    "subscribe_bad_flags": packet(0x80, b"\x00\x01" + string(b"a/#") + b"\x00"),
    "subscribe_bad_filter": packet(0x82, b"\x00\x01" + string(b"a/#/b") + b"\x00"),
    "subscribe_qos_3": packet(0x82, b"\x00\x01" + string(b"a/b") + b"\x03"),
    "subscribe_no_filter": packet(0x82, b"\x00\x01"),
    "pingreq_with_body": b"\xc0\x01\x00",
    "puback_too_long": b"\x40\x03\x00\x01\x00",
    "disconnect_bad_flags": b"\xe1\x00",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_packet_closes_the_connection(engine: Engine, good: Client, name: str) -> None:
    before = sum(engine.refused.values())
    raw = Raw(engine.port, f"malformed-{name}".encode())
    try:
        raw.send(MALFORMED[name])
        assert raw.closed_by_broker(), f"{name}: the broker kept the connection open"
    finally:
        raw.close()
    assert sum(engine.refused.values()) == before + 1
    good_still_works(engine, good)


@pytest.mark.parametrize(
    "first",
    [
        publish(b"civicpulse/x", b"x"),  # not CONNECT first
        packet(0x10, string(b"MQTT") + b"\x04\x03\x00\x3c" + string(b"r")),  # reserved flag
        packet(0x10, string(b"MQTT") + b"\x04\x02\x00\x3c" + string(b"id") + b"junk"),  # trailing
        packet(0x10, string(b"MQTT") + b"\x04\x02\x00\x3c" + string(b"\xc0\x80")),  # overlong
        packet(
            0x10, string(b"MQTT") + b"\x04\x06\x00\x3c" + string(b"w") + string(b"a/#") + b"\0\0"
        ),
    ],
    ids=["publish_first", "reserved_flag", "trailing_bytes", "overlong_utf8_id", "wildcard_will"],
)
def test_malformed_first_packet_closes_the_connection(
    engine: Engine, good: Client, first: bytes
) -> None:
    raw = Raw(engine.port, client_id=None)
    try:
        raw.send(first)
        assert raw.closed_by_broker()
    finally:
        raw.close()
    good_still_works(engine, good)


@pytest.mark.parametrize("sent", [b"", b"\x10\x1a\x00"], ids=["nothing", "three_bytes"])
def test_a_client_that_never_completes_connect_is_closed(
    engine: Engine, good: Client, sent: bytes
) -> None:
    """Slow loris: a CONNECT still incomplete after connect_timeout_s closes the connection."""
    broker = engine.engine._broker
    assert isinstance(broker, DurableBroker)
    door = broker.front_door
    door.connect_timeout_s, before = 1.0, engine.refused.get("connect_timeout", 0)
    raw = Raw(engine.port, client_id=None)
    try:
        raw.send(sent)
        started = time.monotonic()
        assert raw.closed_by_broker(within_s=5.0)
        assert 0.8 < time.monotonic() - started < 4.0
    finally:
        raw.close()
        door.connect_timeout_s = CONNECT_TIMEOUT_S
    assert engine.refused.get("connect_timeout", 0) == before + 1
    good_still_works(engine, good)


def test_a_client_silent_for_one_and_a_half_keep_alives_is_closed(
    engine: Engine, good: Client
) -> None:
    """[MQTT-3.1.2-24]: nothing for 1.5 x keep-alive (here 1 s) closes the connection."""
    before = engine.refused.get("keep_alive_timeout", 0)
    raw = Raw(engine.port, client_id=b"silent", keep_alive_s=1)
    try:
        started = time.monotonic()
        assert raw.closed_by_broker(within_s=5.0)
        assert 1.4 < time.monotonic() - started < 3.0
    finally:
        raw.close()
    assert engine.refused.get("keep_alive_timeout", 0) == before + 1
    good_still_works(engine, good)


def test_a_client_that_pings_within_its_keep_alive_stays_connected(engine: Engine) -> None:
    raw = Raw(engine.port, client_id=b"pinging", keep_alive_s=1)
    try:
        for _ in range(6):  # 3 s: twice the 1.5 s limit
            time.sleep(0.5)
            raw.send(b"\xc0\x00")  # PINGREQ
            assert raw.recv_exactly(2) == b"\xd0\x00"  # PINGRESP: still connected
        mid = publish(GOOD.encode(), reading("aq-fd-good", float(next(_value))), qos=1, packet_id=7)
        raw.send(mid)
        assert raw.recv_exactly(4) == b"\x40\x02\x00\x07"  # PUBACK after the commit
    finally:
        raw.close()


def test_mqtt5_connect_gets_connack_unacceptable_protocol(engine: Engine) -> None:
    raw = Raw(engine.port, client_id=None)
    try:
        raw.send(packet(0x10, string(b"MQTT") + b"\x05\x02\x00\x3c\x00" + string(b"v5")))
        assert raw.recv_exactly(4) == b"\x20\x02\x00\x01"
        assert raw.closed_by_broker()
    finally:
        raw.close()


def test_oversize_publish_is_refused_without_reading_it_and_dead_lettered(
    engine: Engine, good: Client
) -> None:
    """A 30 MB PUBLISH: closed after its topic and a prefix, the rest never sent or read."""
    topic = b"civicpulse/camden/air_quality/aq-fd-big"
    declared = 30 * 1024 * 1024
    body_start = string(topic) + struct.pack("!H", 9)
    head = bytes([0x32]) + varint(len(body_start) + declared) + body_start
    raw = Raw(engine.port, b"big")
    try:
        raw.send(head + b"A" * 8192)  # and nothing more: the broker must not wait for 30 MB
        assert raw.closed_by_broker(), "the broker waited for the rest of the packet"
    finally:
        raw.close()
    good_still_works(engine, good)
    assert engine.refused.get("packet_too_large", 0) >= 1
    rows = [row for row in engine.letters() if row[1] == topic.decode()]
    assert rows, "no dead letter for the oversize PUBLISH"
    reason, _topic, payload, size, detail = rows[-1]
    assert reason == "payload_too_large"
    assert size == declared
    assert 0 < len(payload) <= 4096 and set(bytes(payload)) == {ord("A")}
    assert "1048576-byte limit" in detail


def test_publish_at_the_limit_is_accepted(engine: Engine, good: Client) -> None:
    """Exactly ``max_packet_bytes`` passes the front door (PUBACK); one byte more does not."""
    topic = b"civicpulse/camden/air_quality/aq-fd-limit"

    def sized(total: int, packet_id: int) -> bytes:
        body_start = string(topic) + struct.pack("!H", packet_id)
        payload_len = total - 1 - 3 - len(body_start)  # a 3-byte remaining length
        return (
            bytes([0x32]) + varint(len(body_start) + payload_len) + body_start + b"x" * payload_len
        )

    at_limit = sized(DEFAULT_MAX_PACKET_BYTES, 11)
    assert len(at_limit) == DEFAULT_MAX_PACKET_BYTES
    raw = Raw(engine.port, b"at-limit")
    try:
        raw.send(at_limit)
        assert raw.recv_exactly(4) == b"\x40\x02\x00\x0b"  # PUBACK 11
        raw.send(sized(DEFAULT_MAX_PACKET_BYTES + 1, 12))
        assert raw.closed_by_broker()
    finally:
        raw.close()
    good_still_works(engine, good)


def test_checks_without_a_socket() -> None:
    """The pure checks agree with the raw-bytes tests (quick to read, quick to fail)."""
    check_fixed_header(3, 0b0010, first=False)
    with pytest.raises(Exception, match="wildcard"):
        check_body(3, 0, string(b"a/+") + b"x")
    publish_parts = check_body(3, 0b0010, string(b"a/b") + b"\x00\x05payload")
    assert publish_parts is not None
    assert (publish_parts.topic, publish_parts.packet_id, bytes(publish_parts.payload)) == (
        "a/b",
        5,
        b"payload",
    )
