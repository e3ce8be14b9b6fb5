"""Keep dead letters in the database (``dead_letters``), idempotently by source reference."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import psycopg

from sensors.deadletter import DeadLetter
from storage.connection import Reconnecting

_INSERT = """
INSERT INTO dead_letters (received_at, stage, reason, detail, mqtt_topic, payload,
                          payload_size, source_ref, payload_sha256, payload_truncated,
                          message_id, part_index)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (source_ref) DO NOTHING
"""
_MESSAGE = """
INSERT INTO dead_letter_messages (received_at, stage, mqtt_topic, payload, payload_size,
                                  payload_sha256, readings_accepted, records_rejected,
                                  source_ref)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (source_ref) DO NOTHING
RETURNING id
"""


class DeadLetterStore:
    """Appends dead letters; ``source_ref`` (e.g. ``kafka:topic:partition:offset``) dedupes.

    A letter without parts is one ``dead_letters`` row. A letter with parts (records of a
    batch or pack rejected alone) keeps its message once in ``dead_letter_messages`` and
    writes one ``dead_letters`` row per rejected record, referencing it (sql/050).
    """

    def __init__(self, conninfo: str) -> None:
        self._db = Reconnecting(conninfo)

    def write(self, letters: Sequence[tuple[DeadLetter, str | None]]) -> None:
        """Store ``(letter, source_ref)`` pairs in one transaction."""
        if not letters:
            return
        with self._db.transaction("dead-letter write") as cur:
            write_letters(cur, letters)

    def close(self) -> None:
        """Close the connection (a later write reconnects)."""
        self._db.close()


def write_letters(
    cur: psycopg.Cursor[Any], letters: Sequence[tuple[DeadLetter, str | None]]
) -> None:
    """Insert dead letters in the caller's transaction (see :class:`DeadLetterStore`)."""
    rows = [_row(d, ref) for d, ref in letters if not d.parts]
    for d, ref in letters:
        if d.parts:
            rows += _message_rows(cur, d, ref)
    if rows:
        cur.executemany(_INSERT, rows)


def _row(d: DeadLetter, ref: str | None) -> tuple[object, ...]:
    return (
        d.received_at,
        d.stage,
        d.reason,
        _text(d.detail),
        _text(d.mqtt_topic),
        d.payload,
        d.payload_size,
        ref,
        d.payload_sha256,
        d.truncated,
        None,
        None,
    )


def _message_rows(
    cur: psycopg.Cursor[Any], d: DeadLetter, ref: str | None
) -> list[tuple[object, ...]]:
    """Insert the message once; the rows of its rejected records (none if already stored)."""
    cur.execute(
        _MESSAGE,
        (
            d.received_at,
            d.stage,
            _text(d.mqtt_topic),
            d.payload,
            d.payload_size,
            d.payload_sha256,
            d.accepted,
            len(d.parts),
            ref,
        ),
    )
    row = cur.fetchone()
    if row is None:
        return []  # a replay of a message already kept: its records are there too
    message_id = int(row[0])
    return [
        (
            d.received_at,
            d.stage,
            p.reason,
            _text(p.detail),
            _text(d.mqtt_topic),
            p.record,
            len(p.record),
            None if ref is None else f"{ref}#{p.index}",
            hashlib.sha256(p.record).hexdigest(),
            False,
            message_id,
            p.index,
        )
        for p in d.parts
    ]


def _text(value: str) -> str:
    """PostgreSQL text cannot hold NUL: show it escaped (the raw bytes are in ``payload``)."""
    return value.replace("\x00", "\\x00") if "\x00" in value else value
