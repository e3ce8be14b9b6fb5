"""Detection benchmark: labelled scenarios and real Aberdeen data through the real pipeline.

Path: scenario messages → ingest ``route_message`` (decode + validate, dead letters) →
``ReadingPipeline.process`` (real PostgreSQL: COPY, insert, detectors, alerts in one
transaction) → ``pipeline.tick`` at 1-s resolution of simulated time → ``alert_events``.
MQTT and Kafka are left out: they move bytes, they do not decide alerts. Prints, per rule,
precision, recall, median and p95 detection delay against the rule's own window, and
alerts per sensor-day.

    python benchmarks/detect_bench.py --database-url postgresql://postgres@127.0.0.1:55432/x
    civicpulse bench detect --database-url ... [--aberdeen ../shared/data/aberdeen-air]
"""

from __future__ import annotations

import argparse
import csv
import heapq
import random
import statistics
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import NamedTuple

import psycopg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from rules.alerts import RULES  # noqa: E402
from rules.thresholds import Thresholds  # noqa: E402
from sensors.catalogue import KINDS  # noqa: E402
from sensors.intake import route_message  # noqa: E402
from sensors.reading import Sample  # noqa: E402
from sensors.topics import SensorAddress, topic_for  # noqa: E402
from sensors.validation import Limits  # noqa: E402
from simulator.anomalies import Scenario, ScenarioSpec, build_scenario  # noqa: E402
from simulator.anomaly_labels import Label  # noqa: E402
from simulator.fleet import PayloadFormat, encode_samples  # noqa: E402
from storage import DeadLetterStore, ReadingStore, migrate  # noqa: E402
from stream_processors.detection import Detection  # noqa: E402
from stream_processors.pipeline import ReadingPipeline  # noqa: E402

LIMITS = Limits(max_past=timedelta(days=3650), max_future=timedelta(days=3650))


@dataclass(frozen=True, slots=True)
class Msg:
    """A message to replay: MQTT topic, payload, event time (and arrival, if held back)."""

    topic: str
    payload: bytes
    time: datetime
    sensor_id: str
    arrival: datetime | None = None  # None: arrives at its event time

    @property
    def arrives(self) -> datetime:
        """When the platform receives it."""
        return self.arrival or self.time


def hold_back(messages: Sequence[Msg], share: float, max_s: float, seed: int) -> list[Msg]:
    """Messages in arrival order when ``share`` of them arrive 1 min … ``max_s`` late
    (a device buffering while offline, a redelivery after a crash)."""
    rng = random.Random(seed)
    out = []
    for m in messages:
        if rng.random() < share:
            m = replace(m, arrival=m.time + timedelta(seconds=rng.uniform(60.0, max_s)))
        out.append(m)
    return sorted(out, key=lambda m: m.arrives)


class StoredAlert(NamedTuple):
    sensor_id: str
    rule: str
    opened_at: datetime
    resolved_at: datetime | None
    count: int
    details: dict


