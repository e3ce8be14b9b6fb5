"""decode_message: the ingest entry point, its check order, and a table of bad messages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

import sensors.codecs as codecs
from sensors.codecs import DEFAULT_LIMITS, Limits, decode_message
from sensors.errors import RejectedPayload, RejectReason
from sensors.reading import Sample

pytestmark = pytest.mark.adapter

PAYLOADS = Path(__file__).resolve().parent.parent / "fixtures" / "payloads"
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
AIR = "civicpulse/aberdeen/air_quality/sds011-5331"
BIN = "civicpulse/edinburgh/waste_bin/em400-0042"
T = '"2026-11-25T09:59:00Z"'


def one(metric: str, value: str, extra: str = "", time: str = T) -> bytes:
    return f'{{"time": {time}, "metric": "{metric}", "value": {value}{extra}}}'.encode()


def iso(delta: timedelta) -> str:
    return f'"{(NOW + delta).isoformat()}"'


BAD_MESSAGES: list[tuple[str, str, bytes, RejectReason]] = [
    ("not JSON", AIR, b"pm2_5=12.3", RejectReason.MALFORMED_JSON),
    ("truncated", AIR, one("pm2_5", "12.3")[:-9], RejectReason.MALFORMED_JSON),
    ("trailing comma", AIR, b'{"metric": "pm2_5", "value": 1,}', RejectReason.MALFORMED_JSON),
    ("value is a string", AIR, one("pm2_5", '"12.3"'), RejectReason.WRONG_TYPE),
    ("top level is a number", AIR, b"12.3", RejectReason.WRONG_TYPE),
    ("top level is null", AIR, b"null", RejectReason.WRONG_TYPE),
    ("naive time", AIR, one("pm2_5", "1", time='"2026-11-25T09:59:00"'), RejectReason.WRONG_TYPE),
    ("NaN", AIR, one("pm2_5", "NaN"), RejectReason.NON_FINITE_VALUE),
    ("Infinity", AIR, one("pm2_5", "Infinity"), RejectReason.NON_FINITE_VALUE),
    ("-Infinity", AIR, one("temperature", "-Infinity"), RejectReason.NON_FINITE_VALUE),
    ("overflowing number", AIR, one("pm2_5", "1e400"), RejectReason.NON_FINITE_VALUE),
    ("SenML NaN", AIR, b'[{"n": "pm10", "v": NaN}]', RejectReason.NON_FINITE_VALUE),
    ("unknown kind", "civicpulse/aberdeen/lamp_post/l1", one("pm2_5", "1"),
     RejectReason.UNKNOWN_KIND),
    ("bad topic", "civicpulse/aberdeen/air_quality", one("pm2_5", "1"), RejectReason.BAD_TOPIC),
    ("unknown metric", AIR, one("fill_level", "50"), RejectReason.UNKNOWN_METRIC),
    ("impossible value", AIR, one("pm2_5", "5000"), RejectReason.OUT_OF_RANGE),
    ("negative fill", BIN, b'[{"n": "fill_level", "u": "/", "v": -0.2}]',
     RejectReason.OUT_OF_RANGE),
    ("time far future", AIR, one("pm2_5", "1", time=iso(timedelta(days=1))),
     RejectReason.TIME_OUT_OF_RANGE),
    ("time far past", AIR, one("pm2_5", "1", time=iso(-timedelta(days=30))),
     RejectReason.TIME_OUT_OF_RANGE),
    ("time in milliseconds", AIR, one("pm2_5", "1", time="1795600740000"),
     RejectReason.TIME_OUT_OF_RANGE),
    ("1 MB payload", AIR, b'{"pad": "' + b"x" * 1_000_000 + b'"}',
     RejectReason.PAYLOAD_TOO_LARGE),
    ("SenML label ending in _", BIN, b'[{"n": "fill_level", "v": 50, "crit_": 1}]',
     RejectReason.SENML_MUST_UNDERSTAND),
    ("SenML secondary unit without bver", AIR, b'[{"n": "pm10", "u": "ug/m3", "v": 5}]',
     RejectReason.SENML_INVALID),
    ("SenML two values", BIN, b'[{"n": "tilt", "v": 1, "vb": true}]', RejectReason.SENML_INVALID),
    ("invalid UTF-8", AIR, b'{"metric": "pm2_5", "unit": "\xb5g/m3"}', RejectReason.INVALID_UTF8),
    ("sensor mismatch (JSON)", AIR, one("pm2_5", "1", ', "sensor_id": "sds011-7789"'),
     RejectReason.SENSOR_MISMATCH),
    ("sensor mismatch (SenML)", AIR, b'[{"bn": "urn:dev:civicpulse:sds011-7789:", "n": "P2", '
     b'"v": 3}]', RejectReason.SENSOR_MISMATCH),
    ("unknown unit", AIR, one("pm2_5", "1", ', "unit": "grains/ft3"'), RejectReason.UNKNOWN_UNIT),
    ("unit for another quantity", AIR, one("pm2_5", "1", ', "unit": "Cel"'),
     RejectReason.UNKNOWN_UNIT),
    ("missing value", AIR, b'{"time": 1795600740, "metric": "pm2_5"}',
     RejectReason.MISSING_FIELD),
    ("empty payload", AIR, b"", RejectReason.EMPTY),
    ("whitespace payload", AIR, b" \r\n", RejectReason.EMPTY),
    ("empty SenML pack", AIR, b"[]", RejectReason.EMPTY),
    ("empty batch", AIR, b'{"readings": []}', RejectReason.EMPTY),
    ("deeply nested", AIR, b"[" * 100_000 + b"]" * 100_000, RejectReason.MALFORMED_JSON),
]  # fmt: skip


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [case[1:] for case in BAD_MESSAGES],
    ids=[case[0] for case in BAD_MESSAGES],
)
def test_bad_messages(topic: str, payload: bytes, reason: RejectReason) -> None:
    with pytest.raises(RejectedPayload) as info:
        decode_message(topic, payload, NOW)
    assert info.value.reason is reason, info.value.detail
    assert info.value.detail.strip() and "\n" not in info.value.detail
    assert len(info.value.detail) < 500


def test_table_covers_at_least_twelve_reasons() -> None:
    assert len({case[3] for case in BAD_MESSAGES}) >= 12


def test_malformed_json_detail_gives_the_position() -> None:
    with pytest.raises(RejectedPayload) as info:
        decode_message(AIR, b'{"metric": "pm2_5", "value": 1,}', NOW)
    assert "trailing comma" in info.value.detail and "(char 30)" in info.value.detail


def test_size_is_checked_before_anything_else() -> None:
    huge = b"\xff" * (DEFAULT_LIMITS.max_payload_bytes + 1)
    with pytest.raises(RejectedPayload) as info:
        decode_message("not/a/topic", huge, NOW)
    assert info.value.reason is RejectReason.PAYLOAD_TOO_LARGE


def test_size_limit_is_inclusive() -> None:
    body = one("pm2_5", "1")
    limits = Limits(max_payload_bytes=len(body))
    assert len(decode_message(AIR, body, NOW, limits)) == 1
    with pytest.raises(RejectedPayload) as info:
        decode_message(AIR, body + b" ", NOW, limits)
    assert info.value.reason is RejectReason.PAYLOAD_TOO_LARGE


def test_empty_is_checked_before_the_topic() -> None:
    with pytest.raises(RejectedPayload) as info:
        decode_message("bad", b"", NOW)
    assert info.value.reason is RejectReason.EMPTY


def test_topic_is_checked_before_utf8() -> None:
    with pytest.raises(RejectedPayload) as info:
        decode_message("bad", b"\xff", NOW)
    assert info.value.reason is RejectReason.BAD_TOPIC


@pytest.mark.parametrize(
    "payload",
    [
        b'{"time": 1795600740, "readings": [' + b",".join([b'{"metric": "pm10", "value": 1}'] * 4)
        + b"]}",
        b"[" + b",".join([b'{"n": "pm10", "v": 1}'] * 4) + b"]",
    ],
)  # fmt: skip
def test_too_many_readings(payload: bytes) -> None:
    limits = Limits(max_readings_per_message=3)
    with pytest.raises(RejectedPayload) as info:
        decode_message(AIR, payload, NOW, limits)
    assert info.value.reason is RejectReason.PAYLOAD_TOO_LARGE
    assert len(decode_message(AIR, payload, NOW, Limits(max_readings_per_message=4))) == 4


@pytest.mark.parametrize(
    ("topic", "fixture", "count"),
    [
        (BIN, "senml-milesight-em400-bin.json", 5),
        ("civicpulse/camden/energy_meter/meter-17", "senml-energy-meter-primary.json", 4),
    ],
)
def test_fixtures_through_the_entry_point(topic: str, fixture: str, count: int) -> None:
    readings = decode_message(topic, (PAYLOADS / fixture).read_bytes(), NOW)
    assert len(readings) == count
    assert {r.sensor_id for r in readings} == {topic.rsplit("/", 1)[1]}


def test_sds011_fixtures_replayed_at_their_time() -> None:
    received = datetime(2018, 2, 1, 0, 5, tzinfo=UTC)
    senml = decode_message(AIR, (PAYLOADS / "senml-sds011-5331.json").read_bytes(), received)
    batch = decode_message(
        AIR, (PAYLOADS / "civicpulse-sds011-5331-batch.json").read_bytes(), received
    )
    assert [(r.metric, r.value) for r in senml + batch] == [
        ("pm10", 4.70),
        ("pm2_5", 1.97),
        ("pm10", 9.20),
        ("pm2_5", 1.63),
    ]


def test_both_formats_round_trip_through_the_entry_point() -> None:
    samples = [
        Sample(metric="pm2_5", value=12.3, time=NOW - timedelta(minutes=5)),
        Sample(metric="humidity", value=81.5, time=NOW - timedelta(minutes=5)),
        Sample(metric="temperature", value=278.65, unit="K", time=NOW),
    ]
    payloads = [
        codecs.civicpulse_json.encode("sds011-5331", samples),
        codecs.senml.encode_pack("sds011-5331", samples),
        codecs.senml.encode_pack("sds011-5331", samples, secondary_units=False),
    ]
    for payload in payloads:
        readings = decode_message(AIR, payload, NOW)
        assert [(r.metric, r.unit, r.time) for r in readings] == [
            ("pm2_5", "ug/m3", NOW - timedelta(minutes=5)),
            ("humidity", "%RH", NOW - timedelta(minutes=5)),
            ("temperature", "Cel", NOW),
        ]
        # 278.65 K - 273.15 = 5.5 Cel
        assert [r.value for r in readings] == [
            pytest.approx(12.3),
            pytest.approx(81.5),
            pytest.approx(5.5),
        ]


def test_senml_payload_is_chosen_by_array_and_json_by_object() -> None:
    senml_pack = orjson.dumps([{"n": "pm10", "v": 4}])
    json_obj = orjson.dumps({"time": 1795600740, "metric": "pm10", "value": 4})
    assert decode_message(AIR, senml_pack, NOW)[0].time == NOW  # SenML "now" = received time
    assert decode_message(AIR, json_obj, NOW)[0].time == NOW - timedelta(minutes=1)


def test_public_api() -> None:
    assert set(codecs.__all__) >= {"decode_message", "Limits", "DEFAULT_LIMITS", "SensorAddress"}
    for name in codecs.__all__:
        assert hasattr(codecs, name)
