"""Run a chaos soak: start an engine, offer a fleet at a fixed rate, inject faults, keep books."""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

from benchmarks.chaos.engines import Distributed, Embedded, Engine, FaultSpec
from benchmarks.chaos.fleet import FleetRun, Message, build_messages, event_start
from benchmarks.chaos.ledger import (
    HEALTH_RULES,
    FaultRecord,
    Ledger,
    attribute,
    book,
    compare_alerts,
    offered_series,
    recovery,
    stored_series,
)

Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class ChaosConfig:
    """What to run: engine, load, length, seed; ``short`` is the CI profile (brief faults)."""

    engine: str = "embedded"
    duration_s: float = 600.0
    rate: float = 40.0  # MQTT messages per second (each 1–4 readings)
    sensors: int = 200
    seed: int = 13
    short: bool = False
    clients: int = 8
    bad_every: int = 50
    warmup_s: float = 15.0
    cooldown_s: float = 20.0
    drain_s: float = 180.0
    alerts: bool = True
    workdir: Path | None = None
    keep: bool = False


def schedule(kinds: Sequence[tuple[str, str, float]], config: ChaosConfig) -> list[FaultSpec]:
    """The faults in a seeded order at seeded times, one after another, never overlapping."""
    rng = random.Random(f"civicpulse-chaos/{config.seed}/{config.engine}")
    order = list(kinds)
    rng.shuffle(order)
    busy = sum(max(hold, 8.0) for _k, _t, hold in order)  # a restart takes a few seconds too
    slack = config.duration_s - config.warmup_s - config.cooldown_s - busy
    if slack < 0:
        raise ValueError(
            f"{len(order)} faults need {busy + config.warmup_s + config.cooldown_s:.0f}s;"
            f" run longer than {config.duration_s:.0f}s"
        )
    cuts = sorted(rng.uniform(0, slack) for _ in order)
    gaps = [b - a for a, b in zip([0.0, *cuts], cuts, strict=False)]
    out, at = [], config.warmup_s
    for (kind, target, hold), gap in zip(order, gaps, strict=True):
        at += gap
        out.append(FaultSpec(kind, target, round(at, 1), hold))
        at += max(hold, 8.0)
    return out


def _inject(engine: Engine, spec: FaultSpec, t0: float, say: Say) -> FaultRecord:
    record = FaultRecord(spec.kind, spec.target, at=time.time(), until=time.time())
    try:
        record.how = engine.begin(spec)
        when = time.time() - t0
        say(f"[{when:6.1f}s] fault: {spec.label} ({record.how}), hold {spec.hold_s:.0f}s")
        time.sleep(spec.hold_s)
        record.back = engine.end(spec)
    except Exception as exc:  # a fault that could not be done or undone is reported
        record.error = f"{type(exc).__name__}: {exc}"[:300]
        say(f"[{time.time() - t0:6.1f}s] fault {spec.label} FAILED: {record.error}")
    record.until = time.time()
    say(f"[{time.time() - t0:6.1f}s] back: {spec.label} ({record.back})")
    return record


def _count_stored(url: str) -> int:
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            return int(conn.execute("SELECT count(*) FROM readings").fetchone()[0])  # type: ignore[index]
    except psycopg.Error:
        return -1


def _drain(fleet: FleetRun, url: str, want: Callable[[], int], timeout: float, say: Say) -> None:
    """Until every message is acknowledged and the stored count has caught up (or stopped)."""
    deadline = time.monotonic() + timeout
    if not fleet.wait_acked(timeout):
        say(f"drain: {fleet.sent - fleet.acked} message(s) still unacknowledged")
    last, still = -1, 0
    while time.monotonic() < deadline:
        n = _count_stored(url)
        if n >= want():
            time.sleep(3.0)  # late replays would show as duplicates: let them land
            return
        still = still + 1 if n == last else 0
        if still >= 20:
            say(f"drain: stored count stuck at {n}")
            return
        last = n
        time.sleep(1.0)


def _alerts(url: str, messages: Sequence[Message]) -> list[tuple[str, str]]:
    last: dict[str, datetime] = {}
    for m in messages:
        last[m.sensor_id] = max(m.event_time, last.get(m.sensor_id, m.event_time))
    with psycopg.connect(url, connect_timeout=10) as conn:
        rows = conn.execute("SELECT sensor_id, rule, opened_at FROM alert_events").fetchall()
    # As in the reference: a health alert opened after a sensor's last message is its silence
    # at the end of the run, not a finding. Data alerts open at the wall clock here: all count.
    return [(s, r) for s, r, at in rows if r not in HEALTH_RULES or (s in last and at <= last[s])]


