"""The civicpulse JSON payload format v1: one reading or a batch; decode and encode."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from typing import Final

import orjson

from sensors.errors import RejectedPayload, RejectedRecord, RejectReason
from sensors.reading import Reading, Sample
from sensors.topics import SENSOR_ID_PATTERN, SensorAddress
from sensors.validation import (
    DEFAULT_LIMITS,
    Limits,
    make_reading,
    shown,
    time_from_epoch,
    type_name,
)

FORMAT_VERSION: Final = 1
SCHEMA_ID: Final = "https://civicpulse.example/schema/civicpulse-reading-v1.schema.json"
# In this format "%" is a percentage (SenML's "%" is a ratio); "%RH" stays as it is.
_UNIT_ALIASES: Final = {"%": "percent"}
# RFC 3339 section 5.6 date-time; the offset is optional here only to reject naive times
# with a clear message instead of "not a time".
_RFC3339: Final = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})?"
)


def _reject(reason: RejectReason, where: str, detail: str) -> RejectedPayload:
    return RejectedPayload(reason, f"{where}{detail}")


def parse_time(value: object, where: str = "") -> datetime:
    """An RFC 3339 string with an offset, or Unix seconds, as an aware datetime."""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _reject(
            RejectReason.WRONG_TYPE,
            where,
            f"'time' must be an RFC 3339 string or Unix seconds, got {type_name(value)}",
        )
    if not isinstance(value, str):
        try:
            return time_from_epoch(float(value))
        except OverflowError as exc:
            raise _reject(
                RejectReason.TIME_OUT_OF_RANGE, where, f"Unix time {shown(value)} is too large"
            ) from exc
    match = _RFC3339.fullmatch(value)
    if match is None:
        raise _reject(
            RejectReason.WRONG_TYPE, where, f"'time' {shown(value)} is not an RFC 3339 date-time"
        )
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    if offset is None:
        raise _reject(
            RejectReason.WRONG_TYPE,
            where,
            f"'time' {shown(value)} has no UTC offset; add 'Z' or e.g. '+01:00'",
        )
    try:
        tz = UTC
        if offset not in ("Z", "z"):
            sign = -1 if offset[0] == "-" else 1
            tz = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[4:6])))
        micros = int((fraction or "0")[:6].ljust(6, "0"))
        return datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micros, tz
        )
    except ValueError as exc:
        raise _reject(
            RejectReason.WRONG_TYPE, where, f"'time' {shown(value)} is not a valid date-time"
        ) from exc


def _reading(
    item: Mapping[str, object],
    default_time: object,
    where: str,
    address: SensorAddress,
    received_at: datetime,
    limits: Limits,
) -> Reading:
    for field in ("metric", "value"):
        if field not in item:
            raise _reject(RejectReason.MISSING_FIELD, where, f"no {field!r}")
    metric = item["metric"]
    if not isinstance(metric, str):
        raise _reject(
            RejectReason.WRONG_TYPE, where, f"'metric' must be a string, got {type_name(metric)}"
        )
    unit = item.get("unit")
    if unit is not None and not isinstance(unit, str):
        raise _reject(
            RejectReason.WRONG_TYPE, where, f"'unit' must be a string, got {type_name(unit)}"
        )
    raw_time = item.get("time", default_time)
    if raw_time is None:
        raise _reject(RejectReason.MISSING_FIELD, where, "no 'time' and no default 'time'")
    time = parse_time(raw_time, where)
    unit = _UNIT_ALIASES.get(unit, unit) if unit is not None else None
    try:
        return make_reading(address, metric, item["value"], unit, time, received_at, limits)
    except RejectedPayload as exc:
        raise _reject(exc.reason, where, exc.detail) from None


def decode(
    obj: object,
    address: SensorAddress,
    received_at: datetime,
    limits: Limits = DEFAULT_LIMITS,
) -> list[Reading]:
    """Decode a parsed civicpulse JSON object into canonical readings (all or nothing)."""
    readings, rejected = decode_each(obj, address, received_at, limits)
    if rejected:
        raise RejectedPayload(RejectReason(rejected[0].reason), rejected[0].detail)
    return readings


def _head(obj: object, address: SensorAddress) -> dict[str, object]:
    """The object, its version and sensor id checked: what a whole message stands or falls on."""
    if not isinstance(obj, dict):
        raise RejectedPayload(
            RejectReason.WRONG_TYPE, f"a civicpulse JSON payload is an object, got {type_name(obj)}"
        )
    if "v" in obj:
        version = obj["v"]
        if isinstance(version, bool) or version != FORMAT_VERSION:
            raise RejectedPayload(
                RejectReason.WRONG_TYPE,
                f"format version 'v' {shown(version)} is not supported (only {FORMAT_VERSION})",
            )
    if "sensor_id" in obj:
        sensor_id = obj["sensor_id"]
        if not isinstance(sensor_id, str):
            raise RejectedPayload(
                RejectReason.WRONG_TYPE, f"'sensor_id' must be a string, got {type_name(sensor_id)}"
            )
        if sensor_id != address.sensor_id:
            raise RejectedPayload(
                RejectReason.SENSOR_MISMATCH,
                f"'sensor_id' {shown(sensor_id)} differs from the topic's {address.sensor_id!r}",
            )
    return obj


def decode_each(
    obj: object,
    address: SensorAddress,
    received_at: datetime,
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[list[Reading], list[RejectedRecord]]:
    """Decode a batch reading by reading: the readings, and each rejected one with its index.

    Raises ``RejectedPayload`` for what spoils the whole message (not an object, version,
    sensor id, no ``readings`` array) and for a single-reading message that is rejected.
    """
    obj = _head(obj, address)
    if "readings" not in obj:
        if "metric" not in obj:
            raise RejectedPayload(
                RejectReason.MISSING_FIELD, "payload has neither 'metric' nor 'readings'"
            )
        if "time" not in obj:
            raise RejectedPayload(RejectReason.MISSING_FIELD, "no 'time'")
        return [_reading(obj, None, "", address, received_at, limits)], []
    if "metric" in obj:
        raise RejectedPayload(
            RejectReason.WRONG_TYPE, "payload has both 'metric' and 'readings'; send one form"
        )
    items = obj["readings"]
    if not isinstance(items, list):
        raise RejectedPayload(
            RejectReason.WRONG_TYPE, f"'readings' must be an array, got {type_name(items)}"
        )
    default_time = obj.get("time")
    readings: list[Reading] = []
    rejected: list[RejectedRecord] = []
    for index, item in enumerate(items):
        where = f"readings[{index}]: "
        try:
            if not isinstance(item, dict):
                raise _reject(
                    RejectReason.WRONG_TYPE, where, f"is {type_name(item)}, not an object"
                )
            readings.append(_reading(item, default_time, where, address, received_at, limits))
        except RejectedPayload as exc:
            rejected.append(RejectedRecord.of(index, exc, orjson.dumps(item)))
    return readings, rejected


def format_time(time: datetime) -> str:
    """RFC 3339 in UTC with microseconds and 'Z', e.g. ``2026-11-25T10:00:00.000000Z``."""
    if time.tzinfo is None:
        raise ValueError("sample times must be timezone-aware")
    return time.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _item(sample: Sample) -> dict[str, object]:
    if not isinstance(sample.value, bool) and not math.isfinite(sample.value):
        raise ValueError(f"{sample.metric}: cannot encode non-finite value {sample.value!r}")
    item: dict[str, object] = {
        "time": format_time(sample.time),
        "metric": sample.metric,
        "value": sample.value,
    }
    if sample.unit is not None:
        item["unit"] = sample.unit
    return item


def encode(sensor_id: str, samples: Sequence[Sample]) -> bytes:
    """Encode samples: the single-reading form for one sample, the batch form for more."""
    if SENSOR_ID_PATTERN.fullmatch(sensor_id) is None:
        raise ValueError(f"invalid sensor id {sensor_id!r}")
    if not samples:
        raise ValueError("nothing to encode")
    head: dict[str, object] = {"v": FORMAT_VERSION, "sensor_id": sensor_id}
    if len(samples) == 1:
        return orjson.dumps(head | _item(samples[0]))
    return orjson.dumps(head | {"readings": [_item(s) for s in samples]})