def fresh_database(server_url: str, name: str) -> str:
    """Drop and create database ``name`` on the server of ``server_url``; return its URL."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = server_url.rpartition("/")
    url = f"{base}/{name}"
    migrate(url)
    return url


def replay(
    url: str,
    messages: Sequence[Msg],
    thresholds: Thresholds,
    batch_s: float = 1800.0,
) -> tuple[list[StoredAlert], dict[str, float]]:
    """Replay ``messages`` (time-ordered) through the pipeline; the tick runs whenever a
    sensor's silence reaches its stale limit (as an engine ticking every second would)."""
    sim_now = [messages[0].arrives]
    pipeline = ReadingPipeline(
        ReadingStore(url), detection=Detection(thresholds), clock=lambda: sim_now[0]
    )
    letters = DeadLetterStore(url)
    last_seen: dict[str, tuple[float, float]] = {}  # sensor -> (last time, stale after s)
    started, n_readings, n_letters, ticks = time.perf_counter(), 0, 0, 0

    ticked = messages[0].arrives.timestamp()
    dues: list[tuple[float, str]] = []  # heap of (instant a silence reaches its limit, sensor)

    def earliest_due() -> float:
        while dues:
            d, sid = dues[0]
            last, after = last_seen[sid]
            if d != last + after + 1.0 or d <= ticked:
                heapq.heappop(dues)  # superseded by a later reading, or already ticked
                continue
            return d
        return float("inf")

    def tick_until(t: float) -> None:
        # Ticks in time order at each instant a sensor's silence reaches its stale limit.
        nonlocal ticks, ticked
        due = sorted(
            {
                last + after + 1.0
                for last, after in last_seen.values()
                if ticked < last + after + 1.0 <= t
            }
        )
        for d in due:
            pipeline.tick(datetime.fromtimestamp(d, tz=UTC))
            ticks += 1
        ticked = max(ticked, t)

    i = 0
    while i < len(messages):
        tick_until(messages[i].arrives.timestamp())
        end = messages[i].arrives + timedelta(seconds=batch_s)
        batch: list[Msg] = []
        # A batch ends early where some sensor's silence reaches its limit, so that tick
        # sees exactly the readings stored before that instant.
        while (
            i < len(messages)
            and messages[i].arrives < end
            and (not batch or messages[i].arrives.timestamp() < earliest_due())
        ):
            m = messages[i]
            batch.append(m)
            kind = m.topic.split("/")[2]
            factor = float(thresholds.for_sensor("aberdeen", m.sensor_id)["health.stale_factor"])
            newest = max(m.time.timestamp(), last_seen.get(m.sensor_id, (0.0, 0.0))[0])
            last_seen[m.sensor_id] = (newest, factor * KINDS[kind].expected_interval_s)
            heapq.heappush(dues, (sum(last_seen[m.sensor_id]) + 1.0, m.sensor_id))
            i += 1
        values, dead = [], []
        for m in batch:
            routed = route_message(m.topic, m.payload, m.time, LIMITS)
            values += [v for _, v in routed.readings]
            if routed.deadletter is not None:
                dead.append((routed.deadletter, f"bench:{m.sensor_id}:{m.time.isoformat()}"))
        sim_now[0] = batch[-1].arrives
        if values:
            pipeline.process(values)
            n_readings += len(values)
        letters.write(dead)
        n_letters += len(dead)
        tick_until(sim_now[0].timestamp())
        pipeline.tick(sim_now[0])
        ticks += 1
    tick_until(messages[-1].arrives.timestamp())
    elapsed = time.perf_counter() - started
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT sensor_id, rule, opened_at, resolved_at, count, details"
            " FROM alerts ORDER BY opened_at"
        ).fetchall()
    # A sensor whose part of the scenario has ended is silent, not stale: drop those alerts.
    last: dict[str, datetime] = {}
    for m in messages:
        last[m.sensor_id] = max(m.time, last.get(m.sensor_id, m.time))
    alerts = [a for a in map(StoredAlert._make, rows) if a.opened_at <= last[a.sensor_id]]
    stats = {
        "readings": n_readings,
        "dead_letters": n_letters,
        "ticks": ticks,
        "seconds": elapsed,
        "readings_per_s": n_readings / elapsed,
    }
    return alerts, stats


def rule_window(rule: str, kind: str, label: Label, params: dict) -> float:
    """How long the rule must wait by its own definition (the delay target is this + 5 s)."""
    interval = KINDS[kind].expected_interval_s
    if rule == "sensor_stale":
        return float(params["health.stale_factor"]) * interval
    if rule == "sensor_flatline":
        return (int(params["health.flatline_count"]) - 1) * interval
    if rule == "energy_out_of_hours":
        return (int(params["energy.ooh_readings"]) - 1) * interval
    return label.window_s


@dataclass(frozen=True, slots=True)
class RuleScore:
    rule: str
    labels: int
    alerts: int
    precision: float
    recall: float
    median_delay_s: float | None
    p95_delay_s: float | None
    window_s: float  # median of the labels' rule windows
    median_excess_s: float | None  # median of (delay - that label's window): target <= 5 s
    per_sensor_day: float

    @property
    def passed(self) -> bool:
        return (
            self.precision >= 0.95
            and self.recall >= 0.95
            and (self.median_excess_s is not None and self.median_excess_s <= 5.0)
        )


