"""Keep dead letters in the database (``dead_letters``), idempotently by source reference."""

from __future__ import annotations

from collections.abc import Sequence

from sensors.deadletter import DeadLetter
from storage.connection import Reconnecting

_INSERT = """
INSERT INTO dead_letters (received_at, stage, reason, detail, mqtt_topic, payload,
                          payload_size, source_ref)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (source_ref) DO NOTHING
"""


class DeadLetterStore:
    """Appends dead letters; ``source_ref`` (e.g. ``kafka:topic:partition:offset``) dedupes."""

    def __init__(self, conninfo: str) -> None:
        self._db = Reconnecting(conninfo)

    def write(self, letters: Sequence[tuple[DeadLetter, str | None]]) -> None:
        """Store ``(letter, source_ref)`` pairs in one transaction."""
        if not letters:
            return
        with self._db.transaction("dead-letter write") as cur:
            cur.executemany(
                _INSERT,
                [
                    (
                        d.received_at,
                        d.stage,
                        d.reason,
                        _text(d.detail),
                        _text(d.mqtt_topic),
                        d.payload,
                        len(d.payload),
                        ref,
                    )
                    for d, ref in letters
                ],
            )

    def close(self) -> None:
        """Close the connection (a later write reconnects)."""
        self._db.close()


def _text(value: str) -> str:
    """PostgreSQL text cannot hold NUL: show it escaped (the raw bytes are in ``payload``)."""
    return value.replace("\x00", "\\x00") if "\x00" in value else value
