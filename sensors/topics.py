"""The MQTT topic scheme ``civicpulse/{council}/{kind}/{sensor_id}``: parse and build."""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from typing import Final

from sensors.catalogue import KINDS
from sensors.errors import RejectedPayload, RejectReason

TOPIC_PREFIX: Final = "civicpulse"
# The bridge takes everything under the prefix, so a malformed topic (too few or too many
# levels) is dead-lettered as bad_topic instead of being silently never received.
SUBSCRIPTION_FILTER: Final = f"{TOPIC_PREFIX}/#"

COUNCIL_PATTERN: Final = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
KIND_PATTERN: Final = COUNCIL_PATTERN
SENSOR_ID_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}")

_SHOWN_CHARS: Final = 120


@dataclass(frozen=True, slots=True)
class SensorAddress:
    """Where a message came from: the council, the kind of sensor and the sensor's id."""

    council: str
    kind: str
    sensor_id: str


def _shown(text: str) -> str:
    """``text`` as a one-line repr, cut short so a hostile topic cannot flood a log line."""
    if len(text) > _SHOWN_CHARS:
        return repr(text[:_SHOWN_CHARS]) + f"... ({len(text)} chars)"
    return repr(text)


def parse_topic(topic: str) -> SensorAddress:
    """Parse a concrete topic; raise ``RejectedPayload`` (bad_topic, unknown_kind) otherwise."""
    parts = topic.split("/")
    expected = f"{TOPIC_PREFIX}/{{council}}/{{kind}}/{{sensor_id}}"
    if len(parts) != 4 or parts[0] != TOPIC_PREFIX:
        raise RejectedPayload(
            RejectReason.BAD_TOPIC, f"topic {_shown(topic)} does not have the shape {expected}"
        )
    _, council, kind, sensor_id = parts
    if COUNCIL_PATTERN.fullmatch(council) is None:
        raise RejectedPayload(
            RejectReason.BAD_TOPIC,
            f"council {_shown(council)} in topic {_shown(topic)} must match "
            f"{COUNCIL_PATTERN.pattern}",
        )
    if KIND_PATTERN.fullmatch(kind) is None:
        raise RejectedPayload(
            RejectReason.BAD_TOPIC,
            f"kind {_shown(kind)} in topic {_shown(topic)} must match {KIND_PATTERN.pattern}",
        )
    if SENSOR_ID_PATTERN.fullmatch(sensor_id) is None:
        raise RejectedPayload(
            RejectReason.BAD_TOPIC,
            f"sensor id {_shown(sensor_id)} in topic {_shown(topic)} must match "
            f"{SENSOR_ID_PATTERN.pattern}",
        )
    if kind not in KINDS:
        raise RejectedPayload(
            RejectReason.UNKNOWN_KIND,
            f"kind {kind!r} is not in the catalogue (known: {', '.join(sorted(KINDS))})",
        )
    return SensorAddress(council, kind, sensor_id)


def topic_for(address: SensorAddress) -> str:
    """The topic a sensor publishes on; ``ValueError`` if a part would not parse back."""
    topic = f"{TOPIC_PREFIX}/{address.council}/{address.kind}/{address.sensor_id}"
    try:
        parse_topic(topic)  # a '/' inside a part shows up here as the wrong number of segments
    except RejectedPayload as exc:
        raise ValueError(f"cannot build a topic for {address!r}: {exc.detail}") from exc
    return topic


def parse_partition(text: str) -> tuple[int, int] | None:
    """``"i/N"`` → ``(i, N)``, a subscriber's static share of the sensor topics; ``""`` → None.

    ``ValueError`` (saying what is expected) unless ``N >= 1`` and ``0 <= i < N``.
    """
    if not text.strip():
        return None
    index, sep, count = text.strip().partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        i, n = -1, 0
    if not sep or n < 1 or not 0 <= i < n:
        raise ValueError(f"partition {text!r} is not 'i/N' with 0 <= i < N (e.g. '0/2', '1/2')")
    return i, n


def owns_topic(raw_topic: bytes, partition: tuple[int, int]) -> bool:
    """Whether partition ``(i, N)`` handles ``raw_topic``: CRC-32 of the topic's bytes mod N.

    Stable across processes and restarts (unlike ``hash``), so every topic, well-formed or
    not, has exactly one owner, and one sensor's messages always reach the same subscriber.
    """
    index, count = partition
    return zlib.crc32(raw_topic) % count == index
