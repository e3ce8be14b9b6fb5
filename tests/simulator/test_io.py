"""Simulator I/O helpers that need no broker: recordings, broker URLs and the token bucket."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from simulator import (
    BrokerUrl,
    Fleet,
    RecordedMessage,
    TokenBucket,
    bad_messages,
    read_recording,
    write_recording,
)

START = datetime(2026, 1, 5, tzinfo=UTC)


def test_recording_round_trips_bytes_topics_and_offsets(tmp_path: Path) -> None:
    fleet = Fleet.build(6, seed=3)
    emissions = list(fleet.emissions(50, START, rate=20.0))
    path = tmp_path / "run.jsonl"
    assert write_recording(path, emissions) == 50
    back = list(read_recording(path))
    assert [(m.topic, m.payload, m.t) for m in back] == [
        (e.topic, e.payload, e.t_offset) for e in emissions
    ]
    assert path.read_text().count("\n") == 50


def test_recording_keeps_invalid_bytes_and_paces_bad_messages(tmp_path: Path) -> None:
    bad = list(bad_messages(1, 15, START, []))
    path = tmp_path / "bad.jsonl"
    write_recording(path, bad, default_rate=5.0)
    back = list(read_recording(path))
    assert [m.payload for m in back] == [b.payload for b in bad]
    assert [m.t for m in back] == [i / 5.0 for i in range(15)]
    again = tmp_path / "again.jsonl"
    write_recording(again, back)
    assert again.read_bytes() == path.read_bytes()


def test_corrupt_recording_line_is_named(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"topic":"a/b","payload_b64":"AA==","t":0}\n{"topic":"a/b"}\n')
    reader = read_recording(path)
    assert next(reader) == RecordedMessage("a/b", b"\x00", 0.0)
    with pytest.raises(ValueError, match=r"x\.jsonl:2"):
        next(reader)


def test_broker_urls() -> None:
    assert BrokerUrl.parse("mqtt://localhost") == BrokerUrl("localhost", 1883)
    assert BrokerUrl.parse("mqtt://127.0.0.1:18830") == BrokerUrl("127.0.0.1", 18830)
    assert BrokerUrl.parse("mqtt://sim:p%40ss@broker:1884") == BrokerUrl(
        "broker", 1884, "sim", "p@ss"
    )
    assert BrokerUrl.parse("mqtts://b").port == 8883
    with pytest.raises(ValueError):
        BrokerUrl.parse("http://broker:1883")


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_token_bucket_paces_without_drift() -> None:
    c = FakeClock()
    bucket = TokenBucket(50.0, burst=1, clock=c.clock, sleep=c.sleep, min_sleep=0.0)
    for _ in range(1001):
        bucket.acquire()
        c.now += 0.001  # work per message; must not accumulate into the schedule
    assert c.now == pytest.approx(100.0 + 1000 / 50 + 0.001)


def test_token_bucket_burst_and_slow_producer() -> None:
    c = FakeClock()
    bucket = TokenBucket(100.0, burst=10, clock=c.clock, sleep=c.sleep)
    for _ in range(10):
        bucket.acquire()
    assert c.sleeps == []
    c.now += 5.0  # a slow producer never sleeps while behind schedule
    for _ in range(400):
        bucket.acquire()
    assert c.sleeps == []
