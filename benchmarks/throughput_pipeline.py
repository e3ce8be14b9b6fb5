"""Throughput of the distributed path, every stage measured in one run.

Mosquitto → bridge(s) (``civicpulse ingest``) → Kafka → Faust worker(s) (``civicpulse
process``) → PostgreSQL. For each load shape (1, 6, 50 readings per message; the simulator's
sensor mix): the raw ceiling of each stage alone (MQTT publish QoS 1 to Mosquitto, Mosquitto
→ subscriber, decode + validate, Kafka produce, Kafka consume, detection, store +
aggregates), then end to end: sustained readings/s (publishing as fast as Mosquitto
acknowledges, until every reading is stored), publish→stored p50/p95/p99 at 50 % and 80 % of
that capacity (send → ``stored_at``, the storing transaction's start), CPU seconds per 1,000
readings and peak RSS of each process, and end-to-end ÷ slowest stage.

Starts Mosquitto, Kafka (``.cache/kafka/libs``) and PostgreSQL with tools/devstack on
loopback unless ``--mqtt-url``/``--kafka-bootstrap``/``--database-url`` name running ones.

    .venv/bin/python -m civicpulse.cli bench pipeline [--json]
    .venv/bin/python benchmarks/throughput_pipeline.py --duration 10 --shapes 50
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


def run(cfg: Config, step: st.Step = st.no_step) -> dict[str, Any]:
    """Run every shape; returns the report (see ``throughput_stages.render``)."""
    workdir = cfg.workdir or Path(tempfile.mkdtemp(prefix="cp-tp-pipeline-"))
    os.chmod(workdir, 0o755)  # noqa: S103 - the postgres OS user must reach its data dir
    report: dict[str, Any] = {
        "engine": "pipeline",
        "machine": st.machine(),
        "sensors": cfg.sensors,
        "clients": cfg.clients,
        "bridges": cfg.bridges,
        "workers": cfg.workers,
        "duration_s": cfg.duration_s,
        "shapes": [],
    }
    services: list[devstack.Service] = []
    procs: list[CivicProcess] = []
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
            deadletter_topic=f"tp.{run_id}.dead",
            mqtt_share_group=f"tp-{run_id}",
            mqtt_session_expiry_s="300",
            faust_app_id=f"tp-{run_id}",
            log_level="WARNING",
        )
        step(f"starting {cfg.bridges} bridge(s) and {cfg.workers} Faust worker(s)")
        for i in range(cfg.bridges):
            penv = {**env, "CIVICPULSE_MQTT_CLIENT_ID": f"tp-{run_id}-b{i}"}
            procs.append(CivicProcess(["ingest"], penv, workdir / f"bridge{i}.log").start())
            groups[f"bridge{i}"] = st.pid_group(_pid(procs[-1]))
        for i in range(cfg.workers):
            procs.append(CivicProcess(["process"], env, workdir / f"worker{i}.log").start())
            groups[f"worker{i}"] = st.pid_group(_pid(procs[-1]))
        port = BrokerUrl.parse(mqtt_url).port
        sampler = st.Sampler(groups).start()
        db_group = "postgres" if "postgres" in groups else "bench"
        load = st.Load(cfg.sensors, cfg.clients)
        _warm_up(load, port, url, cfg, step)
        for shape in cfg.shapes:
            report["shapes"].append(
                _shape(shape, cfg, load, sampler, port, bootstrap, url, admin_url, db_group, step)
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


def _warm_up(load: st.Load, port: int, url: str, cfg: Config, step: st.Step) -> None:
    """Until one message goes all the way through (bridge subscribed, workers joined)."""
    step("waiting for the path to carry a first message")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        messages = load.messages(1, 1)[:1]
        st.publish(port, messages, cfg.clients, window=cfg.window)
        until = time.monotonic() + 10
        while time.monotonic() < until:
            if st.stored_at(url, messages):
                return
            time.sleep(0.3)
    raise RuntimeError("no reading went through the pipeline within 120 s")


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
    stages.append(_deliver(sampler, port, probe_pub, cfg.clients))
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


def _deliver(
    sampler: st.Sampler, port: int, messages: list[st.Message], clients: int
) -> dict[str, Any]:
    """Mosquitto → one subscriber (the bridge's place), on the probe prefix."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    got = [0, 0.0, 0.0]
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"tp-sub-{uuid.uuid4().hex[:6]}")

    def on_message(*_a: Any) -> None:
        now = time.monotonic()
        if not got[0]:
            got[1] = now
        got[0] += 1
        got[2] = now

    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.subscribe("probe/#", qos=1)
    client.loop_start()
    time.sleep(0.5)
    before = sampler.cpu()
    st.publish(port, messages, clients)
    deadline = time.monotonic() + 60
    while got[0] < len(messages) and time.monotonic() < deadline:
        time.sleep(0.05)
    client.disconnect()
    client.loop_stop()
    cpu = st.cpu_delta(before, sampler.cpu())
    per_msg = sum(m.readings for m in messages) / max(1, len(messages))
    return st.stage(
        "broker_to_subscriber",
        round(int(got[0]) * per_msg),
        int(got[0]),
        got[2] - got[1],
        {"publisher+subscriber": cpu["bench"], "mosquitto": cpu.get("mosquitto", 0.0)},
        note="Mosquitto → one paho subscriber (loop_start), QoS 1",
    )


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
        bridges=args.bridges,
        workers=args.workers,
    )
    report = run(cfg, step=lambda what: print(f"… {what}", file=sys.stderr))
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        from rich.console import Console

        st.render(report, Console().print)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
