"""Turn one decoded measurement into a canonical Reading, or reject it with a reason code."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from sensors.catalogue import Metric, kind_named
from sensors.errors import RejectedPayload, RejectReason
from sensors.reading import Reading, utc_from_epoch
from sensors.topics import SensorAddress
from sensors.units import CONVERSIONS, conversion_for

_SHOWN_CHARS: Final = 80


@dataclass(frozen=True, slots=True)
class Limits:
    """What one message may contain; times are judged against the injected received time."""

    max_payload_bytes: int = 262_144
    max_readings_per_message: int = 10_000
    max_past: timedelta = timedelta(days=7)
    max_future: timedelta = timedelta(minutes=5)


DEFAULT_LIMITS: Final = Limits()


def shown(value: object) -> str:
    """A one-line, length-capped repr of untrusted input for reject details."""
    text = repr(value)
    if len(text) > _SHOWN_CHARS:
        return f"{text[:_SHOWN_CHARS]}... ({len(text)} chars)"
    return text


def type_name(value: object) -> str:
    """The JSON name of a decoded value's type, for reject details."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def time_from_epoch(seconds: float) -> datetime:
    """Unix seconds to an aware UTC datetime; reject non-finite or unrepresentable times."""
    if not math.isfinite(seconds):
        raise RejectedPayload(RejectReason.NON_FINITE_VALUE, f"time {seconds!r} is not finite")
    try:
        return utc_from_epoch(seconds)
    except (OverflowError, ValueError, OSError) as exc:
        hint = " (milliseconds sent as seconds?)" if abs(seconds) > 1e11 else ""
        raise RejectedPayload(
            RejectReason.TIME_OUT_OF_RANGE,
            f"Unix time {seconds!r} is not a representable date{hint}",
        ) from exc


def _number(metric: Metric, value: object) -> float:
    """The measured number, with flags as 1.0/0.0; rejects wrong types and non-finite values."""
    wanted = "true/false or 0/1" if metric.is_flag else "a number"
    if isinstance(value, bool):
        if metric.is_flag:
            return 1.0 if value else 0.0
        raise RejectedPayload(
            RejectReason.WRONG_TYPE, f"{metric.name} takes {wanted}, got a boolean"
        )
    if not isinstance(value, int | float):
        raise RejectedPayload(
            RejectReason.WRONG_TYPE,
            f"{metric.name} takes {wanted}, got {type_name(value)} {shown(value)}",
        )
    try:
        number = float(value)
    except OverflowError as exc:
        raise RejectedPayload(
            RejectReason.OUT_OF_RANGE, f"{metric.name} value {shown(value)} is too large"
        ) from exc
    if not math.isfinite(number):
        raise RejectedPayload(
            RejectReason.NON_FINITE_VALUE, f"{metric.name} value {number!r} is not finite"
        )
    if metric.is_flag and number not in (0.0, 1.0):
        raise RejectedPayload(
            RejectReason.WRONG_TYPE, f"{metric.name} takes {wanted}, got {number:g}"
        )
    return number


def _canonical(metric: Metric, number: float, unit: str | None) -> float:
    """``number`` converted from ``unit`` into the metric's canonical unit."""
    if unit is None:
        return number
    conversion = conversion_for(unit, metric.unit)
    if conversion is None:
        if unit in CONVERSIONS:
            detail = f"unit {unit!r} cannot express {metric.name} (canonical unit {metric.unit})"
        else:
            detail = f"unit {shown(unit)} for {metric.name} is not a known unit"
        raise RejectedPayload(RejectReason.UNKNOWN_UNIT, detail)
    return conversion.apply(number)


def _check_time(time: datetime, received_at: datetime, limits: Limits) -> datetime:
    if time.tzinfo is None or time.utcoffset() is None:
        raise RejectedPayload(
            RejectReason.WRONG_TYPE, f"time {time.isoformat()} has no timezone offset"
        )
    if time > received_at + limits.max_future:
        raise RejectedPayload(
            RejectReason.TIME_OUT_OF_RANGE,
            f"time {time.isoformat()} is {time - received_at} after it was received at "
            f"{received_at.isoformat()} (limit {limits.max_future})",
        )
    if time < received_at - limits.max_past:
        raise RejectedPayload(
            RejectReason.TIME_OUT_OF_RANGE,
            f"time {time.isoformat()} is {received_at - time} before it was received at "
            f"{received_at.isoformat()} (limit {limits.max_past})",
        )
    return time.astimezone(UTC)


def make_reading(
    address: SensorAddress,
    metric_name: str,
    value: object,
    unit: str | None,
    time: datetime,
    received_at: datetime,
    limits: Limits = DEFAULT_LIMITS,
) -> Reading:
    """Validate one measurement and normalise it to the canonical unit and UTC.

    ``unit`` ``None`` means the metric's canonical unit. Raises ``RejectedPayload``.
    """
    if received_at.tzinfo is None or received_at.utcoffset() is None:
        raise ValueError("received_at must be timezone-aware")
    kind = kind_named(address.kind)
    if kind is None:
        raise RejectedPayload(
            RejectReason.UNKNOWN_KIND, f"kind {address.kind!r} is not in the catalogue"
        )
    metric = kind.metric(metric_name)
    if metric is None:
        raise RejectedPayload(
            RejectReason.UNKNOWN_METRIC,
            f"{kind.name} has no metric {shown(metric_name)} (known: {', '.join(kind.metrics)})",
        )
    number = _number(metric, value)
    canonical = _canonical(metric, number, unit)
    if not metric.low <= canonical <= metric.high:
        sent = f" (sent as {number:g} {unit})" if unit not in (None, metric.unit) else ""
        raise RejectedPayload(
            RejectReason.OUT_OF_RANGE,
            f"{metric.name} = {canonical:g} {metric.unit}{sent} is outside the possible range "
            f"[{metric.low:g}, {metric.high:g}] {metric.unit}",
        )
    return Reading(
        sensor_id=address.sensor_id,
        council=address.council,
        kind=address.kind,
        metric=metric.name,
        value=canonical,
        unit=metric.unit,
        time=_check_time(time, received_at, limits),
        received_at=received_at.astimezone(UTC),
    )
