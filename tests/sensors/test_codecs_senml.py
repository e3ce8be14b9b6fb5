"""SenML (RFC 8428): resolution against the RFC's examples, mapping to readings, encoding."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from sensors.codecs import senml
from sensors.codecs.senml import ResolvedRecord, decode, encode_pack, resolve
from sensors.errors import RejectedPayload, RejectReason
from sensors.reading import Reading, Sample
from sensors.topics import SensorAddress

pytestmark = pytest.mark.adapter

PAYLOADS = Path(__file__).resolve().parent.parent / "fixtures" / "payloads"
NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
NOW_S = NOW.timestamp()
BIN = SensorAddress("edinburgh", "waste_bin", "em400-0042")
AIR = SensorAddress("aberdeen", "air_quality", "sds011-5331")
METER = SensorAddress("camden", "energy_meter", "meter-17")

# The four RFC 8428 section 5.1 examples exactly as domain.md section 3 lists them.
RFC_5_1_1 = '[{"n":"urn:dev:ow:10e2073a01080063","u":"Cel","v":23.1}]'
RFC_5_1_2_A = (
    '[{"bn":"urn:dev:ow:10e2073a01080063:","n":"voltage","u":"V","v":120.1},'
    '{"n":"current","u":"A","v":1.2}]'
)
RFC_5_1_2_B = (
    '[{"bn":"urn:dev:ow:10e2073a0108006:","bt":1.276020076001e+09,"bu":"A","bver":5,'
    '"n":"voltage","u":"V","v":120.1},{"n":"current","t":-5,"v":1.2},'
    '{"n":"current","t":-4,"v":1.3},{"n":"current","t":-3,"v":1.4},'
    '{"n":"current","t":-2,"v":1.5},{"n":"current","t":-1,"v":1.6},'
    '{"n":"current","v":1.7}]'
)
RFC_5_1_6 = (
    '[{"bn":"2001:db8::2/","bt":1.320078429e+09,"n":"temperature","u":"Cel","v":25.2},'
    '{"n":"humidity","u":"%RH","v":30},'
    '{"bn":"2001:db8::1/","n":"temperature","u":"Cel","v":12.3},'
    '{"n":"humidity","u":"%RH","v":67}]'
)


def rr(name: str, unit: str | None, value: float, time: float, **extra: Any) -> ResolvedRecord:
    return ResolvedRecord(name=name, unit=unit, value=value, time=time, **extra)


def fields(record: ResolvedRecord) -> dict[str, Any]:
    return {slot: getattr(record, slot) for slot in ResolvedRecord.__slots__}


def check(got: list[ResolvedRecord], expected: list[ResolvedRecord]) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g.time == pytest.approx(e.time, abs=1e-6)
        assert {**fields(g), "time": 0} == {**fields(e), "time": 0}


def test_rfc_5_1_1_single_datapoint_is_now() -> None:
    expected = [rr("urn:dev:ow:10e2073a01080063", "Cel", 23.1, NOW_S)]
    check(resolve(orjson.loads(RFC_5_1_1), NOW_S), expected)


def test_rfc_5_1_2_multiple_datapoints_at_now() -> None:
    expected = [
        rr("urn:dev:ow:10e2073a01080063:voltage", "V", 120.1, NOW_S),
        rr("urn:dev:ow:10e2073a01080063:current", "A", 1.2, NOW_S),
    ]
    check(resolve(orjson.loads(RFC_5_1_2_A), NOW_S), expected)


def test_rfc_5_1_2_base_time_base_unit_and_version() -> None:
    # Tue Jun 8 18:01:16.001 UTC 2010 and each second for the 5 seconds before (RFC text).
    # Unit "A" for the currents comes from bu; bver 5 is kept in every resolved record
    # (RFC 8428 4.6: present in all resolved records when the version is not 10).
    bt = 1.276020076001e09
    name = "urn:dev:ow:10e2073a0108006:"
    expected = [
        rr(name + "current", "A", 1.2, 1276020071.001, version=5),
        rr(name + "current", "A", 1.3, 1276020072.001, version=5),
        rr(name + "current", "A", 1.4, 1276020073.001, version=5),
        rr(name + "current", "A", 1.5, 1276020074.001, version=5),
        rr(name + "current", "A", 1.6, 1276020075.001, version=5),
        rr(name + "voltage", "V", 120.1, bt, version=5),
        rr(name + "current", "A", 1.7, 1276020076.001, version=5),
    ]
    # Resolved records are in chronological order (RFC 8428 4.6); the sort is stable, so
    # the voltage stays ahead of the current taken at the same instant.
    check(resolve(orjson.loads(RFC_5_1_2_B), NOW_S), expected)
    assert datetime.fromtimestamp(bt, UTC) == datetime(2010, 6, 8, 18, 1, 16, 1000, UTC)


def test_rfc_5_1_6_collection_of_resources_changes_base_name() -> None:
    # The last record uses the base name of the 3rd record and the base time of the 1st.
    t = 1.320078429e09
    expected = [
        rr("2001:db8::2/temperature", "Cel", 25.2, t),
        rr("2001:db8::2/humidity", "%RH", 30.0, t),
        rr("2001:db8::1/temperature", "Cel", 12.3, t),
        rr("2001:db8::1/humidity", "%RH", 67.0, t),
    ]
    check(resolve(orjson.loads(RFC_5_1_6), NOW_S), expected)


def test_rfc_5_1_4_resolved_data() -> None:
    """RFC 8428 5.1.3 multiple measurements and its resolved form in 5.1.4."""
    pack = [
        {"bn": "urn:dev:ow:10e2073a01080063", "bt": 1.320067464e09, "bu": "%RH", "v": 20},
        {"u": "lon", "v": 24.30621},
        {"u": "lat", "v": 60.07965},
        {"t": 60, "v": 20.3},
        {"u": "lon", "t": 60, "v": 24.30622},
        {"u": "lat", "t": 60, "v": 60.07965},
        {"t": 120, "v": 20.7},
        {"u": "lon", "t": 120, "v": 24.30623},
        {"u": "lat", "t": 120, "v": 60.07966},
        {"u": "%EL", "t": 150, "v": 98},
        {"t": 180, "v": 21.2},
        {"u": "lon", "t": 180, "v": 24.30628},
        {"u": "lat", "t": 180, "v": 60.07967},
    ]
    n = "urn:dev:ow:10e2073a01080063"
    rows = [
        ("%RH", 1.320067464e09, 20), ("lon", 1.320067464e09, 24.30621),
        ("lat", 1.320067464e09, 60.07965), ("%RH", 1.320067524e09, 20.3),
        ("lon", 1.320067524e09, 24.30622), ("lat", 1.320067524e09, 60.07965),
        ("%RH", 1.320067584e09, 20.7), ("lon", 1.320067584e09, 24.30623),
        ("lat", 1.320067584e09, 60.07966), ("%EL", 1.320067614e09, 98),
        ("%RH", 1.320067644e09, 21.2), ("lon", 1.320067644e09, 24.30628),
        ("lat", 1.320067644e09, 60.07967),
    ]  # fmt: skip
    check(resolve(pack, NOW_S), [rr(n, u, float(v), t) for u, t, v in rows])


@pytest.mark.parametrize(
    ("bt", "t", "expected"),
    [
        (None, None, NOW_S),
        (None, -60, NOW_S - 60),
        (None, 30, NOW_S + 30),
        (-100, 40, NOW_S - 60),
        (2**28 - 1, None, NOW_S + 2**28 - 1),
        (2**28, None, 2**28),
        (1795600800, -900, 1795599900),
        (1795600800.25, None, 1795600800.25),
    ],
)
def test_time_resolution(bt: float | None, t: float | None, expected: float) -> None:
    record: dict[str, object] = {"n": "x", "v": 1}
    if bt is not None:
        record["bt"] = bt
    if t is not None:
        record["t"] = t
    assert resolve([record], NOW_S)[0].time == pytest.approx(expected)


def test_base_value_base_sum_and_other_value_types() -> None:
    pack = [
        {"bn": "dev:", "bv": 100, "bs": 5, "bu": "W", "n": "a", "v": 1, "s": 2, "ut": 60},
        {"n": "b", "v": 2},
        {"n": "c", "vs": "on", "u": "Cel"},
        {"n": "d", "vb": True},
        {"n": "e", "vd": "aGk"},
        {"n": "f", "s": 10, "bs": 0},
    ]
    got = {r.name: r for r in resolve(pack, NOW_S)}
    assert (got["dev:a"].value, got["dev:a"].sum, got["dev:a"].update_time) == (101, 7, 60)
    assert (got["dev:b"].value, got["dev:b"].sum, got["dev:b"].unit) == (102, 5, "W")
    assert (got["dev:c"].string_value, got["dev:c"].value, got["dev:c"].unit) == ("on", None, "Cel")
    assert got["dev:d"].bool_value is True and got["dev:d"].value is None
    assert got["dev:e"].data_value == "aGk"
    assert (got["dev:f"].sum, got["dev:f"].value) == (10, None)


def test_unknown_labels_are_ignored() -> None:
    assert resolve([{"n": "x", "v": 1, "foo": {"bar": 1}, "unit_x": 3}], NOW_S)[0].value == 1


@pytest.mark.parametrize(
    "pack",
    [
        [{"n": "x", "v": 1, "foo_": 1}],
        [{"n": "x", "v": 1}, {"n": "y", "v": 2, "bn_": "z"}],
        [{"n": "x", "v": 1, "_": 0}],
    ],
)
def test_must_understand_labels(pack: list[object]) -> None:
    with pytest.raises(RejectedPayload) as info:
        resolve(pack, NOW_S)
    assert info.value.reason is RejectReason.SENML_MUST_UNDERSTAND


@pytest.mark.parametrize(
    "pack",
    [
        {"n": "x", "v": 1},
        [1],
        [[{"n": "x", "v": 1}]],
        [{"v": 1}],
        [{"n": "", "v": 1}],
        [{"n": "-x", "v": 1}],
        [{"n": "a b", "v": 1}],
        [{"n": "temp°", "v": 1}],
        [{"n": "x", "v": 1, "vs": "1"}],
        [{"n": "x", "vb": True, "vd": "aGk"}],
        [{"n": "x"}],
        [{"n": "x", "v": "12"}],
        [{"n": "x", "v": True}],
        [{"n": "x", "vb": 1}],
        [{"n": "x", "vs": 1}],
        [{"n": "x", "vd": "a+b="}],
        [{"n": 7, "v": 1}],
        [{"bn": 7, "n": "x", "v": 1}],
        [{"n": "x", "v": 1, "t": "now"}],
        [{"n": "x", "v": 1, "u": 5}],
        [{"n": "x", "v": 1, "bver": 0}],
        [{"n": "x", "v": 1, "bver": 2.5}],
        [{"n": "x", "v": 1, "bver": 42}],  # feature code 5: not known to us (RFC 9100)
        [{"n": "x", "v": 1, "bver": 27}],  # reserved bits must read 0b1010
    ],
)
def test_invalid_packs(pack: object) -> None:
    with pytest.raises(RejectedPayload) as info:
        resolve(pack, NOW_S)
    assert info.value.reason is RejectReason.SENML_INVALID
    assert "\n" not in info.value.detail


@pytest.mark.parametrize("unit", ["ug/m3", "kWh", "/100", "Wh", "kW"])
@pytest.mark.parametrize("bver", [None, 10, 5])
def test_secondary_units_need_the_feature(unit: str, bver: int | None) -> None:
    for pack in ([{"n": "x", "u": unit, "v": 1}], [{"bu": unit, "n": "x", "v": 1}]):
        if bver is not None:
            pack[0]["bver"] = bver
        with pytest.raises(RejectedPayload) as info:
            resolve(pack, NOW_S)
        assert info.value.reason is RejectReason.SENML_INVALID
        assert "26" in info.value.detail


def test_secondary_units_with_bver_26() -> None:
    pack = [{"bver": 26, "n": "x", "u": "ug/m3", "v": 1}, {"n": "y", "u": "kWh", "v": 2}]
    assert [r.unit for r in resolve(pack, NOW_S)] == ["ug/m3", "kWh"]
    assert resolve(pack, NOW_S)[0].version == 26


def test_version_10_is_not_kept_in_resolved_records() -> None:
    assert resolve([{"bver": 10, "n": "x", "v": 1}], NOW_S)[0].version is None


def test_empty_pack_resolves_to_nothing() -> None:
    assert resolve([], NOW_S) == []


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


# --- encode_pack ------------------------------------------------------------------------------

T0 = datetime(2026, 11, 25, 9, 30, 0, 250_000, tzinfo=UTC)


def meter_samples() -> list[Sample]:
    return [
        Sample(metric="energy_import", value=12.5, time=T0),
        Sample(metric="power", value=-2.5, unit="kW", time=T0),
        Sample(metric="energy_export", value=1_500.0, unit="Wh", time=T0 + timedelta(seconds=1800)),
    ]


def test_encode_pack_with_secondary_units() -> None:
    pack = orjson.loads(encode_pack("meter-17", meter_samples()))
    assert pack == [
        {
            "bn": "urn:dev:civicpulse:meter-17:",
            "bt": T0.timestamp(),
            "bver": 26,
            "n": "energy_import",
            "u": "kWh",
            "v": 12.5,
        },
        {"n": "power", "u": "W", "v": -2500.0},
        {"n": "energy_export", "t": 1800.0, "u": "kWh", "v": 1.5},
    ]


def test_encode_pack_with_primary_units() -> None:
    pack = orjson.loads(encode_pack("meter-17", meter_samples(), secondary_units=False))
    assert "bver" not in pack[0]
    assert [(r["n"], r["u"]) for r in pack] == [
        ("energy_import", "J"),
        ("power", "W"),
        ("energy_export", "J"),
    ]
    # 12.5 kWh = 12.5 * 1000 W * 3600 s; 1500 Wh = 1500 * 3600 J
    assert [r["v"] for r in pack] == [pytest.approx(45_000_000.0), -2500.0, pytest.approx(5.4e6)]


def test_encode_air_and_bin_units() -> None:
    air = [
        Sample(metric="pm2_5", value=12.3, time=T0),
        Sample(metric="humidity", value=81.0, time=T0),
        Sample(metric="temperature", value=4.5, time=T0),
    ]
    bins = [
        Sample(metric="fill_level", value=63.0, time=T0),
        Sample(metric="tilt", value=True, time=T0),
        Sample(metric="fire", value=0, time=T0),
    ]
    secondary = orjson.loads(encode_pack("s1", air)) + orjson.loads(encode_pack("b1", bins))
    primary = orjson.loads(encode_pack("s1", air, secondary_units=False)) + orjson.loads(
        encode_pack("b1", bins, secondary_units=False)
    )
    assert [(r.get("u"), r.get("v", r.get("vb"))) for r in secondary] == [
        ("ug/m3", 12.3), ("%RH", 81.0), ("Cel", 4.5), ("/100", 63.0), (None, True), (None, False),
    ]  # fmt: skip
    assert [(r.get("u"), r.get("v", r.get("vb"))) for r in primary] == [
        ("kg/m3", pytest.approx(12.3e-9)), ("%RH", 81.0), ("Cel", 4.5),
        ("/", pytest.approx(0.63)), (None, True), (None, False),
    ]  # fmt: skip
    assert "bver" not in primary[0]


@pytest.mark.parametrize("secondary_units", [True, False])
def test_round_trip(secondary_units: bool) -> None:
    samples = [
        Sample(metric="fill_level", value=63.0, time=NOW - timedelta(minutes=30)),
        Sample(metric="temperature", value=283.15, unit="K", time=NOW - timedelta(minutes=30)),
        Sample(metric="battery", value=0.87, unit="ratio", time=NOW - timedelta(minutes=15)),
        Sample(metric="tilt", value=True, time=NOW - timedelta(microseconds=1)),
    ]
    payload = encode_pack("em400-0042", samples, secondary_units=secondary_units)
    readings = decode(orjson.loads(payload), BIN, NOW)
    assert [(r.metric, r.time, r.unit) for r in readings] == [
        ("fill_level", NOW - timedelta(minutes=30), "%"),
        ("temperature", NOW - timedelta(minutes=30), "Cel"),
        ("battery", NOW - timedelta(minutes=15), "%"),
        ("tilt", NOW - timedelta(microseconds=1), "bool"),
    ]
    assert [r.value for r in readings] == [
        pytest.approx(63.0),
        pytest.approx(10.0),  # 283.15 K - 273.15
        pytest.approx(87.0),  # 0.87 of 100 %
        1.0,
    ]


@pytest.mark.parametrize(
    ("sensor_id", "samples"),
    [
        ("bad id", [Sample(metric="pm10", value=1, time=NOW)]),
        ("s1", []),
        ("s1", [Sample(metric="lux", value=1, time=NOW)]),
        ("s1", [Sample(metric="pm10", value=1, unit="W", time=NOW)]),
        ("s1", [Sample(metric="tilt", value=0.5, time=NOW)]),
    ],
)
def test_encode_pack_refuses(sensor_id: str, samples: list[Sample]) -> None:
    with pytest.raises(ValueError):
        encode_pack(sensor_id, samples)


def test_module_constants() -> None:
    assert senml.SECONDARY_UNITS_VERSION == 26
    assert senml.RELATIVE_TIME_LIMIT == 268_435_456
