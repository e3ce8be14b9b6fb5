"""Throughput of the distributed path, every stage measured in one run.

Mosquitto → bridge(s) (``civicpulse ingest``) → Kafka → Faust worker(s) (``civicpulse
process``) → PostgreSQL. For each load shape (1, 6, 50 readings per message; the simulator's
sensor mix): the raw ceiling of each stage alone (MQTT publish QoS 1 to Mosquitto, Mosquitto
→ subscriber, decode + validate, Kafka produce, Kafka consume, detection, store +
aggregates), then end to end: sustained readings/s (publishing as fast as Mosquitto
acknowledges, until every reading is stored), publish→stored p50/p95/p99 at 50 % and 80 % of
that capacity (send → ``stored_at``, the storing transaction's start), CPU seconds per 1,000
readings and peak RSS of each process, and end-to-end ÷ slowest stage.

Scale-out (``--bridges N --workers M``): the report's ``scale_out`` section has the messages
each bridge bridged (its own totals, logged when it stops), the partitions each Faust worker
was assigned (Kafka consumer group, members told apart by client id), the records it committed
and the readings stored from its partitions, and the ledger: every reading whose message
Mosquitto acknowledged to the publishers (all phases, warm-up included) looked up in
``readings`` by its natural key (sensor_id, metric, time) — none missing, none twice.

Starts Mosquitto, Kafka (``.cache/kafka/libs``) and PostgreSQL with tools/devstack on
loopback unless ``--mqtt-url``/``--kafka-bootstrap``/``--database-url`` name running ones.

    .venv/bin/python -m civicpulse.cli bench pipeline [--json]
    .venv/bin/python benchmarks/throughput_pipeline.py --duration 10 --shapes 50
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import throughput_stages as st
from sensors.mqtt_url import BrokerUrl
from tests.processes import CivicProcess, civic_env
from tools import devstack


@dataclass(frozen=True, slots=True)
class Config:
    """One run: the shapes, how long each end-to-end phase publishes, the fleet, processes."""

    shapes: tuple[int, ...] = st.SHAPES
    duration_s: float = 10.0
    probe_readings: int = 30_000
    sensors: int = 300
    clients: int = 16
    window: int = 100
    bridges: int = 1
    workers: int = 1
    mqtt_url: str | None = None
    kafka_bootstrap: str | None = None
    database_url: str | None = None
    workdir: Path | None = None
    drain_timeout_s: float = 300.0


PARTITIONS = 6  # of the run's readings topic (the bridges create it, the workers share it)
_BRIDGE_TOTALS = re.compile(r"bridge: (\d+) messages, (\d+) readings, (\d+) acked")


def run(cfg: Config, step: st.Step = st.no_step) -> dict[str, Any]:
    """Run every shape; returns the report (see ``throughput_stages.render``)."""
    workdir = cfg.workdir or Path(tempfile.mkdtemp(prefix="cp-tp-pipeline-"))
    os.chmod(workdir, 0o755)  # noqa: S103 - the postgres OS user must reach its data dir
    report: dict[str, Any] = {
        "engine": "pipeline",
        "machine": st.machine(),
        "sensors": cfg.sensors,
        "clients": cfg.clients,
        "window": cfg.window,
        "bridges": cfg.bridges,
        "workers": cfg.workers,
        "duration_s": cfg.duration_s,
        "shapes": [],
    }
    services: list[devstack.Service] = []
    procs: list[CivicProcess] = []
    bridges: list[CivicProcess] = []
    workers: list[CivicProcess] = []
    ledger: list[st.Message] = []  # every message Mosquitto acknowledged to the publishers
    sampler = None
    try:
        groups: dict[str, Any] = {"bench": st.self_group()}
        urls = {
            "mosquitto": cfg.mqtt_url,
            "kafka": cfg.kafka_bootstrap,
            "postgres": cfg.database_url,
        }
        for name in ("mosquitto", "kafka", "postgres"):
            if urls[name]:
                continue
            step(f"starting {name} (tools/devstack, loopback)")
            service = devstack.start(name, workdir)
            services.append(service)
            urls[name] = service.url
            groups[name] = st.pid_group(service.pid)
        mqtt_url, bootstrap, admin_url = (str(urls[n]) for n in ("mosquitto", "kafka", "postgres"))
        run_id = uuid.uuid4().hex[:8]
        url = st.scratch_database(admin_url, "tp_e2e")
        env = civic_env(
            mqtt_url=mqtt_url,
            kafka_bootstrap=bootstrap,
            database_url=url,
            readings_topic=f"tp.{run_id}.readings",
            kafka_partitions=str(PARTITIONS),
            deadletter_topic=f"tp.{run_id}.dead",
            mqtt_share_group=f"tp-{run_id}",
            mqtt_session_expiry_s="300",
            faust_app_id=f"tp-{run_id}",
            log_level="WARNING",
        )
        step(f"starting {cfg.bridges} bridge(s) and {cfg.workers} Faust worker(s)")
        for i in range(cfg.bridges):
            # INFO: its totals line (every 10 s while busy, and when it stops) and subscribe
            penv = {
                **env,
                "CIVICPULSE_MQTT_CLIENT_ID": f"tp-{run_id}-b{i}",
                "CIVICPULSE_LOG_LEVEL": "INFO",
            }
            bridges.append(CivicProcess(["ingest"], penv, workdir / f"bridge{i}.log").start())
            procs.append(bridges[-1])
            groups[f"bridge{i}"] = st.pid_group(_pid(procs[-1]))
        for i in range(cfg.workers):
            # Faust reads BROKER_CLIENT_ID from the environment: the consumer group's members
            # then say which worker they are
            wenv = {**env, "BROKER_CLIENT_ID": _worker_client_id(run_id, i)}
            workers.append(CivicProcess(["process"], wenv, workdir / f"worker{i}.log").start())
            procs.append(workers[-1])
            groups[f"worker{i}"] = st.pid_group(_pid(procs[-1]))
        port = BrokerUrl.parse(mqtt_url).port
        sampler = st.Sampler(groups).start()
        db_group = "postgres" if "postgres" in groups else "bench"
        load = st.Load(cfg.sensors, cfg.clients)
        _wait_for_processes(bridges, bootstrap, f"tp-{run_id}", cfg, step)
        ledger.extend(_warm_up(load, port, url, cfg, step))
        for shape in cfg.shapes:
            report["shapes"].append(
                _shape(
                    shape,
                    cfg,
                    load,
                    sampler,
                    port,
                    bootstrap,
                    url,
                    admin_url,
                    db_group,
                    step,
                    ledger,
                )
            )
        step("scale-out: per-process counts and the acknowledged-readings ledger")
        report["scale_out"] = _scale_out(
            bridges,
            workers,
            bootstrap,
            f"tp-{run_id}",
            f"tp.{run_id}.readings",
            run_id,
            url,
            ledger,
            cfg,
        )
    finally:
        if sampler is not None:
            sampler.stop()
        for proc in procs:
            proc.stop()
        for service in reversed(services):
            service.stop()
        if cfg.workdir is None:  # ours: the data of a benchmark is not kept
            shutil.rmtree(workdir, ignore_errors=True)
    return report


def _warm_up(load: st.Load, port: int, url: str, cfg: Config, step: st.Step) -> list[st.Message]:
    """Until one message goes all the way through; returns the acknowledged messages."""
    step("waiting for the path to carry a first message")
    acked: list[st.Message] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        messages = load.messages(1, 1)[:1]
        pub = st.publish(port, messages, cfg.clients, window=cfg.window)
        acked.extend(messages[i] for i in pub.acked)
        until = time.monotonic() + 10
        while time.monotonic() < until:
            if st.stored_at(url, messages):
                return acked
            time.sleep(0.3)
    raise RuntimeError("no reading went through the pipeline within 120 s")


def _worker_client_id(run_id: str, index: int) -> str:
    return f"tp-{run_id}-w{index}"


def _wait_for_processes(
    bridges: list[CivicProcess], bootstrap: str, group: str, cfg: Config, step: st.Step
) -> None:
    """Every bridge subscribed and every worker in the consumer group with partitions: else
    the first phase would measure a rebalance, not the scale-out."""
    step(f"waiting for {cfg.bridges} bridge(s) to subscribe and {cfg.workers} worker(s) to join")
    for bridge in bridges:
        bridge.wait_for_log("subscribed to", timeout=120)
    deadline = time.monotonic() + 180
    members: dict[str, list[int]] = {}
    while time.monotonic() < deadline:
        members = _assignment(bootstrap, group)
        if len(members) == cfg.workers and all(members.values()):
            return
        time.sleep(1.0)
    raise RuntimeError(f"{cfg.workers} Faust worker(s) did not all get partitions: {members}")


def _assignment(bootstrap: str, group: str) -> dict[str, list[int]]:
    """Consumer group ``group``'s members (by client id) → partitions of the readings topic
    they are assigned (Faust's own changelog/leader topics left out)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="tp-admin")
    try:
        try:
            described = admin.describe_groups([group])
        except Exception:  # the group does not exist yet (no worker joined)
            return {}
    finally:
        admin.close()
    out: dict[str, list[int]] = {}
    info = described.get(group) or {}
    for member in info.get("members") or []:
        parts: list[int] = []
        assignment = member.get("member_assignment") or {}
        for topic, partitions in _topic_partitions(assignment):
            if topic.endswith(".readings"):
                parts.extend(partitions)
        name = str(member.get("client_id") or member.get("member_id"))
        out[name] = sorted(out.get(name, []) + parts)
    return out


def _topic_partitions(assignment: Any) -> list[tuple[str, list[int]]]:
    """(topic, partitions) pairs of a decoded ConsumerProtocol assignment (dict or tuples)."""
    items = assignment
    if isinstance(assignment, dict):  # kafka-python 3: {"assigned_partitions": [{topic, ...}]}
        items = assignment.get("assigned_partitions") or assignment.get("assignment")
    out: list[tuple[str, list[int]]] = []
    for item in items or []:
        if isinstance(item, dict):
            out.append((str(item.get("topic")), [int(p) for p in item.get("partitions", [])]))
        else:
            topic, partitions = item[0], item[1]
            out.append((str(topic), [int(p) for p in partitions]))
    return out


def _committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """Committed offset of ``group`` on each partition of ``topic`` (records it finished)."""
    from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="tp-admin")
    try:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
    finally:
        admin.close()
    return {tp.partition: int(meta.offset) for tp, meta in offsets.items() if tp.topic == topic}


