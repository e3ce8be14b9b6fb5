"""make_reading: metric lookup, types, units, ranges and time bounds."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta, timezone

import pytest

from sensors.errors import RejectedPayload, RejectReason
from sensors.topics import SensorAddress
from sensors.validation import DEFAULT_LIMITS, Limits, make_reading, time_from_epoch

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
AIR = SensorAddress("aberdeen", "air_quality", "sds011-5331")
BIN = SensorAddress("edinburgh", "waste_bin", "em400-0042")
METER = SensorAddress("camden", "energy_meter", "meter-17")


def reject(
    address: SensorAddress,
    metric: str,
    value: object,
    unit: str | None = None,
    time: datetime = NOW,
    limits: Limits = DEFAULT_LIMITS,
) -> RejectedPayload:
    with pytest.raises(RejectedPayload) as info:
        make_reading(address, metric, value, unit, time, NOW, limits)
    assert info.value.detail and "\n" not in info.value.detail
    return info.value


def test_limits_defaults() -> None:
    assert Limits(262_144, 10_000, timedelta(days=7), timedelta(minutes=5)) == DEFAULT_LIMITS


def test_canonical_reading() -> None:
    reading = make_reading(AIR, "pm2_5", 12.3, None, NOW, NOW, DEFAULT_LIMITS)
    assert reading.sensor_id == "sds011-5331"
    assert reading.council == "aberdeen"
    assert reading.kind == "air_quality"
    assert (reading.metric, reading.value, reading.unit) == ("pm2_5", 12.3, "ug/m3")
    assert reading.time == NOW and reading.received_at == NOW
    assert isinstance(reading.value, float)


def test_times_are_normalised_to_utc() -> None:
    bst = timezone(timedelta(hours=1))
    local = datetime(2026, 7, 1, 11, 0, tzinfo=bst)
    reading = make_reading(AIR, "pm10", 3, None, local, local, DEFAULT_LIMITS)
    assert reading.time.utcoffset() == timedelta(0)
    assert reading.time == datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
    assert reading.received_at.tzinfo is UTC


@pytest.mark.parametrize(
    ("address", "metric", "value", "unit", "expected"),
    [
        (AIR, "pm2_5", 0.0123, "mg/m3", 12.3),
        (AIR, "pm2_5", 1.23e-8, "kg/m3", 12.3),
        (AIR, "pm10", 7, "µg/m³", 7.0),
        (AIR, "temperature", 283.15, "K", 10.0),
        (AIR, "temperature", 50.0, "degF", 10.0),
        (AIR, "humidity", 55.0, "%RH", 55.0),
        (AIR, "humidity", 55.0, "percent", 55.0),
        (AIR, "humidity", 0.55, "ratio", 55.0),
        (BIN, "fill_level", 0.63, "ratio", 63.0),
        (BIN, "fill_level", 63, "/100", 63.0),
        (BIN, "battery", 87, "%EL", 87.0),
        (METER, "energy_import", 4.5e10, "J", 12_500.0),  # 4.5e10 / 3.6e6
        (METER, "energy_import", 2_500.0, "Wh", 2.5),
        (METER, "power", -1.25, "kW", -1_250.0),
    ],
)
def test_unit_conversion(
    address: SensorAddress, metric: str, value: float, unit: str, expected: float
) -> None:
    reading = make_reading(address, metric, value, unit, NOW, NOW, DEFAULT_LIMITS)
    assert reading.value == pytest.approx(expected)


@pytest.mark.parametrize(("value", "expected"), [(True, 1.0), (False, 0.0), (1, 1.0), (0, 0.0)])
def test_flags(value: object, expected: float) -> None:
    reading = make_reading(BIN, "tilt", value, None, NOW, NOW, DEFAULT_LIMITS)
    assert (reading.value, reading.unit) == (expected, "bool")


def test_flag_with_bool_unit() -> None:
    assert make_reading(BIN, "fire", True, "bool", NOW, NOW, DEFAULT_LIMITS).value == 1.0


@pytest.mark.parametrize("value", [0.5, 2, -1])
def test_flag_numbers_other_than_0_1(value: float) -> None:
    assert reject(BIN, "tilt", value).reason is RejectReason.WRONG_TYPE


@pytest.mark.parametrize("value", [True, "12.3", None, [1], {"v": 1}])
def test_wrong_types(value: object) -> None:
    assert reject(AIR, "pm2_5", value).reason is RejectReason.WRONG_TYPE


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite(value: float) -> None:
    assert reject(AIR, "pm2_5", value).reason is RejectReason.NON_FINITE_VALUE


def test_huge_integer_is_out_of_range() -> None:
    assert reject(AIR, "pm2_5", 10**400).reason is RejectReason.OUT_OF_RANGE


def test_unknown_metric() -> None:
    error = reject(BIN, "pm2_5", 1.0)
    assert error.reason is RejectReason.UNKNOWN_METRIC
    assert "pm2_5" in error.detail and "fill_level" in error.detail


@pytest.mark.parametrize("unit", ["furlong", "W", "%RH", "Cel", ""])
def test_unknown_or_incompatible_unit(unit: str) -> None:
    error = reject(AIR, "pm2_5", 1.0, unit)
    assert error.reason is RejectReason.UNKNOWN_UNIT


def test_unknown_kind() -> None:
    address = SensorAddress("x", "street_light", "y")
    assert reject(address, "lux", 1.0).reason is RejectReason.UNKNOWN_KIND


@pytest.mark.parametrize(
    ("address", "metric", "value", "unit"),
    [
        (AIR, "pm2_5", 1000.01, None),
        (AIR, "pm2_5", -0.1, None),
        (AIR, "temperature", 61.0, None),
        (BIN, "fill_level", 1.2, "ratio"),
        (METER, "power", 1e8, None),
    ],
)
def test_out_of_range(address: SensorAddress, metric: str, value: float, unit: str | None) -> None:
    assert reject(address, metric, value, unit).reason is RejectReason.OUT_OF_RANGE


def test_out_of_range_detail_names_metric_value_unit_and_bounds() -> None:
    detail = reject(BIN, "fill_level", 1.2, "ratio").detail
    for part in ("fill_level", "120", "%", "[0, 100]", "1.2 ratio"):
        assert part in detail


@pytest.mark.parametrize(("metric", "value"), [("pm2_5", 0.0), ("pm2_5", 1000.0), ("pm10", 2000)])
def test_range_bounds_are_inclusive(metric: str, value: float) -> None:
    assert make_reading(AIR, metric, value, None, NOW, NOW, DEFAULT_LIMITS).value == value


def test_naive_time() -> None:
    naive = datetime(2026, 11, 25, 10, 0)
    error = reject(AIR, "pm2_5", 1.0, time=naive)
    assert error.reason is RejectReason.WRONG_TYPE
    assert "timezone" in error.detail


def test_naive_received_at_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="received_at"):
        make_reading(AIR, "pm2_5", 1, None, NOW, datetime(2026, 1, 1), DEFAULT_LIMITS)


@pytest.mark.parametrize(
    ("offset", "accepted"),
    [
        (timedelta(minutes=5), True),
        (timedelta(minutes=5, microseconds=1), False),
        (-timedelta(days=7), True),
        (-timedelta(days=7, microseconds=1), False),
        (timedelta(days=365), False),
        (-timedelta(days=30), False),
    ],
)
def test_time_bounds(offset: timedelta, accepted: bool) -> None:
    if accepted:
        make_reading(AIR, "pm2_5", 1, None, NOW + offset, NOW, DEFAULT_LIMITS)
    else:
        error = reject(AIR, "pm2_5", 1, time=NOW + offset)
        assert error.reason is RejectReason.TIME_OUT_OF_RANGE


def test_custom_limits() -> None:
    limits = Limits(max_past=timedelta(hours=1), max_future=timedelta(0))
    error = reject(AIR, "pm2_5", 1, time=NOW - timedelta(hours=2), limits=limits)
    assert error.reason is RejectReason.TIME_OUT_OF_RANGE
    error = reject(AIR, "pm2_5", 1, time=NOW + timedelta(seconds=1), limits=limits)
    assert error.reason is RejectReason.TIME_OUT_OF_RANGE


def test_time_from_epoch() -> None:
    assert time_from_epoch(1795600800.5) == datetime(2026, 11, 25, 10, 0, 0, 500_000, tzinfo=UTC)
    with pytest.raises(RejectedPayload) as info:
        time_from_epoch(1.7e15)
    assert info.value.reason is RejectReason.TIME_OUT_OF_RANGE
    assert "milliseconds" in info.value.detail
    with pytest.raises(RejectedPayload) as info:
        time_from_epoch(math.nan)
    assert info.value.reason is RejectReason.NON_FINITE_VALUE
