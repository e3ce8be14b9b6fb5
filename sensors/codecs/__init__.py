"""Payload codecs and the one entry point that turns an MQTT message into canonical readings."""

from __future__ import annotations

import json
import math
from datetime import datetime

import orjson

from sensors.codecs import civicpulse_json, senml
from sensors.errors import RejectedPayload, RejectReason
from sensors.reading import Reading
from sensors.topics import SUBSCRIPTION_FILTER, SensorAddress, parse_topic, topic_for
from sensors.validation import DEFAULT_LIMITS, Limits, type_name

__all__ = [
    "DEFAULT_LIMITS",
    "SUBSCRIPTION_FILTER",
    "Limits",
    "Reading",
    "RejectReason",
    "RejectedPayload",
    "SensorAddress",
    "civicpulse_json",
    "decode_message",
    "parse_topic",
    "senml",
    "topic_for",
]


class _NonFinite(Exception):
    """A NaN/Infinity literal or an overflowing number met by the stdlib re-parse."""


def _constant(literal: str) -> float:
    raise _NonFinite(literal)


def _float(literal: str) -> float:
    number = float(literal)
    if not math.isfinite(number):
        raise _NonFinite(literal)
    return number


def _parse_json(text: str) -> object:
    """orjson first; on failure tell non-finite literals apart from plain bad JSON."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        error = str(exc)
    try:
        json.loads(text, parse_constant=_constant, parse_float=_float)
    except _NonFinite as exc:
        raise RejectedPayload(
            RejectReason.NON_FINITE_VALUE,
            f"payload contains {str(exc)[:40]!r}, which is not a finite JSON number",
        ) from None
    except (ValueError, RecursionError):
        pass  # json.JSONDecodeError is a ValueError; orjson's message is reported below
    raise RejectedPayload(RejectReason.MALFORMED_JSON, f"payload is not valid JSON: {error}")


def decode_message(
    topic: str,
    payload: bytes,
    received_at: datetime,
    limits: Limits = DEFAULT_LIMITS,
) -> list[Reading]:
    """Decode and validate one MQTT message into canonical readings.

    A JSON array is SenML (RFC 8428); a JSON object is civicpulse JSON v1. Raises
    ``RejectedPayload`` with a stable reason code: the message goes to the dead letters whole.
    """
    if len(payload) > limits.max_payload_bytes:
        raise RejectedPayload(
            RejectReason.PAYLOAD_TOO_LARGE,
            f"payload is {len(payload)} bytes (limit {limits.max_payload_bytes})",
        )
    if not payload.strip():
        raise RejectedPayload(RejectReason.EMPTY, "payload is empty")
    address = parse_topic(topic)
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RejectedPayload(
            RejectReason.INVALID_UTF8, f"payload is not UTF-8: {exc.reason} at byte {exc.start}"
        ) from None
    document = _parse_json(text)
    if isinstance(document, list):
        if len(document) > limits.max_readings_per_message:  # fail before resolving them all
            raise RejectedPayload(
                RejectReason.PAYLOAD_TOO_LARGE,
                f"{len(document)} SenML records (limit {limits.max_readings_per_message})",
            )
        readings = senml.decode(document, address, received_at, limits)
    elif isinstance(document, dict):
        batch = document.get("readings")
        if isinstance(batch, list) and len(batch) > limits.max_readings_per_message:
            raise RejectedPayload(
                RejectReason.PAYLOAD_TOO_LARGE,
                f"{len(batch)} readings (limit {limits.max_readings_per_message})",
            )
        readings = civicpulse_json.decode(document, address, received_at, limits)
    else:
        raise RejectedPayload(
            RejectReason.WRONG_TYPE,
            f"payload is {type_name(document)}; expected a SenML array or a civicpulse JSON object",
        )
    if not readings:
        raise RejectedPayload(RejectReason.EMPTY, "payload holds no readings")
    if len(readings) > limits.max_readings_per_message:
        raise RejectedPayload(
            RejectReason.PAYLOAD_TOO_LARGE,
            f"{len(readings)} readings (limit {limits.max_readings_per_message})",
        )
    return readings
