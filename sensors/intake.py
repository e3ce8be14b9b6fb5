"""Decide once what becomes of an MQTT message: canonical readings or one dead letter."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sensors import codecs
from sensors.deadletter import DeadLetter
from sensors.errors import RejectedPayload, RejectReason
from sensors.reading import encode_reading
from sensors.validation import Limits

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Routed:
    """Encoded readings keyed by sensor id, or the dead letter explaining the rejection."""

    readings: list[tuple[bytes, bytes]]
    deadletter: DeadLetter | None = None


Authorize = Callable[[str], str | None]
"""Topic → why no message on it is accepted (``unknown_device``, ``device_disabled``) or None."""

_REFUSED = {
    RejectReason.UNKNOWN_DEVICE: "no registered device publishes to this topic",
    RejectReason.DEVICE_DISABLED: "the device that publishes to this topic is disabled",
}


def route_message(
    topic: str,
    payload: bytes,
    received_at: datetime,
    limits: Limits,
    authorize: Authorize | None = None,
) -> Routed:
    """Decode and validate one message; the only place either engine's ingest decides this.

    ``authorize`` (when device authentication is on) is asked first, before any decoding: a
    message on the topic of an unknown or disabled device becomes an ``unknown_device`` /
    ``device_disabled`` dead letter, never readings.

    Never raises: a rejected payload becomes a dead letter with its reason, and so does a bug
    in a decoder (``internal_error``, with the raw bytes), so no engine loses the message or
    has it redelivered for ever.
    """
    try:
        refused = authorize(topic) if authorize is not None else None
        if refused is not None:
            reason = RejectReason(refused)
            detail = _REFUSED.get(reason, reason.value)
            return Routed([], DeadLetter(reason.value, detail, payload, topic, received_at))
        readings = codecs.decode_message(topic, payload, received_at, limits)
        return Routed([(r.sensor_id.encode(), encode_reading(r)) for r in readings])
    except RejectedPayload as exc:
        return Routed([], DeadLetter(exc.reason.value, exc.detail, payload, topic, received_at))
    except Exception as exc:  # a decoder bug must not lose the message: dead-letter it
        log.exception("decoder failed on a message on %r; dead-lettering it", topic)
        detail = f"{type(exc).__name__}: {exc}"[:1000]
        letter = DeadLetter(RejectReason.INTERNAL_ERROR.value, detail, payload, topic, received_at)
        return Routed([], letter)
