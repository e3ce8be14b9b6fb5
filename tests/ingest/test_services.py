"""Prove that the test services are the real thing: Mosquitto, Kafka, PostgreSQL 15."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
import time
import uuid
from urllib.parse import urlsplit

import pytest

pytestmark = pytest.mark.integration


def _host_port(mqtt_url: str) -> tuple[str, int]:
    parts = urlsplit(mqtt_url)
    assert parts.scheme == "mqtt"
    assert parts.hostname and parts.port
    return parts.hostname, parts.port


def _paho_client(client_id: str):  # type: ignore[no-untyped-def]
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    return mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv311,
    )


def test_mqtt_paho_qos1_round_trip(mqtt_url: str) -> None:
    host, port = _host_port(mqtt_url)
    topic = f"civicpulse/test/{uuid.uuid4().hex}"
    payloads = [f"reading-{i}".encode() for i in range(20)]
    received: list[tuple[bytes, int]] = []
    subscribed = threading.Event()
    done = threading.Event()

    sub = _paho_client(f"sub-{uuid.uuid4().hex[:8]}")

    def on_connect(client, userdata, flags, reason_code, properties):  # type: ignore[no-untyped-def]
        assert not reason_code.is_failure, reason_code
        client.subscribe(topic, qos=1)

    def on_subscribe(client, userdata, mid, reason_codes, properties):  # type: ignore[no-untyped-def]
        assert all(rc.value == 1 for rc in reason_codes), reason_codes  # granted QoS 1
        subscribed.set()

    def on_message(client, userdata, msg):  # type: ignore[no-untyped-def]
        received.append((msg.payload, msg.qos))
        if len(received) == len(payloads):
            done.set()

    sub.on_connect = on_connect
    sub.on_subscribe = on_subscribe
    sub.on_message = on_message
    sub.connect(host, port, keepalive=30)
    sub.loop_start()
    pub = _paho_client(f"pub-{uuid.uuid4().hex[:8]}")
    try:
        assert subscribed.wait(10), "subscription was not acknowledged"
        pub.connect(host, port, keepalive=30)
        pub.loop_start()
        infos = [pub.publish(topic, p, qos=1) for p in payloads]
        for info in infos:
            info.wait_for_publish(timeout=10)
            assert info.is_published()  # PUBACK received
        assert done.wait(10), f"got {len(received)} of {len(payloads)} messages"
    finally:
        pub.disconnect()
        pub.loop_stop()
        sub.disconnect()
        sub.loop_stop()
    assert [p for p, _ in received] == payloads
    assert all(qos == 1 for _, qos in received)


def test_mqtt_cli_round_trip(mqtt_url: str) -> None:
    host, port = _host_port(mqtt_url)
    assert shutil.which("mosquitto_pub") and shutil.which("mosquitto_sub")
    common = ["-h", host, "-p", str(port), "-q", "1"]
    topic = f"civicpulse/cli/{uuid.uuid4().hex}"

    # Retained message: mosquitto_pub → broker → a later mosquitto_sub.
    subprocess.run(
        ["mosquitto_pub", *common, "-t", topic, "-r", "-m", "hello-cli"], check=True, timeout=15
    )
    out = subprocess.run(
        ["mosquitto_sub", *common, "-t", topic, "-C", "1", "-W", "10"],
        check=True,
        timeout=15,
        capture_output=True,
        text=True,
    )
    assert out.stdout.strip() == "hello-cli"
    subprocess.run(["mosquitto_pub", *common, "-t", topic, "-r", "-n"], check=True, timeout=15)

    # Live message: mosquitto_sub already subscribed while mosquitto_pub sends.
    live_topic = f"{topic}/live"
    sub = subprocess.Popen(
        ["mosquitto_sub", *common, "-t", live_topic, "-C", "1", "-W", "15", "-v"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 10
        # The subscriber may not be subscribed yet: resend until it has one message.
        while sub.poll() is None and time.monotonic() < deadline:
            subprocess.run(
                ["mosquitto_pub", *common, "-t", live_topic, "-m", "live-cli"],
                check=True,
                timeout=15,
            )
            with contextlib.suppress(subprocess.TimeoutExpired):
                sub.wait(0.3)
        stdout, stderr = sub.communicate(timeout=10)
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait()
    assert sub.returncode == 0, stderr
    assert stdout.strip() == f"{live_topic} live-cli"


def test_kafka_produce_consume_round_trip(kafka_bootstrap: str) -> None:
    from kafka import KafkaConsumer, KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    topic = f"civicpulse-test-{uuid.uuid4().hex}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="test-admin")
    try:
        admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
    finally:
        admin.close()

    messages = [(f"sensor-{i % 3}".encode(), f"value-{i}".encode()) for i in range(50)]
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=5)
    try:
        futures = [producer.send(topic, key=k, value=v) for k, v in messages]
        producer.flush(timeout=30)
        metas = [f.get(timeout=30) for f in futures]
    finally:
        producer.close(timeout=10)
    assert {m.topic for m in metas} == {topic}

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"test-group-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=30_000,
    )
    got: list[tuple[bytes, bytes]] = []
    try:
        for record in consumer:
            got.append((record.key, record.value))
            if len(got) == len(messages):
                break
        consumer.commit()  # proves the group coordinator (__consumer_offsets) works
    finally:
        consumer.close()
    assert sorted(got) == sorted(messages)


def test_postgres_is_real_postgresql_15(database_url: str) -> None:
    import psycopg

    with psycopg.connect(database_url) as conn:
        row = conn.execute("select version()").fetchone()
        assert row is not None
        assert "PostgreSQL 15" in row[0]
        assert conn.info.dbname == "civicpulse"


def test_fresh_db_is_new_and_empty(fresh_db: str, database_url: str) -> None:
    import psycopg

    assert fresh_db != database_url
    with psycopg.connect(fresh_db) as conn:
        count = conn.execute(
            "select count(*) from information_schema.tables where table_schema = 'public'"
        ).fetchone()
        assert count == (0,)
        conn.execute("create table t (id int primary key)")
        conn.execute("insert into t values (1)")
