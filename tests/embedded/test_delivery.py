"""Sensor messages reach subscribers as before; with no one subscribed, none is queued.

An in-process ``EmbeddedEngine`` (anonymous clients on loopback) and real paho clients: a
stored sensor message is PUBACKed directly when no client subscribes to anything and it is
not retained; a subscriber still receives it, and a retained one still reaches a later one.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from tests.embedded.test_auth_broker import Client, Running, reading, registry
from trust import AuthMode

pytestmark = pytest.mark.integration

TOPIC = "civicpulse/camden/air_quality/aq-deliver-1"


class Subscriber(Client):
    """A paho client subscribed (QoS 1) to ``topic_filter``, recording what it receives."""

    def __init__(self, port: int, topic_filter: str) -> None:
        self.received: list[tuple[str, bytes, bool]] = []
        self.got = threading.Event()
        subscribed = threading.Event()
        super().__init__(port)
        assert self.accepted()
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_a: subscribed.set()
        self.client.subscribe(topic_filter, qos=1)
        assert subscribed.wait(5), "no SUBACK"

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        self.received.append((msg.topic, bytes(msg.payload), bool(msg.retain)))
        self.got.set()


@pytest.fixture
def running(fresh_db: str) -> Iterator[Running]:
    with Running(fresh_db, AuthMode.OFF, registry()) as r:
        yield r


def undelivered(r: Running) -> int:
    broker = r.engine.broker
    assert broker is not None
    return broker.undelivered


def test_with_no_subscriber_a_stored_message_is_acknowledged_without_delivery(
    running: Running,
) -> None:
    device = Client(running.port)
    try:
        assert device.accepted()
        for value in (1.0, 2.0, 3.0):
            assert device.wait_ack(device.publish(TOPIC, reading("aq-deliver-1", value)), 10)
    finally:
        device.close()
    assert running.rows("SELECT value FROM readings ORDER BY value") == [(1.0,), (2.0,), (3.0,)]
    assert undelivered(running) == 3


def test_a_subscriber_still_receives_sensor_messages_and_none_once_it_has_gone(
    running: Running,
) -> None:
    watcher = Subscriber(running.port, "civicpulse/#")
    device = Client(running.port)
    try:
        assert device.accepted()
        payload = reading("aq-deliver-1", 7.5)
        assert device.wait_ack(device.client.publish(TOPIC, payload, qos=1).mid, 10)
        assert watcher.got.wait(5), "the subscriber received nothing"
        assert watcher.received == [(TOPIC, payload, False)]
        assert undelivered(running) == 0
        watcher.client.unsubscribe("civicpulse/#")  # leaves amqtt an empty subscriber list
        watcher.close()
        assert device.wait_ack(device.publish(TOPIC, reading("aq-deliver-1", 8.5)), 10)
        assert undelivered(running) == 1
    finally:
        device.close()
        watcher.close()
    assert running.rows("SELECT count(*) FROM readings") == [(2,)]


def test_a_retained_sensor_message_still_reaches_a_later_subscriber(running: Running) -> None:
    device = Client(running.port)
    try:
        assert device.accepted()
        payload = reading("aq-deliver-1", 4.25)
        info = device.client.publish(TOPIC, payload, qos=1, retain=True)
        assert device.wait_ack(info.mid, 10)
    finally:
        device.close()
    assert undelivered(running) == 0  # retained: amqtt's own flow keeps it
    later = Subscriber(running.port, TOPIC)
    try:
        assert later.got.wait(5), "the retained message was not delivered"
        assert later.received == [(TOPIC, payload, True)]
    finally:
        later.close()
    assert running.rows("SELECT value FROM readings") == [(4.25,)]
