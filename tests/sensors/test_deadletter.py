"""Dead-letter records: headers round-trip, oversize payloads cut but identified."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from sensors.deadletter import DeadLetter

WHEN = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def test_headers_round_trip_through_kafka_form() -> None:
    letter = DeadLetter("malformed_json", "line 1 column 5", b"{oops", "civicpulse/a/b/c", WHEN)
    value, headers = letter.to_kafka(1024)
    assert value == b"{oops"
    back = DeadLetter.from_kafka(value, headers)
    assert back == letter
    assert dict(headers)["payload_sha256"] == hashlib.sha256(b"{oops").hexdigest().encode()


def test_an_oversize_payload_is_cut_and_still_identified() -> None:
    payload = bytes(range(256)) * 40  # 10,240 bytes
    letter = DeadLetter("payload_too_large", "10240 bytes", payload, "civicpulse/a/b/c", WHEN)
    value, headers = letter.to_kafka(4096)
    h = dict(headers)
    assert value == payload[:4096]
    assert h["payload_truncated"] == b"true"
    assert h["payload_size"] == b"10240"
    assert h["payload_sha256"] == hashlib.sha256(payload).hexdigest().encode()