def score(
    labels: Sequence[Label],
    alerts: Sequence[StoredAlert],
    sensor_days: dict[str, float],
    thresholds: Thresholds,
) -> list[RuleScore]:
    """Per-rule precision, recall and delay; an alert matches a label of its sensor and rule
    when their intervals overlap (label end + the rule's window + 2 intervals of grace)."""
    params = thresholds.for_sensor("aberdeen", "")
    out = []
    for rule in sorted({lb.rule for lb in labels} | {a.rule for a in alerts}):
        ls = [lb for lb in labels if lb.rule == rule]
        al = [a for a in alerts if a.rule == rule]
        kind = ls[0].kind if ls else "air_quality"
        matched_alerts: set[int] = set()
        delays, windows, excess = [], [], []
        for lb in ls:
            window = rule_window(rule, lb.kind, lb, params)
            windows.append(window)
            grace = window + 2 * KINDS[lb.kind].expected_interval_s + 60
            hits = [
                j
                for j, a in enumerate(al)
                if a.sensor_id == lb.sensor_id
                and a.opened_at <= lb.end + timedelta(seconds=grace)
                and (a.resolved_at is None or a.resolved_at >= lb.start)
            ]
            matched_alerts.update(hits)
            if hits:
                first = min(al[j].opened_at for j in hits)
                delays.append(max((first - lb.start).total_seconds(), 0.0))
                excess.append(delays[-1] - window)
        kinds_of_rule = {lb.kind for lb in ls} or {kind}
        days = sum(sensor_days.get(k, 0.0) for k in kinds_of_rule)
        out.append(
            RuleScore(
                rule,
                len(ls),
                len(al),
                len(matched_alerts) / len(al) if al else (1.0 if not ls else 0.0),
                len(delays) / len(ls) if ls else float("nan"),
                statistics.median(delays) if delays else None,
                _p95(delays),
                statistics.median(windows) if windows else 0.0,
                statistics.median(excess) if excess else None,
                len(al) / days if days else 0.0,
            )
        )
    return out


def _p95(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def print_scores(scores: Iterable[RuleScore], out: Callable[[str], None] = print) -> None:
    out(
        f"{'rule':<26}{'labels':>7}{'alerts':>7}{'prec':>7}{'recall':>7}"
        f"{'med s':>9}{'p95 s':>9}{'window s':>10}{'med-win':>9}{'/sens-day':>10}  ok"
    )
    for s in scores:
        out(
            f"{s.rule:<26}{s.labels:>7}{s.alerts:>7}{s.precision:>7.3f}{s.recall:>7.3f}"
            f"{_fmt(s.median_delay_s):>9}{_fmt(s.p95_delay_s):>9}{s.window_s:>10,.0f}"
            f"{_fmt(s.median_excess_s):>9}"
            f"{s.per_sensor_day:>10.3f}  {'PASS' if s.passed else 'FAIL'}"
        )


def scenario_messages(scenario: Scenario) -> list[Msg]:
    return [Msg(m.topic, m.payload, m.time, m.sensor_id) for m in scenario.messages]


def aberdeen_messages(data_dir: Path) -> tuple[list[Msg], dict[str, float]]:
    """Sensor.Community SDS011 files (P1 = PM10, P2 = PM2.5) as civicpulse JSON messages."""
    msgs = []
    days: dict[str, float] = {}
    for path in sorted(data_dir.glob("sds011_sensor_*.csv")):
        sid = "sc-" + path.name.split("_")[2]
        topic = topic_for(SensorAddress("aberdeen", "air_quality", sid))
        times = []
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh, delimiter=";"):
                try:
                    t = datetime.fromisoformat(row["timestamp"]).replace(tzinfo=UTC)
                    samples = (
                        Sample(metric="pm10", value=float(row["P1"]), time=t),
                        Sample(metric="pm2_5", value=float(row["P2"]), time=t),
                    )
                except (KeyError, ValueError):
                    continue
                msgs.append(
                    Msg(topic, encode_samples(PayloadFormat.CIVICPULSE_JSON, sid, samples), t, sid)
                )
                times.append(t)
        days[sid] = (max(times) - min(times)).total_seconds() / 86400 if times else 0.0
    msgs.sort(key=lambda m: (m.time, m.sensor_id))
    return msgs, days


