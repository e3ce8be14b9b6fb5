"""Decide once what becomes of an MQTT message: canonical readings or one dead letter."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sensors.codecs import decode_message
from sensors.deadletter import DeadLetter
from sensors.errors import RejectedPayload
from sensors.reading import encode_reading
from sensors.validation import Limits


@dataclass(frozen=True, slots=True)
class Routed:
    """Encoded readings keyed by sensor id, or the dead letter explaining the rejection."""

    readings: list[tuple[bytes, bytes]]
    deadletter: DeadLetter | None = None


def route_message(topic: str, payload: bytes, received_at: datetime, limits: Limits) -> Routed:
    """Decode and validate one message; the only place either engine's ingest decides this."""
    try:
        readings = decode_message(topic, payload, received_at, limits)
    except RejectedPayload as exc:
        return Routed([], DeadLetter(exc.reason.value, exc.detail, payload, topic, received_at))
    return Routed([(r.sensor_id.encode(), encode_reading(r)) for r in readings])
