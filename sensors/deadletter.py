"""The dead-letter record: a rejected message's bytes (a bounded prefix) with why, where, when."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import orjson

from sensors.errors import RejectedRecord

DEADLETTER_SCHEMA = "civicpulse.deadletter.v1"
KEEP_BYTES: Final = 4096
"""A dead letter keeps at most this many bytes of a payload (and of each rejected record);
the original's length and SHA-256 still identify it."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """What the dead-letter topic holds for each message with something rejected.

    A whole-message rejection has no ``parts``. A message whose batch or pack had some records
    rejected (docs/ingest.md) has one ``parts`` entry per rejected record, each with its own
    reason, detail and index, and ``accepted`` readings stored; ``reason``/``detail`` then
    sum it up (the first rejected record's reason). The message itself is kept once.

    ``payload`` is cut to :data:`KEEP_BYTES` on construction; ``payload_size`` and
    ``payload_sha256`` describe the original. On Kafka the record value is ``payload``;
    everything else travels in headers (``reason``, ``detail``, ``mqtt_topic``,
    ``received_at``, ``stage``, ``schema``, ``payload_size``, ``payload_sha256``, and
    ``payload_truncated``, ``parts``, ``readings_accepted`` when they apply); the key is the
    MQTT topic.
    """

    reason: str
    detail: str
    payload: bytes
    mqtt_topic: str
    received_at: datetime
    stage: str = "ingest"
    parts: tuple[RejectedRecord, ...] = ()
    accepted: int = 0
    payload_size: int = -1  # -1: len(payload) as given
    payload_sha256: str = ""  # "": SHA-256 of payload as given

    def __post_init__(self) -> None:
        if self.payload_size < 0:
            object.__setattr__(self, "payload_size", len(self.payload))
        if not self.payload_sha256:
            object.__setattr__(self, "payload_sha256", hashlib.sha256(self.payload).hexdigest())
        if len(self.payload) > KEEP_BYTES:
            object.__setattr__(self, "payload", self.payload[:KEEP_BYTES])
        if any(len(p.record) > KEEP_BYTES for p in self.parts):
            cut = tuple(
                RejectedRecord(p.index, p.reason, p.detail, p.record[:KEEP_BYTES])
                for p in self.parts
            )
            object.__setattr__(self, "parts", cut)

    @property
    def truncated(self) -> bool:
        """Whether ``payload`` is only the first bytes of the original."""
        return len(self.payload) < self.payload_size

    def to_kafka(self, max_value_bytes: int = KEEP_BYTES) -> tuple[bytes, list[tuple[str, bytes]]]:
        """The Kafka record value and headers, the value cut to ``max_value_bytes``."""
        headers = self.headers()
        value = self.payload
        if len(value) > max_value_bytes:
            value = value[:max_value_bytes]
        if len(value) < self.payload_size:
            headers.append(("payload_truncated", b"true"))
        return value, headers

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers for this dead letter."""
        headers = [
            ("payload_size", str(self.payload_size).encode()),
            ("payload_sha256", self.payload_sha256.encode()),
            ("schema", DEADLETTER_SCHEMA.encode()),
            ("reason", self.reason.encode()),
            ("detail", self.detail.encode("utf-8", "replace")[:4096]),
            ("mqtt_topic", self.mqtt_topic.encode("utf-8", "replace")),
            ("received_at", self.received_at.isoformat().encode()),
            ("stage", self.stage.encode()),
        ]
        if self.parts:
            parts = [
                {
                    "index": p.index,
                    "reason": p.reason,
                    "detail": p.detail[:1000],
                    "record": p.record.decode("utf-8", "replace"),
                }
                for p in self.parts
            ]
            headers.append(("parts", orjson.dumps(parts)))
            headers.append(("readings_accepted", str(self.accepted).encode()))
        return headers

    @classmethod
    def from_kafka(cls, value: bytes | None, headers: list[tuple[str, bytes]]) -> DeadLetter:
        """Rebuild a dead letter from a Kafka record's value and headers."""
        raw = dict(headers)
        h = {k: v.decode("utf-8", "replace") for k, v in headers}
        parts = tuple(
            RejectedRecord(
                int(p["index"]), str(p["reason"]), str(p["detail"]), p["record"].encode()
            )
            for p in (orjson.loads(raw["parts"]) if "parts" in raw else [])
        )
        payload = value or b""
        return cls(
            reason=h.get("reason", "unknown"),
            detail=h.get("detail", ""),
            payload=payload,
            mqtt_topic=h.get("mqtt_topic", ""),
            received_at=datetime.fromisoformat(h["received_at"]),
            stage=h.get("stage", "ingest"),
            parts=parts,
            accepted=int(h.get("readings_accepted", "0")),
            payload_size=int(h.get("payload_size", len(payload))),
            payload_sha256=h.get("payload_sha256", ""),
        )


def deadletter_ref(letter: DeadLetter) -> str:
    """Source reference of a dead letter: a redelivered message (same topic and bytes) dedupes.

    Built from the SHA-256 of the whole original payload (the letter keeps only a prefix).
    """
    topic = letter.mqtt_topic.encode("utf-8", "replace")
    digest = hashlib.sha256(topic + b"\0" + letter.payload_sha256.encode())
    return f"mqtt:{digest.hexdigest()}"