def run_aberdeen(
    server_url: str, data_dir: Path, thresholds: Thresholds, out: Callable[[str], None] = print
) -> None:
    msgs, days = aberdeen_messages(data_dir)
    url = fresh_database(server_url, "civicpulse_bench_aberdeen")
    alerts, stats = replay(url, msgs, thresholds)
    sensor_days = sum(days.values())
    out(
        f"\nReal data: {len(days)} Sensor.Community SDS011 sensors in Aberdeen, "
        f"{sensor_days:.1f} sensor-days, {stats['readings']:,} readings "
        f"({stats['readings_per_s']:,.0f} readings/s through the pipeline)"
    )
    by_rule = Counter(a.rule for a in alerts)
    for rule, n in sorted(by_rule.items()):
        why = RULES[rule].description if rule in RULES else ""
        out(f"  {rule:<26}{n:>6} alerts  {n / sensor_days:7.3f}/sensor-day  ({why})")
    reasons: dict[str, list[str]] = defaultdict(list)
    for a in alerts:
        if len(reasons[a.rule]) < 2:
            keep = {k: v for k, v in a.details.items() if k != "pollutants"}
            reasons[a.rule].append(f"{a.sensor_id} {a.opened_at:%Y-%m-%d %H:%M} {keep}")
    for rule, examples in sorted(reasons.items()):
        for e in examples:
            out(f"    e.g. {rule}: {e[:150]}")
    if not alerts:
        out("  no alerts")


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--database-url",
        required=True,
        help="any database on the PostgreSQL server to use; bench DBs are created",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--aberdeen",
        type=Path,
        default=None,
        help="directory with sds011_sensor_*.csv (e.g. ../shared/data/aberdeen-air)",
    )
    p.add_argument(
        "--keep-recording",
        type=Path,
        default=None,
        help="also write the scenario recording here (labels beside it)",
    )
    p.add_argument(
        "--thresholds",
        type=Path,
        default=None,
        help="a thresholds TOML file (default: the built-in defaults)",
    )
    p.add_argument(
        "--late-share",
        type=float,
        default=0.0,
        help="hold back this share of messages (0-1) to arrive late, in arrival order",
    )
    p.add_argument(
        "--late-max-s", type=float, default=3 * 3600.0, help="longest hold-back, seconds"
    )
    args = p.parse_args(argv)
    thresholds = (
        Detection.from_file(args.thresholds).thresholds if args.thresholds else Thresholds()
    )
    scenario = build_scenario(ScenarioSpec(seed=args.seed))
    if args.keep_recording:
        from simulator.anomaly_labels import labels_path, write_labels
        from simulator.recording import write_recording

        write_recording(args.keep_recording, scenario.messages)
        write_labels(labels_path(args.keep_recording), scenario.labels)
    url = fresh_database(args.database_url, "civicpulse_bench_detect")
    messages = scenario_messages(scenario)
    if args.late_share > 0:
        messages = hold_back(messages, args.late_share, args.late_max_s, args.seed)
        late = sum(1 for m in messages if m.arrival is not None)
        out(f"{late:,} of {len(messages):,} messages held back up to {args.late_max_s:,.0f} s")
    alerts, stats = replay(url, messages, thresholds)
    counts = Counter(scenario.sensors.values())
    sensor_days = {k: counts[k] * scenario.spec.days[k] for k in counts}
    out(
        f"Labelled scenario seed {args.seed}: {len(scenario.sensors)} sensors, "
        f"{len(scenario.labels)} labels, {stats['readings']:,} readings, "
        f"{stats['dead_letters']} dead letters, {stats['ticks']:,} ticks, "
        f"{stats['seconds']:.1f} s ({stats['readings_per_s']:,.0f} readings/s incl. detection)"
    )
    scores = score(scenario.labels, alerts, sensor_days, thresholds)
    print_scores(scores, out)
    if args.aberdeen:
        run_aberdeen(args.database_url, args.aberdeen, thresholds, out)
    return 0 if all(s.passed for s in scores) else 1


if __name__ == "__main__":
    sys.exit(main())
