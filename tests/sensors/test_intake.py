"""Ingest routing on device-style payloads: Kafka-ready records, or a dead letter."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from sensors.intake import route_message
from sensors.reading import decode_reading
from sensors.validation import DEFAULT_LIMITS
from stream_processors.batch import prepare_batch

pytestmark = pytest.mark.adapter

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "payloads"
RECEIVED = datetime(2018, 2, 1, 0, 5, tzinfo=UTC)


def test_sds011_senml_pack_becomes_keyed_canonical_records() -> None:
    payload = (FIXTURES / "senml-sds011-5331.json").read_bytes()
    routed = route_message(
        "civicpulse/aberdeen/air_quality/sds011-5331", payload, RECEIVED, DEFAULT_LIMITS
    )
    assert routed.deadletter is None
    readings = {decode_reading(v).metric: decode_reading(v) for _k, v in routed.readings}
    # Sensor.Community row 2018-02-01T00:01:43: P1 (PM10) 4.70, P2 (PM2.5) 1.97 ug/m3
    assert readings["pm10"].value == 4.70
    assert readings["pm2_5"].value == 1.97
    assert readings["pm10"].time == datetime(2018, 2, 1, 0, 1, 43, tzinfo=UTC)
    assert {k for k, _v in routed.readings} == {b"sds011-5331"}
    # what the bridge produces is exactly what the stream engines accept
    batch = prepare_batch([v for _k, v in routed.readings])
    assert not batch.poison and len(batch.readings) == len(routed.readings)


def test_payload_for_another_sensor_is_dead_lettered_with_raw_bytes_and_topic() -> None:
    payload = (FIXTURES / "senml-sds011-5331.json").read_bytes()
    topic = "civicpulse/aberdeen/air_quality/sds011-9999"
    routed = route_message(topic, payload, RECEIVED, DEFAULT_LIMITS)
    assert routed.readings == []
    letter = routed.deadletter
    assert letter is not None
    assert letter.reason == "sensor_mismatch"
    assert letter.payload == payload
    assert letter.mqtt_topic == topic
    assert letter.received_at == RECEIVED
    headers = dict(letter.headers())
    assert headers["reason"] == b"sensor_mismatch"
    assert headers["mqtt_topic"] == topic.encode()


def test_a_decoder_bug_becomes_an_internal_error_dead_letter_with_the_raw_bytes(
    monkeypatch,
) -> None:
    import sensors.codecs

    def broken(*_args: object) -> None:
        raise ZeroDivisionError("a bug in a codec")

    monkeypatch.setattr(sensors.codecs, "decode_records", broken)
    payload = b'{"no2": 12.5}'
    topic = "civicpulse/aberdeen/air_quality/aq-0001"
    routed = route_message(topic, payload, RECEIVED, DEFAULT_LIMITS)
    assert routed.readings == []
    letter = routed.deadletter
    assert letter is not None
    assert letter.reason == "internal_error"
    assert letter.detail == "ZeroDivisionError: a bug in a codec"
    assert (letter.payload, letter.mqtt_topic, letter.received_at) == (payload, topic, RECEIVED)
