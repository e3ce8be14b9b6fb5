"""Keep dead letters in the database (``dead_letters``), idempotently by source reference."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from sensors.deadletter import DeadLetter
from stream_processors.storage.connection import StoreUnavailable, connect

_INSERT = """
INSERT INTO dead_letters (received_at, stage, reason, detail, mqtt_topic, payload,
                          payload_size, source_ref)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (source_ref) DO NOTHING
"""


class DeadLetterStore:
    """Appends dead letters; ``source_ref`` (e.g. ``kafka:topic:partition:offset``) dedupes."""

    def __init__(self, conninfo: str) -> None:
        self._conninfo = conninfo
        self._conn: psycopg.Connection | None = None

    def write(self, letters: Sequence[tuple[DeadLetter, str | None]]) -> None:
        """Store ``(letter, source_ref)`` pairs in one transaction."""
        if not letters:
            return
        try:
            if self._conn is None or self._conn.closed or self._conn.broken:
                self._conn = connect(self._conninfo)
            with self._conn.transaction(), self._conn.cursor() as cur:
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
        except psycopg.OperationalError as exc:
            self.close()
            raise StoreUnavailable(f"dead-letter write failed: {exc}".splitlines()[0]) from exc

    def close(self) -> None:
        """Close the connection (a later write reconnects)."""
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


def _text(value: str) -> str:
    """PostgreSQL text cannot hold NUL: show it escaped (the raw bytes are in ``payload``)."""
    return value.replace("\x00", "\\x00") if "\x00" in value else value
