"""Throughput of the embedded engine (``civicpulse run``), every stage measured in one run.

For each load shape (1, 6, 50 readings per message; the simulator's sensor mix): the raw
ceiling of each stage alone (MQTT publish QoS 1 to a plain amqtt broker, amqtt → subscriber,
decode + validate, detection, store + aggregates), then the engine end to end: sustained
readings/s (closed loop: as fast as PUBACKs come back), publish→stored p50/p95/p99 at 50 % and
80 % of that capacity (send → PUBACK: the engine acknowledges only after the commit), CPU
seconds per 1,000 readings and peak RSS of each process, and end-to-end ÷ slowest stage.

    .venv/bin/python -m civicpulse.cli bench embedded [--json]
    .venv/bin/python benchmarks/throughput_embedded.py --duration 10 --shapes 1,6,50
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import throughput_stages as st


@dataclass(frozen=True, slots=True)
class Config:
    """One run: the shapes, how long each end-to-end phase publishes, the fleet."""

    shapes: tuple[int, ...] = st.SHAPES
    duration_s: float = 10.0
    probe_readings: int = 30_000
    sensors: int = 300
    clients: int = 16
    window: int = 100
    mqtt_port: int | None = None  # a running engine's broker (with database_url)
    database_url: str | None = None
    workdir: Path | None = None


def start_engine(data_dir: Path, port: int) -> tuple[subprocess.Popen[str], str]:
    """``civicpulse run`` in ``data_dir`` (embedded PostgreSQL, no API); (process, db URL)."""
    log = (data_dir / "engine.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "civicpulse.cli",
            "run",
            "--mqtt-url",
            f"mqtt://127.0.0.1:{port}",
            "--data-dir",
            str(data_dir),
            "--api-port",
            "0",
        ],
        cwd=st.REPO,
        env={**os.environ, "PYTHONPATH": str(st.REPO)},
        text=True,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    log.close()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        text = (data_dir / "engine.log").read_text()
        if "\nready" in text or text.startswith("ready"):
            m = re.search(r"psql '([^']+)'", text)
            if m:
                return proc, m.group(1)
        if proc.poll() is not None:
            raise RuntimeError(f"civicpulse run exited:\n{text[-2000:]}")
        time.sleep(0.2)
    st.stop(proc)
    raise RuntimeError("civicpulse run was not ready within 120 s")


def _engine_phase(
    port: int,
    url: str,
    messages: list[st.Message],
    cfg: Config,
    rate: float | None,
) -> tuple[st.Published, dict[tuple[str, str, Any], float]]:
    stop_after = cfg.duration_s if rate is None else None  # closed loop: time-boxed
    pub = st.publish(
        port, messages, cfg.clients, rate=rate, window=cfg.window, stop_after_s=stop_after
    )
    return pub, st.stored_at(url, messages)


def run(cfg: Config, step: st.Step = st.no_step) -> dict[str, Any]:
    """Run every shape; returns the report (see ``throughput_stages.render``)."""
    workdir = cfg.workdir or Path(tempfile.mkdtemp(prefix="cp-tp-embedded-"))
    report: dict[str, Any] = {
        "engine": "embedded",
        "machine": st.machine(),
        "sensors": cfg.sensors,
        "clients": cfg.clients,
        "window": cfg.window,
        "duration_s": cfg.duration_s,
        "shapes": [],
    }
    engine = alone = None
    sampler = None
    try:
        if cfg.mqtt_port and cfg.database_url:
            port, url = cfg.mqtt_port, cfg.database_url
            groups = {"bench": st.self_group()}
        else:
            step("starting civicpulse run (embedded PostgreSQL) in a temp dir")
            port = st.free_port()
            engine, url = start_engine(workdir, port)
            groups = {
                "engine": st.pid_group(engine.pid, children=False),
                "postgres": st.cmdline_group(str(workdir)),
                "bench": st.self_group(),
            }
        alone_port = st.free_port()
        alone = st.start_amqtt_alone(alone_port)
        groups["amqtt_alone"] = st.pid_group(alone.pid)
        sampler = st.Sampler(groups).start()
        db_group = "postgres" if "postgres" in groups else "bench"
        load = st.Load(cfg.sensors, cfg.clients, after=st.newest_reading(url))
        for shape in cfg.shapes:
            report["shapes"].append(
                _shape(shape, cfg, load, sampler, port, url, alone_port, db_group, step)
            )
    finally:
        if sampler is not None:
            sampler.stop()
        st.stop(alone)
        if engine is not None:
            step("stopping civicpulse run")
            st.stop(engine)
        if cfg.workdir is None:  # ours: the data of a benchmark is not kept
            shutil.rmtree(workdir, ignore_errors=True)
    return report


def _shape(
    shape: int,
    cfg: Config,
    load: st.Load,
    sampler: st.Sampler,
    port: int,
    url: str,
    alone_port: int,
    db_group: str,
    step: st.Step,
) -> dict[str, Any]:
    label = f"{shape}/msg"
    probe = load.messages(shape, cfg.probe_readings)
    step(f"{label}: MQTT publish QoS 1 alone (plain amqtt)")
    stages = [st.probe_publish(sampler, "amqtt_alone", alone_port, probe, cfg.clients)]
    step(f"{label}: amqtt → subscriber alone")
    stages.append(
        st.probe_deliver(sampler, "amqtt_alone", alone_port, probe, cfg.clients, on_path=False)
    )
    step(f"{label}: decode + validate alone")
    stages.append(st.probe_decode(probe))
    readings = st.routed_readings(probe)
    step(f"{label}: detection alone")
    stages.append(st.probe_detection(readings))
    step(f"{label}: store + aggregates alone")
    stages.append(st.probe_store(sampler, db_group, url, readings))

    ceiling = min(s["readings_per_s"] for s in stages if s["on_path"])
    step(f"{label}: end to end, closed loop ({cfg.duration_s:.0f} s)")
    for k in sampler.peak_rss:
        sampler.peak_rss[k] = 0
    # enough messages for duration_s at the slowest stage's rate; sending stops after that
    messages = load.messages(shape, max(shape, int(ceiling * cfg.duration_s)))
    before = sampler.cpu()
    pub, _stored = _engine_phase(port, url, messages, cfg, None)
    cpu = st.cpu_delta(before, sampler.cpu())
    acked = sum(messages[i].readings for i in pub.acked)
    sent = sum(messages[i].readings for i in pub.sent)
    in_db = st.count_between(url, messages)
    e2e: dict[str, Any] = {
        "readings_per_s": round(acked / pub.elapsed) if acked else None,
        "messages_per_s": round(len(pub.acked) / pub.elapsed) if acked else None,
        "expected": sent,
        "acknowledged": acked,
        "stored": in_db,
        "basis": "first send → last PUBACK (PUBACK only after the commit)",
    }
    latency: dict[str, Any] = {}
    for fraction in (0.5, 0.8):
        offered = fraction * (e2e["readings_per_s"] or 0)
        if not offered:
            continue
        step(f"{label}: end to end at {fraction:.0%} of capacity ({offered:,.0f} readings/s)")
        msgs = load.messages(shape, max(shape, int(offered * cfg.duration_s)))
        rate = offered / (sum(m.readings for m in msgs) / len(msgs))
        pub_p, stored_p = _engine_phase(port, url, msgs, cfg, rate)
        puback = [(pub_p.acked[i] - pub_p.sent[i]) * 1000 for i in pub_p.acked]
        db = [
            (stored_p[msgs[i].first_key] - pub_p.sent[i]) * 1000
            for i in pub_p.sent
            if msgs[i].first_key in stored_p
        ]
        db_p99 = st.pct(db, 0.99)
        latency[f"{fraction:.0%}"] = st.latency_summary(
            puback,
            offered,
            "send → PUBACK (≥ send → committed)",
            extra=f"send → stored_at (transaction start) p99 {db_p99 or 0:.0f} ms"
            f"; {len(pub_p.acked)}/{len(msgs)} acknowledged",
        )
    peak = dict(sampler.peak_rss)
    peak.pop("amqtt_alone", None)
    cpu.pop("amqtt_alone", None)
    return st.summarise_shape(shape, stages, e2e, latency, cpu, peak)


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
    ap.add_argument("--mqtt-port", type=int, help="a running engine's broker port")
    ap.add_argument("--database-url", help="its database (with --mqtt-port)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    cfg = Config(
        shapes=tuple(int(s) for s in args.shapes.split(",")),
        duration_s=args.duration,
        probe_readings=args.probe_readings,
        sensors=args.sensors,
        clients=args.clients,
        window=args.window,
        mqtt_port=args.mqtt_port,
        database_url=args.database_url,
    )
    with st.sigterm_as_exit():
        report = run(cfg, step=lambda what: print(f"… {what}", file=sys.stderr))
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        from rich.console import Console

        st.render(report, Console().print)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
