"""Partial acceptance: a batch or pack keeps its good records; each bad one is named by index."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from sensors.deadletter import KEEP_BYTES, DeadLetter
from sensors.intake import route_message
from sensors.reading import decode_reading
from sensors.validation import DEFAULT_LIMITS

pytestmark = pytest.mark.adapter

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
TOPIC = "civicpulse/aberdeen/air_quality/aq-0007"
WHEN = NOW - timedelta(minutes=1)


def values(routed) -> dict[str, float]:  # type: ignore[no-untyped-def]
    return {(r := decode_reading(v)).metric: r.value for _k, v in routed.readings}


def test_json_batch_stores_the_good_readings_and_names_the_bad_one() -> None:
    items = [
        {"metric": "no2", "value": 38.5, "unit": "ug/m3"},
        {"metric": "pm10", "value": 21.0},
        {"metric": "o3", "value": 61.25},
        {"metric": "pm2_5", "value": 2500.0},
    ]
    payload = orjson.dumps({"v": 1, "sensor_id": "aq-0007", "time": WHEN.isoformat(),
                            "readings": items})  # fmt: skip
    routed = route_message(TOPIC, payload, NOW, DEFAULT_LIMITS)
    assert values(routed) == {"no2": 38.5, "pm10": 21.0, "o3": 61.25}
    letter = routed.deadletter
    assert letter is not None
    assert letter.payload == payload and letter.accepted == 3
    assert [(p.index, p.reason) for p in letter.parts] == [(3, "out_of_range")]
    assert letter.parts[0].detail.startswith("readings[3]: pm2_5 = 2500")
    assert orjson.loads(letter.parts[0].record) == items[3]


def test_senml_pack_names_each_bad_record_by_its_index_as_sent() -> None:
    t = WHEN.timestamp()
    pack = [
        {"bn": "urn:dev:civicpulse:aq-0007:", "bt": t, "bver": 26, "n": "no2", "u": "ug/m3",
         "v": 38.5},
        {"n": "pm2_5", "u": "ug/m3", "v": 2500, "t": -60},  # impossible, and earliest
        {"n": "radon", "v": 1},  # not an air-quality metric
        {"n": "pm10", "u": "ug/m3", "v": 21, "t": 1},
        {"n": "o3", "vs": "high"},  # a string value
    ]  # fmt: skip
    routed = route_message(TOPIC, orjson.dumps(pack), NOW, DEFAULT_LIMITS)
    assert values(routed) == {"no2": 38.5, "pm10": 21.0}
    letter = routed.deadletter
    assert letter is not None and letter.accepted == 2
    assert [(p.index, p.reason) for p in letter.parts] == [
        (1, "out_of_range"),
        (2, "unknown_metric"),
        (4, "wrong_type"),
    ]
    assert all(p.detail.startswith(f"record {p.index}: ") for p in letter.parts)
    assert orjson.loads(letter.parts[1].record) == pack[2]


def test_what_spoils_a_whole_pack_or_batch_still_rejects_it_whole() -> None:
    bad_base = [{"bn": 7, "n": "no2", "v": 1}, {"n": "pm10", "v": 2}]
    must = [{"n": "no2", "v": 1, "t": 0}, {"n": "pm10", "v": 2, "x_": 1}]
    other = {"v": 1, "sensor_id": "aq-9999", "readings": [{"metric": "no2", "value": 1}]}
    for payload, reason in (
        (orjson.dumps(bad_base), "senml_invalid"),
        (orjson.dumps(must), "senml_must_understand"),
        (orjson.dumps(other), "sensor_mismatch"),
    ):
        routed = route_message(TOPIC, payload, NOW, DEFAULT_LIMITS)
        assert routed.readings == []
        assert routed.deadletter is not None
        assert (routed.deadletter.reason, routed.deadletter.parts) == (reason, ())


def test_a_single_reading_message_is_rejected_whole_as_before() -> None:
    payload = orjson.dumps({"time": WHEN.isoformat(), "metric": "pm2_5", "value": 2500})
    routed = route_message(TOPIC, payload, NOW, DEFAULT_LIMITS)
    assert routed.readings == []
    assert routed.deadletter is not None
    assert (routed.deadletter.reason, routed.deadletter.parts) == ("out_of_range", ())


def test_every_record_rejected_gives_one_part_each_and_no_readings() -> None:
    items = [{"metric": "no2", "value": -5}, {"metric": "pm10", "value": "x"}]
    payload = orjson.dumps({"time": WHEN.isoformat(), "readings": items})
    routed = route_message(TOPIC, payload, NOW, DEFAULT_LIMITS)
    assert routed.readings == []
    assert routed.deadletter is not None
    assert [(p.index, p.reason) for p in routed.deadletter.parts] == [
        (0, "out_of_range"),
        (1, "wrong_type"),
    ]


def test_parts_travel_through_kafka_headers() -> None:
    items = [{"metric": "no2", "value": 1.0}, {"metric": "no2", "value": 9e9}]
    payload = orjson.dumps({"time": WHEN.isoformat(), "readings": items})
    letter = route_message(TOPIC, payload, NOW, DEFAULT_LIMITS).deadletter
    assert letter is not None
    value, headers = letter.to_kafka()
    assert DeadLetter.from_kafka(value, headers) == letter


def test_an_oversize_payload_keeps_a_prefix_its_length_and_hash() -> None:
    payload = b'{"pad": "' + b"x" * 30_000_000 + b'"}'
    letter = route_message(TOPIC, payload, NOW, DEFAULT_LIMITS).deadletter
    assert letter is not None and letter.reason == "payload_too_large"
    assert letter.payload == payload[:KEEP_BYTES]
    assert letter.payload_size == len(payload)
    assert letter.payload_sha256 == hashlib.sha256(payload).hexdigest()
    value, headers = letter.to_kafka()
    h = dict(headers)
    assert value == payload[:KEEP_BYTES] and h["payload_truncated"] == b"true"
    assert h["payload_size"] == str(len(payload)).encode()
    back = DeadLetter.from_kafka(value, headers)
    assert (back.payload_size, back.payload_sha256) == (len(payload), letter.payload_sha256)


def test_a_topic_that_is_not_utf8_is_a_bad_topic_dead_letter() -> None:
    raw = b"civicpulse/aberdeen/air_quality/aq-\xff\xfe"
    routed = route_message(raw, b'{"metric": "no2"}', NOW, DEFAULT_LIMITS)
    assert routed.readings == []
    letter = routed.deadletter
    assert letter is not None and letter.reason == "bad_topic"
    assert letter.mqtt_topic == "civicpulse/aberdeen/air_quality/aq-\\xff\\xfe"
    assert "not UTF-8" in letter.detail
