"""Webhook delivery against a real HTTP server: retries with backoff, then a dead letter."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import psycopg
import pytest

from civicpulse.cli.alerts import post_json
from sensors.reading import Reading, encode_reading
from storage import ReadingStore, migrate
from storage.alerts_store import deliver_due
from stream_processors.pipeline import ReadingPipeline

T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


class Receiver(BaseHTTPRequestHandler):
    fail_first = 0
    received: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        cls = type(self)
        if cls.fail_first > 0:
            cls.fail_first -= 1
            self.send_response(503)
        else:
            cls.received.append(body)
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    Receiver.received, Receiver.fail_first = [], 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def fill(i: int, value: float) -> bytes:
    t = T0 + timedelta(minutes=15 * i)
    return encode_reading(
        Reading(
            sensor_id="bin-1",
            council="aberdeen",
            kind="waste_bin",
            metric="fill_level",
            value=value,
            unit="%",
            time=t,
            received_at=t,
        )
    )


@pytest.mark.integration
def test_notifications_are_queued_with_the_alert_and_retried_until_delivered(
    fresh_db: str, webhook: str
) -> None:
    migrate(fresh_db)
    pipeline = ReadingPipeline(ReadingStore(fresh_db))
    pipeline.process([fill(i, v) for i, v in enumerate([85, 90, 95, 20])])  # open, 2 repeats, clear
    pipeline.process([fill(4, 86)])  # back within the reopen window: a flap, same alert
    Receiver.fail_first = 2
    post = post_json(webhook)
    now = datetime.now(UTC) + timedelta(seconds=1)  # queued rows are due from the wall clock
    with psycopg.connect(fresh_db) as conn:
        assert deliver_due(conn, post, now) == (0, 1, 0)  # first try fails, retried later
        assert deliver_due(conn, post, now) == (0, 0, 0)  # not due yet (backoff)
        assert deliver_due(conn, post, now + timedelta(seconds=10)) == (0, 1, 0)
        assert deliver_due(conn, post, now + timedelta(seconds=30)) == (3, 0, 0)
        assert deliver_due(conn, post, now + timedelta(hours=1)) == (0, 0, 0)
    assert [(b["event"], b["rule"], b["count"]) for b in Receiver.received] == [
        ("opened", "bin_collection_needed", 1),  # as it was when it opened
        ("resolved", "bin_collection_needed", 3),
        ("reopened", "bin_collection_needed", 4),
    ]  # repeats stay quiet


@pytest.mark.integration
def test_a_webhook_that_keeps_failing_dead_letters_the_notification(
    fresh_db: str, webhook: str
) -> None:
    migrate(fresh_db)
    ReadingPipeline(ReadingStore(fresh_db)).process([fill(0, 99)])
    Receiver.fail_first = 100
    post = post_json(webhook)
    now = datetime.now(UTC) + timedelta(seconds=1)
    with psycopg.connect(fresh_db) as conn:
        outcomes = [
            deliver_due(conn, post, now + timedelta(hours=h), max_attempts=3) for h in range(4)
        ]
        assert outcomes == [(0, 1, 0), (0, 1, 0), (0, 0, 1), (0, 0, 0)]
        row = conn.execute(
            "SELECT attempts, dead_at IS NOT NULL, last_error FROM alert_notifications"
        ).fetchone()
    assert row[0] == 3 and row[1] and "503" in row[2]
    assert Receiver.received == []
