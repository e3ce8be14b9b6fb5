"""civicpulse JSON v1: decode both forms, reject bad fields, encode, and match the schema."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import jsonschema
import orjson
import pytest

from sensors.codecs.civicpulse_json import decode, encode, format_time, parse_time
from sensors.errors import RejectedPayload, RejectReason
from sensors.reading import Reading, Sample
from sensors.topics import SensorAddress

pytestmark = pytest.mark.adapter

ROOT = Path(__file__).resolve().parent.parent.parent
SCHEMA = json.loads((ROOT / "sensors/schema/civicpulse-reading-v1.schema.json").read_text())
PAYLOADS = ROOT / "tests/fixtures/payloads"
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
AIR = SensorAddress("aberdeen", "air_quality", "sds011-5331")
BIN = SensorAddress("edinburgh", "waste_bin", "em400-0042")
METER = SensorAddress("camden", "energy_meter", "meter-17")


def decoded(obj: object, address: SensorAddress = AIR) -> list[Reading]:
    return decode(obj, address, NOW)


def rejected(obj: object, address: SensorAddress = AIR) -> RejectedPayload:
    with pytest.raises(RejectedPayload) as info:
        decode(obj, address, NOW)
    assert info.value.detail and "\n" not in info.value.detail
    return info.value


def test_single_reading() -> None:
    obj = {"time": "2026-11-25T10:00:00Z", "metric": "pm2_5", "value": 12.3, "unit": "ug/m3"}
    [reading] = decoded(obj)
    assert reading == Reading(
        sensor_id="sds011-5331",
        council="aberdeen",
        kind="air_quality",
        metric="pm2_5",
        value=12.3,
        unit="ug/m3",
        time=NOW,
        received_at=NOW,
    )


def test_batch_with_default_and_own_times() -> None:
    obj = {
        "v": 1,
        "sensor_id": "em400-0042",
        "time": "2026-11-25T09:45:00Z",
        "readings": [
            {"metric": "fill_level", "value": 63, "unit": "%"},
            {"metric": "temperature", "value": 11.4, "time": "2026-11-25T10:00:00+01:00"},
            {"metric": "tilt", "value": False},
            {"metric": "battery", "value": 87, "unit": "percent", "time": 1795600800},
        ],
    }
    got = [(r.metric, r.value, r.unit, r.time) for r in decoded(obj, BIN)]
    assert got == [
        ("fill_level", 63.0, "%", NOW - timedelta(minutes=15)),
        ("temperature", 11.4, "Cel", NOW - timedelta(hours=1)),
        ("tilt", 0.0, "bool", NOW - timedelta(minutes=15)),
        ("battery", 87.0, "%", NOW),
    ]


def test_percent_means_percent_and_rh_stays() -> None:
    obj = {"time": 1795600800, "readings": [
        {"metric": "humidity", "value": 55, "unit": "%"},
        {"metric": "humidity", "value": 56, "unit": "%RH"},
    ]}  # fmt: skip
    assert [r.value for r in decoded(obj)] == [55.0, 56.0]


def test_unknown_top_level_fields_are_ignored() -> None:
    obj = {"time": 1795600800, "metric": "pm10", "value": 3, "lat": 57.1, "extra": {"a": [1]}}
    assert decoded(obj)[0].value == 3.0


def test_empty_batch_decodes_to_nothing() -> None:
    assert decoded({"readings": []}) == []


def test_fixture_batch() -> None:
    obj = json.loads((PAYLOADS / "civicpulse-sds011-5331-batch.json").read_text())
    received = datetime(2018, 2, 1, 0, 5, tzinfo=UTC)
    readings = decode(obj, AIR, received)
    assert [(r.metric, r.value, r.unit) for r in readings] == [
        ("pm10", 9.2, "ug/m3"),
        ("pm2_5", 1.63, "ug/m3"),
    ]
    assert {r.time for r in readings} == {datetime(2018, 2, 1, 0, 4, 11, tzinfo=UTC)}
    assert not list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(obj))


@pytest.mark.parametrize(
    ("obj", "reason"),
    [
        ({"v": 2, "time": 1795600800, "metric": "pm10", "value": 1}, RejectReason.WRONG_TYPE),
        ({"v": True, "time": 1795600800, "metric": "pm10", "value": 1}, RejectReason.WRONG_TYPE),
        ({"sensor_id": "other", "time": 1795600800, "metric": "pm10", "value": 1},
         RejectReason.SENSOR_MISMATCH),
        ({"sensor_id": 5331, "time": 1795600800, "metric": "pm10", "value": 1},
         RejectReason.WRONG_TYPE),
        ({"time": 1795600800, "value": 1}, RejectReason.MISSING_FIELD),
        ({"time": 1795600800, "metric": "pm10"}, RejectReason.MISSING_FIELD),
        ({"metric": "pm10", "value": 1}, RejectReason.MISSING_FIELD),
        ({"metric": "pm10", "value": 1, "time": None}, RejectReason.MISSING_FIELD),
        ({"time": 1795600800, "metric": "pm10", "value": None}, RejectReason.WRONG_TYPE),
        ({"time": 1795600800, "metric": "pm10", "value": "1"}, RejectReason.WRONG_TYPE),
        ({"time": 1795600800, "metric": 10, "value": 1}, RejectReason.WRONG_TYPE),
        ({"time": 1795600800, "metric": "pm10", "value": 1, "unit": 3}, RejectReason.WRONG_TYPE),
        ({"time": "2026-11-25T10:00:00", "metric": "pm10", "value": 1}, RejectReason.WRONG_TYPE),
        ({"time": "yesterday", "metric": "pm10", "value": 1}, RejectReason.WRONG_TYPE),
        ({"time": "2026-11-25", "metric": "pm10", "value": 1}, RejectReason.WRONG_TYPE),
        ({"time": "2026-02-30T10:00:00Z", "metric": "pm10", "value": 1}, RejectReason.WRONG_TYPE),
        ({"time": "2026-11-25T10:00:00+25:00", "metric": "pm10", "value": 1},
         RejectReason.WRONG_TYPE),
        ({"time": True, "metric": "pm10", "value": 1}, RejectReason.WRONG_TYPE),
        ({"time": 1795600800000, "metric": "pm10", "value": 1}, RejectReason.TIME_OUT_OF_RANGE),
        ({"time": 10**400, "metric": "pm10", "value": 1}, RejectReason.TIME_OUT_OF_RANGE),
        ({"time": 0, "metric": "pm10", "value": 1}, RejectReason.TIME_OUT_OF_RANGE),
        ({"time": 1795600800, "metric": "fill_level", "value": 1}, RejectReason.UNKNOWN_METRIC),
        ({"time": 1795600800, "metric": "pm10", "value": 1, "unit": "%"},
         RejectReason.UNKNOWN_UNIT),
        ({"time": 1795600800, "metric": "pm10", "value": -5}, RejectReason.OUT_OF_RANGE),
        ({"time": 1795600800}, RejectReason.MISSING_FIELD),
        ({"time": 1795600800, "metric": "pm10", "value": 1, "readings": []},
         RejectReason.WRONG_TYPE),
        ({"readings": {"metric": "pm10"}}, RejectReason.WRONG_TYPE),
        ({"readings": [1]}, RejectReason.WRONG_TYPE),
        ({"readings": [{"metric": "pm10", "value": 1}]}, RejectReason.MISSING_FIELD),
        ([{"metric": "pm10", "value": 1}], RejectReason.WRONG_TYPE),
    ],
)  # fmt: skip
def test_rejections(obj: object, reason: RejectReason) -> None:
    assert rejected(obj).reason is reason


def test_naive_time_detail_says_what_to_do() -> None:
    detail = rejected({"time": "2026-11-25T10:00:00", "metric": "pm10", "value": 1}).detail
    assert "offset" in detail and "Z" in detail


def test_batch_rejection_names_the_reading() -> None:
    obj = {"time": 1795600800, "readings": [
        {"metric": "pm10", "value": 1}, {"metric": "pm10", "value": 5000},
    ]}  # fmt: skip
    error = rejected(obj)
    assert error.reason is RejectReason.OUT_OF_RANGE
    assert error.detail.startswith("readings[1]: pm10 = 5000")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-25T10:00:00Z", NOW),
        ("2026-11-25t10:00:00z", NOW),
        ("2026-11-25 10:00:00Z", NOW),
        ("2026-11-25T10:00:00+00:00", NOW),
        ("2026-11-25T10:00:00-00:00", NOW),
        ("2026-11-25T11:30:00+01:30", NOW),
        ("2026-11-25T05:00:00-05:00", NOW),
        ("2026-11-25T10:00:00.5Z", NOW + timedelta(milliseconds=500)),
        ("2026-11-25T10:00:00.123456789Z", NOW + timedelta(microseconds=123456)),
        (1795600800, NOW),
        (1795600800.000001, NOW + timedelta(microseconds=1)),
    ],
)
def test_parse_time(text: str | float, expected: datetime) -> None:
    got = parse_time(text)
    assert got == expected and got.tzinfo is not None


# --- encode -----------------------------------------------------------------------------------


def test_encode_single() -> None:
    sample = Sample(metric="pm2_5", value=12.3, unit="ug/m3", time=NOW)
    assert orjson.loads(encode("sds011-5331", [sample])) == {
        "v": 1,
        "sensor_id": "sds011-5331",
        "time": "2026-11-25T10:00:00.000000Z",
        "metric": "pm2_5",
        "value": 12.3,
        "unit": "ug/m3",
    }


def test_encode_batch_omits_missing_units_and_keeps_booleans() -> None:
    bst = timezone(timedelta(hours=1))
    samples = [
        Sample(metric="fill_level", value=63.0, time=datetime(2026, 7, 1, 11, 0, 0, 5, bst)),
        Sample(metric="tilt", value=True, time=NOW),
    ]
    assert orjson.loads(encode("em400-0042", samples)) == {
        "v": 1,
        "sensor_id": "em400-0042",
        "readings": [
            {"time": "2026-07-01T10:00:00.000005Z", "metric": "fill_level", "value": 63.0},
            {"time": "2026-11-25T10:00:00.000000Z", "metric": "tilt", "value": True},
        ],
    }


def test_format_time_needs_aware_times() -> None:
    with pytest.raises(ValueError):
        format_time(datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("sensor_id", "samples"),
    [
        ("", [Sample(metric="pm10", value=1.0, time=NOW)]),
        ("s1", []),
        ("s1", [Sample(metric="pm10", value=float("nan"), time=NOW)]),
        ("s1", [Sample(metric="pm10", value=1.0, time=datetime(2026, 1, 1))]),
    ],
)
def test_encode_refuses(sensor_id: str, samples: list[Sample]) -> None:
    with pytest.raises(ValueError):
        encode(sensor_id, samples)


def round_trip_samples() -> list[Sample]:
    t = NOW - timedelta(minutes=30)
    return [
        Sample(metric="energy_import", value=45_000_000.0, unit="J", time=t),
        Sample(metric="energy_export", value=2_500.0, unit="Wh", time=t),
        Sample(metric="power", value=-1.5, unit="kW", time=t + timedelta(microseconds=7)),
    ]


def test_round_trip() -> None:
    payload = encode("meter-17", round_trip_samples())
    readings = decode(orjson.loads(payload), METER, NOW)
    t = NOW - timedelta(minutes=30)
    assert [(r.metric, r.unit, r.time) for r in readings] == [
        ("energy_import", "kWh", t),
        ("energy_export", "kWh", t),
        ("power", "W", t + timedelta(microseconds=7)),
    ]
    # 45e6 J / (3.6e6 J per kWh) = 12.5 kWh; 2500 Wh = 2.5 kWh; -1.5 kW = -1500 W
    assert [r.value for r in readings] == [
        pytest.approx(12.5),
        pytest.approx(2.5),
        pytest.approx(-1500.0),
    ]


def test_round_trip_single_percent() -> None:
    payload = encode("em400-0042", [Sample(metric="fill_level", value=40, unit="%", time=NOW)])
    assert decode(orjson.loads(payload), BIN, NOW)[0].value == 40.0


# --- JSON Schema ------------------------------------------------------------------------------


def test_schema_is_valid_draft_2020_12() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize(
    "payload",
    [
        encode("sds011-5331", [Sample(metric="pm2_5", value=12.3, unit="ug/m3", time=NOW)]),
        encode("em400-0042", [Sample(metric="tilt", value=False, time=NOW)]),
        encode("meter-17", round_trip_samples()),
        b'{"time": "2026-11-25T10:00:00Z", "metric": "pm2_5", "value": 12.3, "unit": "ug/m3"}',
        b'{"time": 1795600800, "readings": [{"metric": "pm10", "value": 1}]}',
    ],
)
def test_encoded_examples_match_the_schema(payload: bytes) -> None:
    jsonschema.validate(orjson.loads(payload), SCHEMA, cls=jsonschema.Draft202012Validator)


@pytest.mark.parametrize(
    "doc",
    [
        {"time": "2026-11-25T10:00:00", "metric": "pm2_5", "value": 1},
        {"time": "2026-11-25T10:00:00Z", "metric": "pm2_5"},
        {"time": "2026-11-25T10:00:00Z", "metric": "pm2_5", "value": "1"},
        {"v": 2, "time": "2026-11-25T10:00:00Z", "metric": "pm2_5", "value": 1},
        {"readings": [{"metric": "pm10", "value": 1}]},
        {"time": 1, "metric": "pm10", "value": 1, "readings": []},
        [],
    ],
)
def test_schema_rejects_what_the_decoder_rejects(doc: object) -> None:
    assert list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(doc))
    with pytest.raises(RejectedPayload):
        decode(doc, AIR, NOW)