def _partition_of(sensor_id: str) -> int:
    """The bridge's producer's partition for a reading (kafka-python's default: murmur2 of
    the key, the sensor id)."""
    from kafka.partitioner.default import murmur2

    return int(murmur2(sensor_id.encode()) & 0x7FFFFFFF) % PARTITIONS


def _bridge_totals(bridge: CivicProcess) -> dict[str, int] | None:
    """The last totals line the bridge logged (it logs one when it stops)."""
    lines = _BRIDGE_TOTALS.findall(bridge.log_path.read_text(errors="replace"))
    if not lines:
        return None
    messages, readings, acked = (int(x) for x in lines[-1])
    return {"messages": messages, "readings": readings, "acked": acked}


def _scale_out(
    bridges: list[CivicProcess],
    workers: list[CivicProcess],
    bootstrap: str,
    group: str,
    topic: str,
    run_id: str,
    url: str,
    ledger: list[st.Message],
    cfg: Config,
) -> dict[str, Any]:
    """Per-process counts and the ledger of acknowledged readings against ``readings``."""
    assignment = _assignment(bootstrap, group)  # while every worker is still a member
    for bridge in bridges:  # SIGTERM: a bridge flushes Kafka and logs its totals
        bridge.stop()
    for worker in workers:  # SIGTERM: Faust commits what it finished (offsets lag by ≤ 1 s)
        worker.stop()
    committed = _committed(bootstrap, group, topic)
    expected = {(r.sensor_id, r.metric, r.time) for r in st.routed_readings(ledger)}
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT sensor_id, metric, time, count(*) FROM readings GROUP BY 1, 2, 3"
        ).fetchall()
    stored = {(s, m, t): int(n) for s, m, t, n in rows}
    twice = sum(1 for n in stored.values() if n > 1)
    missing = expected - stored.keys()
    unexpected = stored.keys() - expected
    by_partition: dict[int, int] = {}
    for sensor_id, _m, _t in stored:
        p = _partition_of(sensor_id)
        by_partition[p] = by_partition.get(p, 0) + 1
    per_bridge = {f"bridge{i}": _bridge_totals(b) for i, b in enumerate(bridges)}
    bridged = sum(t["messages"] for t in per_bridge.values() if t)
    # a run-level count: the warm-up and every phase of every shape
    names = {_worker_client_id(run_id, i): f"worker{i}" for i in range(cfg.workers)}
    per_worker = {}
    for client_id, partitions in sorted(assignment.items()):
        per_worker[names.get(client_id, client_id)] = {
            "partitions": partitions,
            "records_committed": sum(committed.get(p, 0) for p in partitions),
            "readings_stored": sum(by_partition.get(p, 0) for p in partitions),
        }
    return {
        "bridges": per_bridge,
        "workers": per_worker,
        "messages_acknowledged_to_publishers": len(ledger),
        "messages_bridged": bridged,
        "mqtt_redeliveries": max(0, bridged - len(ledger)),
        "readings_acknowledged": len(expected),
        "readings_stored": len(stored),
        "missing": len(missing),
        "stored_twice": twice,
        "stored_not_acknowledged": len(unexpected),
        "missing_examples": [list(map(str, k)) for k in sorted(missing)[:5]],
        "ok": not missing and not twice and len(per_worker) == cfg.workers,
        "basis": (
            "bridges: totals each logged when stopped; workers: consumer-group assignment at"
            " the end of the run by client id, committed offsets, stored readings of their"
            " partitions (murmur2 of the sensor id); ledger: natural key (sensor_id, metric,"
            " time)"
        ),
    }


