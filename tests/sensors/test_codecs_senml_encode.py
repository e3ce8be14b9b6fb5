"""SenML (RFC 8428): encode_pack, and round trips through decode."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from sensors.codecs import senml
from sensors.codecs.senml import decode, encode_pack
from sensors.reading import Sample
from tests.sensors.senml_helpers import BIN, NOW

pytestmark = pytest.mark.adapter


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