def _kind(topic: str) -> str:
    parts = topic.split("/")
    return parts[2] if len(parts) == 4 else ""


def _reference_alerts(url: str, messages: Sequence[Message], say: Say) -> list[tuple[str, str]]:
    """The same seed's messages, fault-free, through the same pipeline into a scratch database."""
    from benchmarks.detect_replay import Msg, replay
    from rules.thresholds import Thresholds
    from sensors.catalogue import KINDS
    from sensors.validation import DEFAULT_LIMITS
    from storage import migrate

    name = f"chaos_ref_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    ref = make_conninfo(url, dbname=name)
    try:
        migrate(ref)
        kinds = set(KINDS)  # a bad message on an unknown kind is a dead letter in both runs
        sent = [m for m in messages if m.sent_at is not None and _kind(m.topic) in kinds]
        msgs = [Msg(m.topic, m.payload, m.event_time, m.sensor_id) for m in sent]
        t0 = time.monotonic()
        # the engines run with the default limits: a reading they refuse must not alert here
        stored, _stats = replay(ref, msgs, Thresholds(), limits=DEFAULT_LIMITS)
        took = time.monotonic() - t0
        say(f"reference run: {len(msgs)} messages replayed fault-free in {took:.0f}s")
        return [(a.sensor_id, a.rule) for a in stored]
    finally:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def build_engine(config: ChaosConfig, workdir: Path) -> Engine:
    if config.engine == "distributed":
        return Distributed(workdir)
    if config.engine == "embedded":
        return Embedded(workdir)
    raise ValueError(f"unknown engine {config.engine!r} (distributed or embedded)")