def _drain(url: str, messages: list[st.Message], expected: int, timeout_s: float) -> float:
    """Wait until ``expected`` readings of ``messages`` are stored; the time (epoch s) the
    count stopped growing."""
    last, last_change = -1, time.time()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        n = st.count_between(url, messages)
        if n != last:
            last, last_change = n, time.time()
        if n >= expected:
            break
        if time.time() - last_change > 30:  # stuck: report what arrived
            break
        time.sleep(0.2)
    return last_change


def _shape(
    shape: int,
    cfg: Config,
    load: st.Load,
    sampler: st.Sampler,
    port: int,
    bootstrap: str,
    url: str,
    admin_url: str,
    db_group: str,
    step: st.Step,
    ledger: list[st.Message],
) -> dict[str, Any]:
    label = f"{shape}/msg"
    probe = load.messages(shape, cfg.probe_readings)
    # the probes publish on the sensor topics: the bridge would carry them into the run's
    # database, so they go to a probe copy of the messages under another prefix
    probe_pub = [
        st.Message("probe/" + m.topic, m.payload, m.readings, m.first_key, m.client) for m in probe
    ]
    step(f"{label}: MQTT publish QoS 1 alone (Mosquitto)")
    stages = [st.probe_publish(sampler, "mosquitto", port, probe_pub, cfg.clients)]
    step(f"{label}: Mosquitto → subscriber alone")
    stages.append(
        st.probe_deliver(sampler, "mosquitto", port, probe_pub, cfg.clients, topic="probe/#")
    )
    step(f"{label}: decode + validate alone")
    stages.append(st.probe_decode(probe))
    step(f"{label}: Kafka produce and consume alone")
    stages.extend(st.probe_kafka(sampler, bootstrap, probe))
    readings = st.routed_readings(probe)
    step(f"{label}: detection alone")
    stages.append(st.probe_detection(readings))
    step(f"{label}: store + aggregates alone")
    stages.append(st.probe_store(sampler, db_group, admin_url, readings))

    ceiling = min(s["readings_per_s"] for s in stages if s["on_path"])
    step(f"{label}: end to end, as fast as Mosquitto takes it ({cfg.duration_s:.0f} s)")
    for k in sampler.peak_rss:
        sampler.peak_rss[k] = 0
    messages = load.messages(shape, max(shape, int(ceiling * cfg.duration_s)))
    before = sampler.cpu()
    pub = st.publish(port, messages, cfg.clients, window=cfg.window, stop_after_s=cfg.duration_s)
    sent = sum(messages[i].readings for i in pub.sent)
    ledger.extend(messages[i] for i in pub.acked)
    step(f"{label}: end to end, waiting for {sent:,} readings to be stored")
    done_at = _drain(url, messages, sent, cfg.drain_timeout_s)
    cpu = st.cpu_delta(before, sampler.cpu())
    stored = st.count_between(url, messages)
    seconds = done_at - min(pub.sent.values())
    e2e: dict[str, Any] = {
        "readings_per_s": round(stored / seconds) if stored else None,
        "messages_per_s": round(stored / seconds / shape) if stored else None,
        "expected": sent,
        "stored": stored,
        "basis": "first send → last reading stored (database polled every 0.2 s)",
    }
    latency: dict[str, Any] = {}
    for fraction in (0.5, 0.8):
        offered = fraction * (e2e["readings_per_s"] or 0)
        if not offered:
            continue
        step(f"{label}: end to end at {fraction:.0%} of capacity ({offered:,.0f} readings/s)")
        msgs = load.messages(shape, max(shape, int(offered * cfg.duration_s)))
        rate = offered / (sum(m.readings for m in msgs) / len(msgs))
        pub_p = st.publish(port, msgs, cfg.clients, rate=rate, window=cfg.window)
        expected = sum(msgs[i].readings for i in pub_p.sent)
        ledger.extend(msgs[i] for i in pub_p.acked)
        _drain(url, msgs, expected, cfg.drain_timeout_s)
        at = st.stored_at(url, msgs)
        lat = [
            (at[msgs[i].first_key] - pub_p.sent[i]) * 1000
            for i in pub_p.sent
            if msgs[i].first_key in at
        ]
        latency[f"{fraction:.0%}"] = st.latency_summary(
            lat,
            offered,
            "send → stored_at (storing transaction's start)",
            extra=f"{len(lat)}/{len(pub_p.sent)} messages found stored",
        )
    return st.summarise_shape(shape, stages, e2e, latency, cpu, dict(sampler.peak_rss))


def _pid(proc: CivicProcess) -> int:
    assert proc.proc is not None
    return proc.proc.pid


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="1,6,50", help="readings per message, comma-separated")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per end-to-end phase")
    ap.add_argument("--probe-readings", type=int, default=30_000)
    ap.add_argument("--sensors", type=int, default=300)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument(
        "--window", type=int, default=100, help="unacknowledged messages per connection"
    )
    ap.add_argument("--bridges", type=int, default=1)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    cfg = Config(
        shapes=tuple(int(s) for s in args.shapes.split(",")),
        duration_s=args.duration,
        probe_readings=args.probe_readings,
        sensors=args.sensors,
        clients=args.clients,
        window=args.window,
        bridges=args.bridges,
        workers=args.workers,
    )
    with st.sigterm_as_exit():
        report = run(cfg, step=lambda what: print(f"… {what}", file=sys.stderr))
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        from rich.console import Console

        st.render(report, Console().print)
    scale_out = report.get("scale_out")
    return 1 if scale_out is not None and not scale_out["ok"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
