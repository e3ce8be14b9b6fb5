"""Payload codecs and the one entry point that turns an MQTT message into canonical readings."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime

import orjson

from sensors.codecs import civicpulse_json, senml
from sensors.errors import RejectedPayload, RejectedRecord, RejectReason
from sensors.reading import Reading
from sensors.topics import SUBSCRIPTION_FILTER, SensorAddress, parse_topic, topic_for
from sensors.validation import DEFAULT_LIMITS, Limits, type_name

__all__ = [
    "DEFAULT_LIMITS",
    "SUBSCRIPTION_FILTER",
    "Decoded",
    "Limits",
    "Reading",
    "RejectReason",
    "RejectedPayload",
    "SensorAddress",
    "civicpulse_json",
    "decode_message",
    "decode_records",
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


@dataclass(frozen=True, slots=True)
class Decoded:
    """A message decoded record by record: its readings, and the records rejected alone.

    ``records`` is how many records the message held (a single-reading message holds one).
    """

    readings: list[Reading]
    rejected: list[RejectedRecord] = field(default_factory=list)
    records: int = 1


def decode_message(
    topic: str,
    payload: bytes,
    received_at: datetime,
    limits: Limits = DEFAULT_LIMITS,
) -> list[Reading]:
    """Decode and validate one MQTT message into canonical readings, all or nothing.

    Raises ``RejectedPayload`` with a stable reason code, for the first record rejected if
    any is; ingest uses :func:`decode_records`, which keeps the good records of a message.
    """
    decoded = decode_records(topic, payload, received_at, limits)
    if decoded.rejected:
        first = decoded.rejected[0]
        raise RejectedPayload(RejectReason(first.reason), first.detail)
    return decoded.readings


def decode_records(
    topic: str,
    payload: bytes,
    received_at: datetime,
    limits: Limits = DEFAULT_LIMITS,
) -> Decoded:
    """Decode and validate one MQTT message record by record (docs/ingest.md).

    A JSON array is SenML (RFC 8428); a JSON object is civicpulse JSON v1. What spoils the
    whole message (size, topic, UTF-8, JSON, the pack's or batch's own fields, no records at
    all) raises ``RejectedPayload``; a bad record of a batch or pack is returned in
    ``rejected`` with its index, and the other records are decoded.
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
        _check_count(len(document), "SenML records", limits)  # before resolving them all
        readings, rejected = senml.decode_each(document, address, received_at, limits)
        records = len(document)
    elif isinstance(document, dict):
        batch = document.get("readings")
        if isinstance(batch, list):
            _check_count(len(batch), "readings", limits)
        readings, rejected = civicpulse_json.decode_each(document, address, received_at, limits)
        records = len(batch) if isinstance(batch, list) and "metric" not in document else 1
    else:
        raise RejectedPayload(
            RejectReason.WRONG_TYPE,
            f"payload is {type_name(document)}; expected a SenML array or a civicpulse JSON object",
        )
    if not readings and not rejected:
        raise RejectedPayload(RejectReason.EMPTY, "payload holds no readings")
    _check_count(len(readings), "readings", limits)
    return Decoded(readings, rejected, records)


def _check_count(n: int, what: str, limits: Limits) -> None:
    if n > limits.max_readings_per_message:
        raise RejectedPayload(
            RejectReason.PAYLOAD_TOO_LARGE, f"{n} {what} (limit {limits.max_readings_per_message})"
        )
