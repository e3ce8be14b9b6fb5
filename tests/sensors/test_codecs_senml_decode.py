"""SenML (RFC 8428): resolved records mapped to canonical readings, and their rejections."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from sensors.codecs.senml import decode
from sensors.errors import RejectedPayload, RejectReason
from sensors.reading import Reading
from sensors.topics import SensorAddress
from tests.sensors.senml_helpers import AIR, BIN, METER, NOW, PAYLOADS, RFC_5_1_1

pytestmark = pytest.mark.adapter


# --- decode: resolved records to canonical readings -----------------------------------------


def decode_json(pack: object, address: SensorAddress = BIN) -> list[Reading]:
    return decode(pack, address, NOW)


def rejected(pack: object, address: SensorAddress = BIN) -> RejectedPayload:
    with pytest.raises(RejectedPayload) as info:
        decode_json(pack, address)
    assert info.value.detail and "\n" not in info.value.detail
    return info.value


def test_decode_bin_fixture() -> None:
    pack = json.loads((PAYLOADS / "senml-milesight-em400-bin.json").read_text())
    got = {(r.metric, r.time): (r.value, r.unit) for r in decode_json(pack)}
    t0 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert got == {
        ("fill_level", t0 - timedelta(minutes=15)): (61.0, "%"),
        ("fill_level", t0): (63.0, "%"),
        ("temperature", t0): (11.4, "Cel"),
        ("battery", t0): (87.0, "%"),
        ("tilt", t0): (0.0, "bool"),
    }


def test_decode_sds011_fixture_uses_sensor_community_names() -> None:
    pack = json.loads((PAYLOADS / "senml-sds011-5331.json").read_text())
    received = datetime(2018, 2, 1, 0, 2, tzinfo=UTC)
    readings = decode(pack, AIR, received)
    assert [(r.metric, r.value, r.unit) for r in readings] == [
        ("pm10", 4.70, "ug/m3"),
        ("pm2_5", 1.97, "ug/m3"),
    ]
    assert {r.time for r in readings} == {datetime(2018, 2, 1, 0, 1, 43, tzinfo=UTC)}
    assert {(r.council, r.kind, r.sensor_id) for r in readings} == {
        ("aberdeen", "air_quality", "sds011-5331")
    }


def test_decode_energy_fixture_in_primary_units() -> None:
    pack = json.loads((PAYLOADS / "senml-energy-meter-primary.json").read_text())
    got = [(r.metric, r.value, r.unit) for r in decode_json(pack, METER)]
    assert got == [
        ("energy_import", pytest.approx(4.4982e10 / 3.6e6), "kWh"),  # 12495 kWh
        ("energy_import", pytest.approx(12_500.0), "kWh"),
        ("energy_export", pytest.approx(1_000.0), "kWh"),
        ("power", -1250.5, "W"),
    ]


@pytest.mark.parametrize(
    ("unit", "value", "expected"),
    [("%", 0.5, 50.0), ("/", 0.25, 25.0), ("/100", 40, 40.0), ("%EL", 87, 87.0)],
)
def test_senml_ratio_and_percent_units(unit: str, value: float, expected: float) -> None:
    pack: list[dict[str, object]] = [{"bver": 26, "n": "battery", "u": unit, "v": value}]
    assert decode_json(pack)[0].value == pytest.approx(expected)


def test_senml_percent_is_a_ratio_for_humidity_too() -> None:
    pack = [{"n": "humidity", "u": "%", "v": 0.55}, {"n": "relativeHumidity", "u": "%RH", "v": 60}]
    assert [r.value for r in decode_json(pack, AIR)] == [pytest.approx(55.0), 60.0]


@pytest.mark.parametrize(
    ("name", "metric"),
    [
        ("pm2_5", "pm2_5"),
        ("pm25", "pm2_5"),
        ("PM2.5", "pm2_5"),
        ("P2", "pm2_5"),
        ("P1", "pm10"),
        ("relativeHumidity", "humidity"),
        ("sds011-5331:pm10", "pm10"),
        ("sds011-5331/pm10", "pm10"),
        ("urn:dev:civicpulse:sds011-5331:PM2.5", "pm2_5"),
        ("http:/x/sds011-5331/P1", "pm10"),
    ],
)
def test_metric_names(name: str, metric: str) -> None:
    unit = "%RH" if metric == "humidity" else None
    record: dict[str, object] = {"n": name, "v": 12}
    if unit:
        record["u"] = unit
    assert decode_json([record], AIR)[0].metric == metric


@pytest.mark.parametrize(
    "name",
    [
        "urn:dev:civicpulse:sds011-9999:pm10",
        "urn:dev:civicpulse:x-sds011-5331:pm10",
        "5331:pm10",
        "urn:dev:ow:10e2073a01080063:pm10",
    ],
)
def test_sensor_mismatch(name: str) -> None:
    assert rejected([{"n": name, "v": 1}], AIR).reason is RejectReason.SENSOR_MISMATCH


def test_name_without_metric() -> None:
    error = rejected([{"bn": "urn:dev:civicpulse:em400-0042:", "v": 1}])
    assert error.reason is RejectReason.MISSING_FIELD


def test_unknown_metric_and_rfc_example_names() -> None:
    assert rejected([{"n": "distance", "v": 1}]).reason is RejectReason.UNKNOWN_METRIC
    assert rejected(orjson.loads(RFC_5_1_1), AIR).reason is RejectReason.SENSOR_MISMATCH


@pytest.mark.parametrize("unit", ["degC", "°C", "percent", "ratio", "lat", "mg/m3", "count"])
def test_units_outside_senml_vocabulary(unit: str) -> None:
    error = rejected([{"n": "temperature", "u": unit, "v": 1}])
    assert error.reason is RejectReason.UNKNOWN_UNIT


@pytest.mark.parametrize(("value", "expected"), [(True, 1.0), (False, 0.0)])
def test_boolean_flags(value: bool, expected: float) -> None:
    pack = [{"bu": "Cel", "n": "fire", "vb": value}]  # a base unit does not apply to vb
    assert decode_json(pack)[0].value == expected


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"n": "temperature", "vb": True}, RejectReason.WRONG_TYPE),
        ({"n": "temperature", "vs": "12"}, RejectReason.WRONG_TYPE),
        ({"n": "temperature", "vd": "MTI"}, RejectReason.WRONG_TYPE),
        ({"n": "temperature", "s": 12}, RejectReason.MISSING_FIELD),
        ({"n": "tilt", "v": 0.5}, RejectReason.WRONG_TYPE),
        ({"n": "temperature", "u": "Cel", "v": 250}, RejectReason.OUT_OF_RANGE),
        ({"n": "temperature", "u": "K", "v": 0}, RejectReason.OUT_OF_RANGE),
        ({"n": "temperature", "t": 3600, "v": 1}, RejectReason.TIME_OUT_OF_RANGE),
        ({"n": "temperature", "bt": 1e13, "v": 1}, RejectReason.TIME_OUT_OF_RANGE),
        ({"n": "temperature", "bt": 1e300, "v": 1}, RejectReason.TIME_OUT_OF_RANGE),
        ({"n": "temperature", "u": "W", "v": 1}, RejectReason.UNKNOWN_UNIT),
    ],
)
def test_record_rejections(record: dict[str, object], reason: RejectReason) -> None:
    assert rejected([record]).reason is reason
