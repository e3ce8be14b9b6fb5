"""Decide once what becomes of an MQTT message: canonical readings and/or one dead letter."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sensors import codecs
from sensors.deadletter import DeadLetter
from sensors.errors import RejectedPayload, RejectReason
from sensors.reading import Reading, encode_reading
from sensors.validation import Limits

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Routed:
    """Encoded readings keyed by sensor id, and the dead letter of what was rejected (if any).

    Both can be set: a batch or pack with some records rejected stores the others.
    """

    readings: list[tuple[bytes, bytes]]
    deadletter: DeadLetter | None = None

    def values(self) -> list[bytes]:
        """The encoded readings, one each."""
        return [value for _key, value in self.readings]


@dataclass(frozen=True, slots=True)
class RoutedReadings:
    """:class:`Routed` for an engine that stores in the same process (embedded): the
    canonical readings themselves, never encoded to bytes and decoded again."""

    readings: list[Reading]
    deadletter: DeadLetter | None = None

    def values(self) -> list[Reading]:
        """The readings, as ``ReadingPipeline.process`` takes them."""
        return self.readings


Authorize = Callable[[str], str | None]
"""Topic → why no message on it is accepted (``unknown_device``, ``device_disabled``) or None."""

_REFUSED = {
    RejectReason.UNKNOWN_DEVICE: "no registered device publishes to this topic",
    RejectReason.DEVICE_DISABLED: "the device that publishes to this topic is disabled",
}


def route_message(
    topic: str | bytes,
    payload: bytes,
    received_at: datetime,
    limits: Limits,
    authorize: Authorize | None = None,
) -> Routed:
    """:func:`route_readings`, with each reading encoded for the ``readings`` topic (keyed by
    its sensor id)."""
    routed = route_readings(topic, payload, received_at, limits, authorize)
    try:
        readings = [(r.sensor_id.encode(), encode_reading(r)) for r in routed.readings]
    except Exception as exc:  # an encoder bug must not lose the message either
        shown = topic if isinstance(topic, str) else topic.decode("utf-8", "backslashreplace")
        log.exception("encoding a reading of a message on %r failed; dead-lettering it", shown)
        detail = f"{type(exc).__name__}: {exc}"[:1000]
        letter = DeadLetter(RejectReason.INTERNAL_ERROR.value, detail, payload, shown, received_at)
        return Routed([], letter)
    return Routed(readings, routed.deadletter)


def route_in_process(
    topic: str | bytes,
    payload: bytes,
    received_at: datetime,
    limits: Limits,
    authorize: Authorize | None = None,
) -> Routed | RoutedReadings:
    """What an engine storing in the same process routes: :func:`route_readings` when every
    reading survives the ``readings``-topic codec unchanged (:func:`canonical`), else
    :func:`route_message` — so the outcome is the one the encoded path gives, without
    encoding and decoding each reading."""
    routed = route_readings(topic, payload, received_at, limits, authorize)
    if all(map(canonical, routed.readings)):
        return routed
    return route_message(topic, payload, received_at, limits, authorize)


def canonical(r: Reading) -> bool:
    """Whether ``decode_reading(encode_reading(r))`` is ``r``: plain strings, a finite float,
    UTC times (what the codecs build). Anything else takes the encoded path."""
    return (
        type(r.value) is float
        and math.isfinite(r.value)
        and r.time.tzinfo is UTC
        and r.received_at.tzinfo is UTC
        and type(r.sensor_id) is str
        and type(r.council) is str
        and type(r.kind) is str
        and type(r.metric) is str
        and type(r.unit) is str
    )


def route_readings(
    topic: str | bytes,
    payload: bytes,
    received_at: datetime,
    limits: Limits,
    authorize: Authorize | None = None,
) -> RoutedReadings:
    """Decode and validate one message; the only place either engine's ingest decides this.

    ``authorize`` (when device authentication is on) is asked first, before any decoding: a
    message on the topic of an unknown or disabled device becomes an ``unknown_device`` /
    ``device_disabled`` dead letter, never readings.

    A batch or pack is taken record by record (docs/ingest.md): its valid readings are
    routed and its rejected records travel in ONE dead letter that keeps the message once
    and names each record's reason and index. A message with a single record that is
    rejected, or one rejected as a whole, is a dead letter without parts, as before.

    ``topic`` may be the raw bytes of the MQTT topic name: one that is not UTF-8 becomes a
    ``bad_topic`` dead letter (its bytes shown escaped), never a silent drop.

    Never raises: a rejected payload becomes a dead letter with its reason, and so does a bug
    in a decoder (``internal_error``, with the raw bytes), so no engine loses the message or
    has it redelivered for ever.
    """
    if isinstance(topic, bytes):
        raw_topic = topic
        try:
            topic = raw_topic.decode("utf-8")
        except UnicodeDecodeError as exc:
            shown = raw_topic.decode("utf-8", "backslashreplace")
            detail = f"topic is not UTF-8: {exc.reason} at byte {exc.start}"
            letter = DeadLetter(RejectReason.BAD_TOPIC.value, detail, payload, shown, received_at)
            return RoutedReadings([], letter)
    try:
        refused = authorize(topic) if authorize is not None else None
        if refused is not None:
            reason = RejectReason(refused)
            detail = _REFUSED.get(reason, reason.value)
            letter = DeadLetter(reason.value, detail, payload, topic, received_at)
            return RoutedReadings([], letter)
        decoded = codecs.decode_records(topic, payload, received_at, limits)
        return RoutedReadings(decoded.readings, _letter(decoded, topic, payload, received_at))
    except RejectedPayload as exc:
        letter = DeadLetter(exc.reason.value, exc.detail, payload, topic, received_at)
        return RoutedReadings([], letter)
    except Exception as exc:  # a decoder bug must not lose the message: dead-letter it
        log.exception("decoder failed on a message on %r; dead-lettering it", topic)
        detail = f"{type(exc).__name__}: {exc}"[:1000]
        letter = DeadLetter(RejectReason.INTERNAL_ERROR.value, detail, payload, topic, received_at)
        return RoutedReadings([], letter)


def _letter(
    decoded: codecs.Decoded, topic: str, payload: bytes, received_at: datetime
) -> DeadLetter | None:
    """The dead letter of a decoded message's rejected records, if it has any."""
    rejected = decoded.rejected
    if not rejected:
        return None
    first = rejected[0]
    if decoded.records == 1:  # the only record: the message is rejected whole, as always
        return DeadLetter(first.reason, first.detail, payload, topic, received_at)
    summary = (
        f"{len(rejected)} of {decoded.records} records rejected"
        f" ({len(decoded.readings)} stored); first: {first.detail}"
    )
    return DeadLetter(
        first.reason,
        summary,
        payload,
        topic,
        received_at,
        parts=tuple(rejected),
        accepted=len(decoded.readings),
    )
