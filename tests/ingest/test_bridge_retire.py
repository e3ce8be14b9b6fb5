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

from simulator import Fleet, publish
from tests.processes import CivicProcess, civic_env, running, wait_until

pytestmark = pytest.mark.integration


def _records(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=[bootstrap])
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(consumer.end_offsets(parts).values()) if parts else 0
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
    expected = len(messages)  # Kafka records: one per message, its readings packed

    with running(a, b):
        a.wait_for_log("subscribed to", timeout=60)
        b.wait_for_log("subscribed to", timeout=60)
        a.kill9()  # its persistent session stays in the shared group
        publish(messages, mqtt_url, rate=300, client_id=f"p-{run}")
        time.sleep(3.0)
        stranded = expected - _records(kafka_bootstrap, topic)
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
        assert wait_until(lambda: _records(kafka_bootstrap, topic) >= expected, timeout=30)
        assert _records(kafka_bootstrap, topic) == expected
