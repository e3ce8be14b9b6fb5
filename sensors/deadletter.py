"""The dead-letter record: a rejected message's raw bytes with why, where from and when."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

DEADLETTER_SCHEMA = "civicpulse.deadletter.v1"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """What the dead-letter topic holds for each rejected message.

    On Kafka the record value is ``payload`` byte for byte; everything else travels in
    headers (``reason``, ``detail``, ``mqtt_topic``, ``received_at``, ``stage``, ``schema``,
    ``payload_size``, ``payload_sha256``) and the key is the MQTT topic. A payload larger
    than the dead-letter topic can hold is cut to its first bytes and says so
    (``payload_truncated: true``); its size and SHA-256 still identify the original.
    """

    reason: str
    detail: str
    payload: bytes
    mqtt_topic: str
    received_at: datetime
    stage: str = "ingest"

    def to_kafka(self, max_value_bytes: int) -> tuple[bytes, list[tuple[str, bytes]]]:
        """The Kafka record value and headers, the value cut to ``max_value_bytes``."""
        headers = self.headers()
        value = self.payload
        if len(value) > max_value_bytes:
            value = value[:max_value_bytes]
            headers.append(("payload_truncated", b"true"))
        return value, headers

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers for this dead letter."""
        return [
            ("payload_size", str(len(self.payload)).encode()),
            ("payload_sha256", hashlib.sha256(self.payload).hexdigest().encode()),
            ("schema", DEADLETTER_SCHEMA.encode()),
            ("reason", self.reason.encode()),
            ("detail", self.detail.encode("utf-8", "replace")[:4096]),
            ("mqtt_topic", self.mqtt_topic.encode("utf-8", "replace")),
            ("received_at", self.received_at.isoformat().encode()),
            ("stage", self.stage.encode()),
        ]

    @classmethod
    def from_kafka(cls, value: bytes | None, headers: list[tuple[str, bytes]]) -> DeadLetter:
        """Rebuild a dead letter from a Kafka record's value and headers."""
        h = {k: v.decode("utf-8", "replace") for k, v in headers}
        return cls(
            reason=h.get("reason", "unknown"),
            detail=h.get("detail", ""),
            payload=value or b"",
            mqtt_topic=h.get("mqtt_topic", ""),
            received_at=datetime.fromisoformat(h["received_at"]),
            stage=h.get("stage", "ingest"),
        )