def run_chaos(config: ChaosConfig, say: Say = print) -> Ledger:
    """One soak under the seeded fault schedule; everything started is stopped on return."""
    workdir = config.workdir or Path(tempfile.mkdtemp(prefix="civicpulse-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    engine = build_engine(config, workdir)
    ledger = Ledger(config.engine, config.seed, config.duration_s, config.rate)
    fleet: FleetRun | None = None
    try:
        say(f"starting the {config.engine} engine in {workdir}")
        engine.start()
        faults = schedule(engine.fault_kinds(config.short), config)
        say("schedule: " + ", ".join(f"{f.label} @{f.at_s:.0f}s/{f.hold_s:.0f}s" for f in faults))
        messages = build_messages(
            config.sensors, config.seed, config.rate, config.duration_s,
            event_start(datetime.now(UTC)), config.bad_every,
        )  # fmt: skip
        run = uuid.uuid4().hex[:6]
        fleet = FleetRun(
            messages, config.rate, engine.mqtt_host, engine.mqtt_port, run, config.clients
        )
        fleet.start()
        t0 = ledger.started = fleet.started
        records: list[FaultRecord] = []
        ticker_stop = threading.Event()

        def ticker() -> None:
            while not ticker_stop.wait(30.0):
                say(f"[{time.time() - t0:6.1f}s] sent {fleet.sent}, acked {fleet.acked}")

        threading.Thread(target=ticker, daemon=True).start()
        for spec in faults:
            delay = t0 + spec.at_s - time.time()
            if delay > 0:
                time.sleep(delay)
            records.append(_inject(engine, spec, t0, say))
        fleet.wait_published(config.duration_s + 60)
        ticker_stop.set()
        say(f"[{time.time() - t0:6.1f}s] offered load done: sent {fleet.sent}, acked {fleet.acked}")

        def want() -> int:
            return sum(len(m.samples) for m in messages if m.good and m.acked_at is not None)

        _drain(fleet, engine.database_url, want, config.drain_s, say)
        end = time.time()
        ledger.problems += engine.health()
        lost_at = book(ledger, messages, engine.database_url)
        recovery(records, offered_series(messages), stored_series(engine.database_url), end)
        attribute(records, lost_at)
        ledger.faults = records
        ledger.problems += [f"{r.label}: {r.error}" for r in records if r.error]
        if config.alerts:
            try:
                chaos = _alerts(engine.database_url, messages)
                reference = _reference_alerts(engine.database_url, messages, say)
                ledger.alerts = compare_alerts(chaos, reference)
            except Exception as exc:  # the ledger still stands without the comparison
                ledger.problems.append(f"alert comparison failed: {type(exc).__name__}: {exc}")
        return ledger
    finally:
        if fleet is not None:
            fleet.close()
        engine.close()
        if not config.keep and config.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


def render(ledger: Ledger) -> None:
    """The ledger as rich tables on stdout."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 150)
    books = Table(title=f"chaos ledger — {ledger.engine}, seed {ledger.seed}, "
                  f"{ledger.duration_s / 60:.1f} min at {ledger.rate:g} msg/s")  # fmt: skip
    books.add_column("", style="bold")
    books.add_column("messages", justify="right")
    books.add_column("readings", justify="right")
    books.add_row("sent", str(ledger.messages_sent), str(ledger.readings_sent))
    books.add_row("acknowledged (PUBACK)", str(ledger.messages_acked), str(ledger.readings_acked))
    books.add_row("never acknowledged", str(ledger.messages_unacked), "")
    books.add_row("stored", "", str(ledger.readings_stored))
    books.add_row("bad, acknowledged", str(ledger.dead_letters_sent), "")
    books.add_row("dead-lettered", str(ledger.dead_lettered), "")
    books.add_row("dead letter missing", str(ledger.dead_letters_missing), "")
    books.add_row("dead-lettered twice+", str(ledger.dead_letters_repeated), "")
    style = "green" if ledger.ok else "bold red"
    books.add_row(f"[{style}]LOST (acked, not stored)", "", f"[{style}]{ledger.lost}")
    books.add_row(f"[{style}]DUPLICATED (key twice)", "", f"[{style}]{ledger.duplicated}")
    books.add_row("1-min aggregates ≠ raw rows", "", str(ledger.aggregate_mismatches))
    books.add_row("stored value ≠ sent value", "", str(ledger.value_mismatches))
    books.add_row("stored, never sent", "", str(ledger.readings_unexpected))
    latency = (
        f"{ledger.puback_p50_ms:g} ms / {ledger.puback_p99_ms:g} ms / {ledger.puback_max_s:g} s"
    )
    books.add_row("publish→PUBACK p50 / p99 / max", "", latency)
    console.print(books)
    faults = Table(title="faults")
    for col in ("t (s)", "fault", "how", "back", "held (s)"):
        faults.add_column(col, justify="right" if col.endswith("(s)") else "left")
    for col in ("recovered (s)", "rate back (s)", "backlog peak", "lost"):
        faults.add_column(col, justify="right")
    for f in ledger.faults:
        faults.add_row(
            f"{f.at - ledger.started:.0f}", f.label, f.how, f.back or f.error,
            f"{f.until - f.at:.1f}",
            "-" if f.recovered_s is None else f"{f.recovered_s:.0f}",
            "-" if f.rate_back_s is None else f"{f.rate_back_s:.0f}",
            str(f.backlog_peak), str(f.lost),
        )  # fmt: skip
    console.print(faults)
    if ledger.alerts:
        a = ledger.alerts
        console.print(
            f"alerts vs a fault-free run of the same seed: reference {a['reference']},"
            f" run {a['run']}, missed {a['missed']}, doubled {a['doubled']},"
            f" invented {a['invented']}; health alerts run {a['health_alerts_in_run']}"
            f" / reference {a['health_alerts_in_reference']}"
        )
        for e in a["examples"]:
            console.print(f"  {e}")
    for p in ledger.problems:
        console.print(f"[yellow]problem:[/] {p}")
    if ledger.lost_examples:
        console.print("lost, e.g.: " + "; ".join(ledger.lost_examples))
    if ledger.ok:
        console.print("[green]OK: 0 lost, 0 duplicated")
    else:
        console.print("[bold red]FAILED: acknowledged readings lost or duplicated")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m benchmarks.chaos.run --engine embedded --minutes 10``."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--engine", choices=("embedded", "distributed"), default="embedded")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--rate", type=float, default=40.0, help="MQTT messages per second")
    p.add_argument("--sensors", type=int, default=200)
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--short", action="store_true", help="CI profile: one of each kind, brief")
    p.add_argument("--no-alerts", action="store_true", help="Skip the fault-free alert reference")
    p.add_argument("--json", action="store_true", help="Print the ledger as JSON on stdout")
    p.add_argument("--workdir", type=Path, default=None)
    args = p.parse_args(argv)
    config = ChaosConfig(
        engine=args.engine, duration_s=args.minutes * 60, rate=args.rate, sensors=args.sensors,
        seed=args.seed, short=args.short, alerts=not args.no_alerts, workdir=args.workdir,
    )  # fmt: skip

    def say(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    ledger = run_chaos(config, say)
    if args.json:
        print(json.dumps(ledger.to_json(), indent=2, default=str))
    else:
        render(ledger)
    return 0 if ledger.ok else 1


if __name__ == "__main__":
    REPO = Path(__file__).resolve().parents[2]
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
