"""Partial acceptance on the embedded engine: one bad reading no longer loses the others.

The embedded engine (its amqtt broker and group commit, on a test PostgreSQL) gets, over
MQTT QoS 1, a JSON object with NO2, PM10, O3 and an impossible PM2.5, a JSON batch spanning
three times with a reading of an unknown metric, and a SenML pack with a negative NO2; once
``mosquitto_pub`` returns (PUBACK) the good readings AND the dead letters must be stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import psycopg
import pytest

from embedded.engine import EmbeddedConfig, EmbeddedEngine
from sensors.validation import DEFAULT_LIMITS
from tests.embedded.test_embedded import free_port

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Sent:
    """One message and what must come of it."""

    topic: str
    payload: bytes
    stored: list[tuple[str, str, float, datetime]]  # sensor, metric, canonical value, time
    rejected: list[tuple[int, str]]  # (index, reason) of each bad record


def messages(council: str) -> list[Sent]:
    """A JSON object, a JSON batch and a SenML pack, each with good and bad records."""
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    t1, t2 = now - timedelta(minutes=10), now - timedelta(minutes=5)
    obj = {"v": 1, "sensor_id": "aq-obj", "time": now.isoformat(), "readings": [
        {"metric": "no2", "value": 41.5, "unit": "ug/m3"},
        {"metric": "pm10", "value": 18.25},
        {"metric": "o3", "value": 55.0},
        {"metric": "pm2_5", "value": 2500.0, "unit": "ug/m3"}]}  # fmt: skip
    batch = {"v": 1, "sensor_id": "aq-batch", "readings": [
        {"time": t1.isoformat(), "metric": "pm10", "value": 12.0},
        {"time": t2.isoformat(), "metric": "pm10", "value": 13.5},
        {"time": t2.isoformat(), "metric": "radon", "value": 3.0},
        {"time": now.isoformat(), "metric": "pm10", "value": 14.75}]}  # fmt: skip
    pack = [
        {"bn": "urn:dev:civicpulse:aq-senml:", "bt": now.timestamp(), "bver": 26,
         "n": "no2", "u": "ug/m3", "v": -40.0},
        {"n": "pm10", "u": "ug/m3", "v": 9.5, "t": -60},
        {"n": "pm2_5", "u": "ug/m3", "v": 4.25, "t": -60}]  # fmt: skip
    air = f"civicpulse/{council}/air_quality"
    return [
        Sent(
            f"{air}/aq-obj",
            orjson.dumps(obj),
            [
                ("aq-obj", "no2", 41.5, now),
                ("aq-obj", "o3", 55.0, now),
                ("aq-obj", "pm10", 18.25, now),
            ],
            [(3, "out_of_range")],
        ),
        Sent(
            f"{air}/aq-batch",
            orjson.dumps(batch),
            [
                ("aq-batch", "pm10", 12.0, t1),
                ("aq-batch", "pm10", 13.5, t2),
                ("aq-batch", "pm10", 14.75, now),
            ],
            [(2, "unknown_metric")],
        ),
        Sent(
            f"{air}/aq-senml",
            orjson.dumps(pack),
            [
                ("aq-senml", "pm10", 9.5, now - timedelta(seconds=60)),
                ("aq-senml", "pm2_5", 4.25, now - timedelta(seconds=60)),
            ],
            [(0, "out_of_range")],
        ),
    ]


def publish(port: int, sent: Sent) -> None:
    """mosquitto_pub at QoS 1: returns once the broker acknowledged (PUBACK) the message."""
    subprocess.run(
        ["mosquitto_pub", "-p", str(port), "-q", "1", "-t", sent.topic, "-s"],
        input=sent.payload,
        check=True,
        timeout=30,
    )


def readings(url: str, council: str) -> list[tuple[object, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT sensor_id, metric, value, time FROM readings WHERE council = %s"
            " ORDER BY sensor_id, metric, time",
            (council,),
        ).fetchall()


def letters(url: str, council: str) -> list[tuple[object, ...]]:
    """Each rejected record with its message (kept once) joined in."""
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT d.mqtt_topic, d.part_index, d.reason, d.payload, m.payload,"
            "       m.payload_size, m.payload_sha256, m.readings_accepted, m.records_rejected"
            "  FROM dead_letters d JOIN dead_letter_messages m ON m.id = d.message_id"
            " WHERE split_part(d.mqtt_topic, '/', 2) = %s ORDER BY d.mqtt_topic, d.part_index",
            (council,),
        ).fetchall()


def expected_letters(sent: list[Sent]) -> list[tuple[object, ...]]:
    rows = []
    for s in sent:
        records = orjson.loads(s.payload)
        items = records["readings"] if isinstance(records, dict) else records
        for index, reason in s.rejected:
            rows.append(
                (
                    s.topic,
                    index,
                    reason,
                    orjson.dumps(items[index]),
                    s.payload,
                    len(s.payload),
                    hashlib.sha256(s.payload).hexdigest(),
                    len(s.stored),
                    len(s.rejected),
                )
            )
    return sorted(rows, key=lambda r: (str(r[0]), int(r[1])))  # type: ignore[call-overload]


def check(url: str, council: str, sent: list[Sent], wait: Callable[[], None]) -> None:
    """Readings equal the good values sent; one dead letter per bad record, message once."""
    wait()
    want = sorted(r for s in sent for r in s.stored)
    assert readings(url, council) == want
    assert letters(url, council) == expected_letters(sent)
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM dead_letter_messages WHERE mqtt_topic LIKE %s",
            (f"civicpulse/{council}/%",),
        ).fetchone()
    assert row == (len(sent),)  # the message kept once, not once per rejected record


@contextmanager
def embedded_engine(database_url: str, data_dir: Path) -> Iterator[EmbeddedEngine]:
    """The embedded engine (real amqtt broker, group commit) on a free port, in a thread."""
    config = EmbeddedConfig(
        mqtt_host="127.0.0.1",
        mqtt_port=free_port(),
        data_dir=data_dir,
        limits=DEFAULT_LIMITS,
        database_url=database_url,
    )
    engine = EmbeddedEngine(config)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(engine.start(), loop).result(timeout=60)
    try:
        yield engine
    finally:
        asyncio.run_coroutine_threadsafe(engine.stop(), loop).result(timeout=60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()


def test_embedded_engine_stores_the_good_readings_of_a_partly_bad_message(
    fresh_db: str, tmp_path: Path
) -> None:
    sent = messages("partial")
    with embedded_engine(fresh_db, tmp_path) as engine:
        for s in sent:
            publish(engine.config.mqtt_port, s)
            publish(engine.config.mqtt_port, s)  # a redelivery stores nothing twice
        # no waiting: each PUBACK came after its readings and dead letters were committed
        check(fresh_db, "partial", sent, lambda: None)
