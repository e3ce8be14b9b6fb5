"""Ingest's device check: a message from an unknown or disabled device is a dead letter."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from sensors.errors import RejectReason
from sensors.intake import route_message
from sensors.validation import DEFAULT_LIMITS

RECEIVED = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
TOPIC = "civicpulse/camden/air_quality/aq-0001"
PAYLOAD = json.dumps(
    {
        "v": 1,
        "sensor_id": "aq-0001",
        "time": "2026-12-03T11:59:00Z",
        "readings": [{"metric": "pm10", "value": 12.5, "unit": "ug/m3"}],
    }
).encode()


@pytest.mark.parametrize("reason", ["unknown_device", "device_disabled"])
def test_a_refused_device_is_dead_lettered_before_decoding(reason: str) -> None:
    asked: list[str] = []

    def authorize(topic: str) -> str | None:
        asked.append(topic)
        return reason

    routed = route_message(TOPIC, PAYLOAD, RECEIVED, DEFAULT_LIMITS, authorize)
    assert asked == [TOPIC]
    assert routed.readings == []
    letter = routed.deadletter
    assert letter is not None
    assert (letter.reason, letter.payload, letter.mqtt_topic) == (reason, PAYLOAD, TOPIC)
    assert letter.detail and "\n" not in letter.detail
    assert RejectReason(reason) in (RejectReason.UNKNOWN_DEVICE, RejectReason.DEVICE_DISABLED)


def test_an_allowed_device_and_no_check_at_all_decode_as_before() -> None:
    with_check = route_message(TOPIC, PAYLOAD, RECEIVED, DEFAULT_LIMITS, lambda _t: None)
    without = route_message(TOPIC, PAYLOAD, RECEIVED, DEFAULT_LIMITS)
    assert with_check == without
    assert with_check.deadletter is None and len(with_check.readings) == 1


def test_a_refusal_comes_before_the_payload_is_even_looked_at() -> None:
    routed = route_message(
        TOPIC, b"not json", RECEIVED, DEFAULT_LIMITS, lambda _t: "unknown_device"
    )
    assert routed.deadletter is not None and routed.deadletter.reason == "unknown_device"


def test_a_broken_check_loses_nothing_it_is_an_internal_error_dead_letter() -> None:
    def broken(_topic: str) -> str | None:
        raise RuntimeError("registry exploded")

    routed = route_message(TOPIC, PAYLOAD, RECEIVED, DEFAULT_LIMITS, broken)
    assert routed.deadletter is not None
    assert routed.deadletter.reason == "internal_error"
    assert routed.deadletter.payload == PAYLOAD
    unknown = route_message(TOPIC, PAYLOAD, RECEIVED, DEFAULT_LIMITS, lambda _t: "made_up")
    assert unknown.deadletter is not None and unknown.deadletter.reason == "internal_error"
