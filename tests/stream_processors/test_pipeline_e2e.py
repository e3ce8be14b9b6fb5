"""End to end on real services: simulator → Mosquitto → bridge → Kafka → Faust → PostgreSQL.

Truth is what the test itself published (the simulator's samples), aggregated with numpy;
the bridge and the Faust worker are each killed with SIGKILL mid-stream and restarted.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest
from kafka import KafkaConsumer, TopicPartition

from sensors.deadletter import KEEP_BYTES
from simulator import Fleet, bad_messages, publish
from tests.processes import CivicProcess, civic_env, running, wait_until

pytestmark = pytest.mark.integration

N_SENSORS = 300
N_MESSAGES = 2_400  # ≈ 11k readings: air sends 6 metrics, bins 5, meters 2-3
N_BAD = 520
RATE = 300.0  # messages per second offered to the broker


def _interleave(good: list, bad: list, seed: int) -> list:
    """Spread the bad messages evenly through the good ones (deterministically)."""
    out: list = []
    step = len(good) / max(1, len(bad))
    bi = 0
    for i, g in enumerate(good):
        while bi < len(bad) and bi * step <= i:
            out.append(bad[bi])
            bi += 1
        out.append(g)
    out.extend(bad[bi:])
    return out


def _truth(emissions: list) -> dict[tuple[str, str, datetime], tuple[str, str, float]]:
    truth: dict[tuple[str, str, datetime], tuple[str, str, float]] = {}
    for e in emissions:
        for s in e.samples:
            key = (e.sensor_id, s.metric, s.time)
            assert key not in truth, f"the simulator produced a duplicate key {key}"
            truth[key] = (e.council, e.kind, float(s.value))
    return truth


def _read_deadletters(bootstrap: str, topic: str) -> list[tuple[bytes, bytes, dict[str, str]]]:
    consumer = KafkaConsumer(
        bootstrap_servers=[bootstrap],
        enable_auto_commit=False,
        group_id=None,
        consumer_timeout_ms=5000,
        fetch_max_bytes=16 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    try:
        parts = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
        out = []
        for record in consumer:
            headers = {k: v.decode("utf-8", "replace") for k, v in record.headers}
            out.append((record.key, record.value, headers))
        return out
    finally:
        consumer.close()


def test_pipeline_end_to_end_with_bad_input_and_kill9(
    mqtt_url: str, kafka_bootstrap: str, fresh_db: str, tmp_path: Path
) -> None:
    run_id = uuid.uuid4().hex[:8]
    readings_topic = f"e2e.{run_id}.readings"
    dead_topic = f"e2e.{run_id}.deadletter"
    env = civic_env(
        mqtt_url=mqtt_url,
        kafka_bootstrap=kafka_bootstrap,
        database_url=fresh_db,
        readings_topic=readings_topic,
        deadletter_topic=dead_topic,
        mqtt_client_id=f"bridge-{run_id}",
        mqtt_share_group=f"g{run_id}",
        faust_app_id=f"proc-{run_id}",
        kafka_partitions="4",
        batch_seconds="0.3",
        kafka_session_timeout_s="6",
        log_level="INFO",
    )
    bridge = CivicProcess(["ingest"], env, tmp_path / "bridge.log")
    worker = CivicProcess(["process"], env, tmp_path / "worker.log")

    now = datetime.now(UTC).replace(microsecond=0)
    fleet = Fleet.build(N_SENSORS, seed=20261125)
    # 30 simulated seconds per wall second: ~4 simulated minutes, so sensors share buckets.
    emissions = list(
        fleet.emissions(N_MESSAGES, start=now - timedelta(minutes=10), rate=RATE, speed=30.0)
    )
    bad = list(bad_messages(7, N_BAD, now, fleet.addresses))
    truth = _truth(emissions)
    assert len(truth) >= 10_000
    assert {e.kind for e in emissions} == {"air_quality", "waste_bin", "energy_meter"}
    assert len({e.sensor_id for e in emissions}) >= 300
    assert len({b.expected_reason for b in bad}) >= 10
    stream = _interleave(emissions, bad, seed=1)

    with running(bridge, worker):
        bridge.wait_for_log("subscribed to", timeout=60)

        publish_error: list[BaseException] = []
        progress = {"sent": 0}

        def publisher() -> None:
            try:
                publish(
                    stream,
                    mqtt_url,
                    rate=RATE,
                    qos=1,
                    client_id=f"sim-{run_id}",
                    progress=lambda sent, _acked: progress.__setitem__("sent", sent),
                )
            except BaseException as exc:  # surfaced below
                publish_error.append(exc)

        thread = threading.Thread(target=publisher, daemon=True)
        thread.start()
        total = len(stream)
        # kill -9 the bridge at ~25 % of the stream, restart it after a pause
        assert wait_until(lambda: progress["sent"] >= total * 0.25, timeout=60, interval=0.05)
        bridge.kill9()
        time.sleep(1.5)
        bridge.start()
        # kill -9 the Faust worker at ~60 %, restart it
        assert wait_until(lambda: progress["sent"] >= total * 0.60, timeout=60, interval=0.05)
        worker.kill9()
        time.sleep(1.0)
        worker.start()
        thread.join(timeout=180)
        assert not thread.is_alive(), "publisher did not finish"
        assert not publish_error, publish_error

        def stored() -> int:
            with psycopg.connect(fresh_db) as conn:
                row = conn.execute("SELECT count(*) FROM readings").fetchone()
                return int(row[0]) if row else 0

        ok = wait_until(lambda: stored() >= len(truth), timeout=180, interval=1.0)
        time.sleep(2.0)  # let any replay after the kill land, so duplicates would show
        assert ok, (
            f"stored {stored()} of {len(truth)}\nbridge:\n{bridge.log_tail()}\n"
            f"worker:\n{worker.log_tail()}"
        )
        assert bridge.alive, bridge.log_tail()
        assert worker.alive, worker.log_tail()
        deadletters = _read_deadletters(kafka_bootstrap, dead_topic)

    with psycopg.connect(fresh_db) as conn:
        rows = conn.execute(
            "SELECT sensor_id, metric, time, council, kind, value FROM readings"
        ).fetchall()
        aggregates = conn.execute(
            "SELECT sensor_id, metric, bucket, n, min, max, mean, last FROM readings_1m"
        ).fetchall()

    # every reading stored exactly once, with its published value
    keys = [(s, m, t) for s, m, t, *_ in rows]
    assert len(keys) == len(set(keys)), "a reading was stored twice"
    assert set(keys) == set(truth), "stored readings differ from those published"
    for s, m, t, council, kind, value in rows:
        exp_council, exp_kind, exp_value = truth[(s, m, t)]
        assert (council, kind) == (exp_council, exp_kind)
        assert value == pytest.approx(exp_value, rel=1e-9, abs=1e-9)

    # every one-minute aggregate equals numpy over the published readings
    groups: dict[tuple[str, str, datetime], list[tuple[datetime, float]]] = defaultdict(list)
    for (s, m, t), (_c, _k, v) in truth.items():
        groups[(s, m, t.replace(second=0, microsecond=0))].append((t, v))
    assert len(aggregates) == len(groups)
    for s, m, bucket, n, lo, hi, mean, last in aggregates:
        pts = sorted(groups[(s, m, bucket)])
        values = np.array([v for _t, v in pts], dtype=np.float64)
        assert n == values.size
        assert lo == pytest.approx(values.min(), rel=1e-9, abs=1e-9)
        assert hi == pytest.approx(values.max(), rel=1e-9, abs=1e-9)
        assert mean == pytest.approx(values.mean(), rel=1e-9, abs=1e-9)
        assert last == pytest.approx(values[-1], rel=1e-9, abs=1e-9)

    # every bad message dead-lettered with its specific reason, raw bytes (the first 4 KiB,
    # with the whole payload's length and SHA-256) and MQTT topic
    letters: dict[tuple[str, str], set[str]] = defaultdict(set)
    for key, value, headers in deadletters:
        assert headers["mqtt_topic"] == key.decode("utf-8", "replace")
        assert headers["detail"] and headers["received_at"]
        assert len(value) <= KEEP_BYTES
        letters[(headers["mqtt_topic"], headers["payload_sha256"])].add(headers["reason"])
        if headers["reason"] == "payload_too_large":
            assert int(headers["payload_size"]) > KEEP_BYTES == len(value)
    for b in bad:
        got = letters.get((b.topic, hashlib.sha256(b.payload).hexdigest()))
        assert got == {b.expected_reason.value}, (b.label, got)
    assert len({h["reason"] for _k, _v, h in deadletters}) >= 10
