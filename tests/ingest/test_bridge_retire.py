"""Scaling bridges down: a stopped bridge's session strands its share until it is retired."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from sensors.reading import decode_record
from simulator import Fleet, publish
from tests.processes import CivicProcess, civic_env, running, wait_until

pytestmark = pytest.mark.integration


def _readings(bootstrap: str, topic: str) -> int:
    """Readings in the topic: its records hold one reading or a pack of them."""
    consumer = KafkaConsumer(bootstrap_servers=[bootstrap], consumer_timeout_ms=3000)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not parts:
            return 0
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        n = 0
        while any(consumer.position(p) < ends[p] for p in parts):
            for records in consumer.poll(timeout_ms=1000).values():
                n += sum(len(decode_record(r.value)) for r in records)
        return n
    finally:
        consumer.close()


def test_retiring_a_dead_bridge_drains_its_stranded_share(
    mqtt_url: str, kafka_bootstrap: str, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    topic = f"retire.{run}.readings"
    base = dict(
        mqtt_url=mqtt_url,
        kafka_bootstrap=kafka_bootstrap,
        readings_topic=topic,
        deadletter_topic=f"retire.{run}.dead",
        mqtt_share_group=f"g{run}",
        kafka_partitions="2",
    )
    a = CivicProcess(["ingest"], civic_env(**base, mqtt_client_id=f"a-{run}"), tmp_path / "a.log")
    b = CivicProcess(["ingest"], civic_env(**base, mqtt_client_id=f"b-{run}"), tmp_path / "b.log")
    fleet = Fleet.build(50, seed=3)
    messages = list(fleet.emissions(300, datetime.now(UTC) - timedelta(minutes=1), rate=300))
    expected = sum(len(m.samples) for m in messages)

    with running(a, b):
        a.wait_for_log("subscribed to", timeout=60)
        b.wait_for_log("subscribed to", timeout=60)
        a.kill9()  # its persistent session stays in the shared group
        publish(messages, mqtt_url, rate=300, client_id=f"p-{run}")
        time.sleep(3.0)
        stranded = expected - _readings(kafka_bootstrap, topic)
        assert stranded > 0, "the broker routed nothing to the dead bridge's session"

        retire = subprocess.run(
            [sys.executable, "-m", "civicpulse.cli", "ingest", "--retire"],
            env=civic_env(**base, mqtt_client_id=f"a-{run}"),
            capture_output=True,
            timeout=120,
            check=False,
        )
        assert retire.returncode == 0, retire.stderr.decode()[-2000:]
        assert "retired" in retire.stderr.decode()
        assert wait_until(lambda: _readings(kafka_bootstrap, topic) >= expected, timeout=30)
        assert _readings(kafka_bootstrap, topic) == expected
