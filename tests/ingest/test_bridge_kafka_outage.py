"""A Kafka crash mid-stream: the bridge keeps running and every reading still reaches Kafka.

The bridge acks an MQTT message only after Kafka acked all its records. When Kafka dies
(kill -9 of the broker, restarted on the same data and ports a few seconds later), sends
fail once they outlast the bridge's delivery timeout (3 s here), the bridge reconnects to
MQTT so the broker redelivers what it had not acked, and carries on once Kafka is back.
Every published reading must be in the readings topic (at least once: the store dedupes
on the natural key).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from kafka import KafkaConsumer, TopicPartition

from sensors.reading import decode_record
from simulator import Fleet, publish
from tests.processes import CivicProcess, civic_env, running, wait_until
from tools.devstack import Service, start_kafka

pytestmark = pytest.mark.integration


def _topic_keys(bootstrap: str, topic: str) -> list[tuple[str, str, datetime]]:
    consumer = KafkaConsumer(bootstrap_servers=[bootstrap], consumer_timeout_ms=3000)
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        ends = consumer.end_offsets(parts)
        keys = []
        while any(consumer.position(p) < ends[p] for p in parts):
            for records in consumer.poll(timeout_ms=1000).values():
                for record in records:
                    for r in decode_record(record.value):
                        keys.append((r.sensor_id, r.metric, r.time))
        return keys
    finally:
        consumer.close()


def _restart(kafka: Service) -> None:
    """Start the killed broker again: same command line, data directory and ports."""
    log = open(kafka.log_path.parent / "restart.log", "ab")  # noqa: SIM115 (kept by Popen)
    kafka.proc = subprocess.Popen(
        kafka.proc.args,
        cwd=kafka.log_path.parent,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_kafka_crash_mid_stream_loses_no_reading(mqtt_url: str, tmp_path: Path) -> None:
    kafka = start_kafka(tmp_path / "kafka")
    run = uuid.uuid4().hex[:8]
    topic = f"outage.{run}.readings"
    env = civic_env(
        mqtt_url=mqtt_url,
        kafka_bootstrap=kafka.url,
        readings_topic=topic,
        deadletter_topic=f"outage.{run}.dead",
        mqtt_client_id=f"bridge-{run}",
        mqtt_share_group=f"g{run}",
        kafka_partitions="2",
        kafka_delivery_timeout_s="3",  # the outage outlasts it: sends fail, MQTT redelivers
        log_level="INFO",
    )
    bridge = CivicProcess(["ingest"], env, tmp_path / "bridge.log")
    messages = list(
        Fleet.build(60, seed=5).emissions(2400, datetime.now(UTC) - timedelta(hours=1), rate=150)
    )
    sent = {(m.sensor_id, s.metric, s.time) for m in messages for s in m.samples}
    try:
        with running(bridge):
            bridge.wait_for_log("subscribed to", timeout=90)
            publisher = threading.Thread(
                target=publish,
                args=(messages, mqtt_url, 150),
                kwargs={"client_id": f"p-{run}", "ack_timeout": 240.0},
            )
            publisher.start()
            assert wait_until(lambda: len(_topic_keys(kafka.url, topic)) > len(sent) // 4, 60)
            os.killpg(kafka.pid, signal.SIGKILL)
            kafka.proc.wait(timeout=10)
            time.sleep(8.0)  # the broker is down: the bridge's sends fail meanwhile
            _restart(kafka)
            assert wait_until(lambda: _listening(kafka.port), 90), kafka.log_tail()
            publisher.join(timeout=300)
            assert not publisher.is_alive(), "the publisher never got all its acks"
            assert wait_until(lambda: set(_topic_keys(kafka.url, topic)) >= sent, 120), (
                f"{len(sent - set(_topic_keys(kafka.url, topic)))} readings missing\n"
                + bridge.log_tail()
            )
            assert bridge.alive, bridge.log_tail()
            log = bridge.log_path.read_text(errors="replace")
            assert "Kafka send failed" in log, log[-3000:]  # the redelivery path ran

            # Kafka gone for good, sends outstanding: SIGTERM still stops the bridge cleanly
            os.killpg(kafka.pid, signal.SIGKILL)
            kafka.proc.wait(timeout=10)
            publish(messages[:50], mqtt_url, 50, client_id=f"p2-{run}")
            time.sleep(1.0)
            assert bridge.stop(timeout=45) == 0, bridge.log_tail()
    finally:
        kafka.stop()
