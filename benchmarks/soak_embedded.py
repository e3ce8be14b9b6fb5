"""Soak of the embedded engine: a fleet publishing steadily for minutes, memory sampled throughout.

Starts ``civicpulse run`` in a temp dir (embedded PostgreSQL, no API), then ``--sensors``
devices (the simulator's mix, each on its own connection's share) publish ``--shape``-reading
messages at ``--rate`` readings/s for ``--minutes``. Every ``--sample-s`` seconds it records the
engine's RSS (and its PostgreSQL's); at the end it prints, per minute, the engine's RSS and
PUBACK latency, the peak, and the RSS slope over the soak after its first minute (a least-squares
fit, MB per minute: ≈ 0 when memory is flat), and checks that every acknowledged reading is
stored exactly once.

    .venv/bin/python benchmarks/soak_embedded.py --minutes 10 --sensors 1000 --rate 3000
    .venv/bin/python benchmarks/soak_embedded.py --minutes 1 --sensors 100 --json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import psycopg

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import throughput_stages as st
from benchmarks.throughput_embedded import start_engine

MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SoakConfig:
    """One soak: how long, how big a fleet, how fast, in what shape."""

    minutes: float = 10.0
    sensors: int = 1000
    rate: float = 3000.0  # readings/s offered
    shape: int = 6
    clients: int = 16
    sample_s: float = 5.0


class RssSampler:
    """Engine and PostgreSQL RSS every ``every_s`` seconds, in a thread: (t, engine, pg) in MB."""

    def __init__(self, engine_pid: int, pg_needle: str, every_s: float) -> None:
        self._engine = psutil.Process(engine_pid)
        self._pg = st.cmdline_group(pg_needle)
        self._every = every_s
        self.samples: list[tuple[float, float, float]] = []
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True, name="soak-rss")

    def start(self) -> RssSampler:
        self._sample()
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self._sample()

    def _sample(self) -> None:
        try:
            engine = self._engine.memory_info().rss / MB
        except psutil.Error:
            return
        pg = 0.0
        for p in self._pg():
            try:
                pg += p.memory_info().rss / MB
            except psutil.Error:
                continue
        self.samples.append((time.monotonic() - self._t0, engine, pg))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sample()


def slope_mb_per_min(samples: list[tuple[float, float, float]], after_s: float) -> float | None:
    """Least-squares slope of the engine's RSS (MB/min) over the samples after ``after_s``."""
    xs = np.array([t for t, _, _ in samples if t >= after_s])
    ys = np.array([rss for t, rss, _ in samples if t >= after_s])
    if xs.size < 3 or np.ptp(xs) == 0:
        return None
    return float(np.polyfit(xs / 60.0, ys, 1)[0])


def run(cfg: SoakConfig, step: st.Step = st.no_step) -> dict[str, Any]:
    """Run the soak; returns the report (see :func:`render`)."""
    workdir = Path(tempfile.mkdtemp(prefix="cp-soak-"))
    engine = sampler = None
    minutes: list[dict[str, Any]] = []
    acked = sent = 0
    try:
        step("starting civicpulse run (embedded PostgreSQL) in a temp dir")
        port = st.free_port()
        engine, url = start_engine(workdir, port)
        load = st.Load(cfg.sensors, cfg.clients, after=st.newest_reading(url))
        sampler = RssSampler(engine.pid, str(workdir), cfg.sample_s).start()
        first_time = None
        whole = int(cfg.minutes)
        parts = [60.0] * whole + ([(cfg.minutes - whole) * 60.0] if cfg.minutes > whole else [])
        for i, seconds in enumerate(parts, 1):
            messages = load.messages(cfg.shape, int(cfg.rate * seconds))
            if first_time is None:  # a device's message may start before the first one sent
                first_time = min(m.first_key[2] for m in messages)
            step(f"minute {i}/{len(parts)}: {len(messages):,} messages at {cfg.rate:,.0f}/s")
            pub = st.publish(port, messages, cfg.clients, rate=cfg.rate / cfg.shape)
            lat = [(pub.acked[k] - pub.sent[k]) * 1000 for k in pub.acked]
            sent += sum(messages[k].readings for k in pub.sent)
            acked += sum(messages[k].readings for k in pub.acked)
            minutes.append(
                {
                    "minute": i,
                    "readings": sum(m.readings for m in messages),
                    "engine_rss_mb": round(sampler.samples[-1][1], 1),
                    "postgres_rss_mb": round(sampler.samples[-1][2], 1),
                    "puback_p50_ms": st.pct(lat, 0.50),
                    "puback_p99_ms": st.pct(lat, 0.99),
                }
            )
        sampler.stop()
        with psycopg.connect(url) as conn:
            row = conn.execute(
                "SELECT count(*), count(DISTINCT (sensor_id, metric, time)) FROM readings"
                " WHERE time >= %s",
                (first_time,),
            ).fetchone()
        stored, distinct = (int(row[0]), int(row[1])) if row else (0, 0)
    finally:
        if sampler is not None:
            sampler.stop()
        if engine is not None:
            step("stopping civicpulse run")
            st.stop(engine)
        shutil.rmtree(workdir, ignore_errors=True)
    samples = sampler.samples if sampler else []
    warm = [s for s in samples if s[0] >= 60.0] or samples
    return {
        "engine": "embedded",
        "machine": st.machine(),
        "config": {
            "minutes": cfg.minutes,
            "sensors": cfg.sensors,
            "offered_readings_per_s": cfg.rate,
            "readings_per_message": cfg.shape,
            "clients": cfg.clients,
        },
        "minutes": minutes,
        "engine_rss_mb": {
            "start": round(samples[0][1], 1) if samples else None,
            "after_first_minute": round(warm[0][1], 1) if warm else None,
            "peak": round(max(s[1] for s in samples), 1) if samples else None,
            "end": round(samples[-1][1], 1) if samples else None,
            "slope_mb_per_min_after_first_minute": (
                None if (v := slope_mb_per_min(samples, 60.0)) is None else round(v, 2)
            ),
        },
        "postgres_rss_mb_peak": round(max(s[2] for s in samples), 1) if samples else None,
        "readings": {"sent": sent, "acknowledged": acked, "stored": stored, "distinct": distinct},
    }


def render(report: dict[str, Any], print_: Any) -> None:
    """The report as a table and a verdict line."""
    from rich.table import Table

    c = report["config"]
    table = Table(
        title=f"embedded soak: {c['sensors']:,} sensors, {c['offered_readings_per_s']:,.0f}"
        f" readings/s in {c['readings_per_message']}-reading messages"
    )
    for col in ("minute", "readings", "engine RSS MB", "PostgreSQL RSS MB", "PUBACK p50 ms",
                "PUBACK p99 ms"):  # fmt: skip
        table.add_column(col, justify="right")
    for m in report["minutes"]:
        table.add_row(
            str(m["minute"]),
            f"{m['readings']:,}",
            f"{m['engine_rss_mb']:.1f}",
            f"{m['postgres_rss_mb']:.1f}",
            f"{m['puback_p50_ms']:.0f}",
            f"{m['puback_p99_ms']:.0f}",
        )
    print_(table)
    rss, n = report["engine_rss_mb"], report["readings"]
    print_(
        f"engine RSS: start {rss['start']} MB, after the first minute {rss['after_first_minute']}"
        f" MB, peak {rss['peak']} MB, end {rss['end']} MB, slope"
        f" {rss['slope_mb_per_min_after_first_minute']} MB/min; PostgreSQL peak"
        f" {report['postgres_rss_mb_peak']} MB"
    )
    print_(
        f"readings: sent {n['sent']:,}, acknowledged {n['acknowledged']:,}, stored"
        f" {n['stored']:,} ({n['distinct']:,} distinct)"
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--sensors", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=3000.0, help="offered readings per second")
    ap.add_argument("--shape", type=int, default=6, help="readings per MQTT message")
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--sample-s", type=float, default=5.0, help="seconds between RSS samples")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    cfg = SoakConfig(
        minutes=args.minutes,
        sensors=args.sensors,
        rate=args.rate,
        shape=args.shape,
        clients=args.clients,
        sample_s=args.sample_s,
    )
    report = run(cfg, step=lambda what: print(f"… {what}", file=sys.stderr))
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    else:
        from rich.console import Console

        render(report, Console().print)
    n = report["readings"]
    ok = n["acknowledged"] == n["sent"] == n["stored"] == n["distinct"]
    if not ok:
        print("not every acknowledged reading was stored exactly once", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
