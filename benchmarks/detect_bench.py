"""Detection benchmark: labelled scenarios and real Aberdeen data through the real pipeline.

Path: scenario messages → ingest ``route_message`` (decode + validate, dead letters) →
``ReadingPipeline.process`` (real PostgreSQL: COPY, insert, detectors, alerts in one
transaction) → ``pipeline.tick`` at 1-s resolution of simulated time → ``alert_events``.
MQTT and Kafka are left out: they move bytes, they do not decide alerts. Prints, per rule,
precision, recall, median and p95 detection delay against the rule's own window, and
alerts per sensor-day.

    python benchmarks/detect_bench.py --database-url postgresql://postgres@127.0.0.1:55432/x
    civicpulse bench detect --database-url ... [--aberdeen ../shared/data/aberdeen-air]

The messages and their replay are in detect_replay.py, the scoring in detect_scoring.py.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# the repo root first: the rules, sensors… packages and this folder's helpers as
# ``benchmarks.detect_*``, whether run as a script or loaded by path (civicpulse bench detect)
sys.path.insert(0, str(REPO))

from benchmarks.detect_replay import (  # noqa: E402
    StoredAlert,
    aberdeen_messages,
    delayed_labels,
    fresh_database,
    hold_back,
    replay,
    scenario_messages,
)
from benchmarks.detect_scoring import RuleScore, score  # noqa: E402
from rules.alerts import RULES  # noqa: E402
from rules.thresholds import Thresholds  # noqa: E402
from simulator.anomalies import Scenario, bench_spec, build_scenario  # noqa: E402
from stream_processors.detection import Detection  # noqa: E402


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def print_scores(scores: Iterable[RuleScore], out: Callable[[str], None] = print) -> None:
    out(
        f"{'rule':<26}{'labels':>7}{'alerts':>7}{'opens':>7}{'prec':>7}{'recall':>7}"
        f"{'med s':>9}{'p95 s':>9}{'window s':>10}{'med-win':>9}{'/sens-day':>10}  ok"
    )
    for s in scores:
        out(
            f"{s.rule:<26}{s.labels:>7}{s.alerts:>7}{s.opens:>7}{s.precision:>7.3f}"
            f"{s.recall:>7.3f}"
            f"{_fmt(s.median_delay_s):>9}{_fmt(s.p95_delay_s):>9}{s.window_s:>10,.0f}"
            f"{_fmt(s.median_excess_s):>9}"
            f"{s.per_sensor_day:>10.3f}  {'PASS' if s.passed else 'FAIL'}"
        )


def print_meter_intervals(
    scenario: Scenario,
    alerts: Sequence[StoredAlert],
    thresholds: Thresholds,
    out: Callable[[str], None] = print,
) -> None:
    """The energy rules again, per meter reporting interval (1 min, 15 min, 30 min)."""
    groups: dict[float, set[str]] = defaultdict(set)
    for sid, kind in scenario.sensors.items():
        if kind == "energy_meter":
            groups[scenario.intervals.get(sid, 1800.0)].add(sid)
    for every, sids in sorted(groups.items()):
        days = len(sids) * scenario.spec.days["energy_meter"]
        labels = [lb for lb in scenario.labels if lb.sensor_id in sids]
        found = [a for a in alerts if a.sensor_id in sids]
        scores = [
            s
            for s in score(labels, found, {"energy_meter": days}, thresholds)
            if s.rule.startswith("energy_") or s.rule.startswith("sensor_")
        ]
        out(f"\nMeters reporting every {every / 60:g} min ({len(sids)} meters, {days} meter-days)")
        print_scores(scores, out)


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
    scenario = build_scenario(bench_spec(args.seed))
    if args.keep_recording:
        from simulator.anomaly_labels import labels_path, write_labels
        from simulator.recording import write_recording

        write_recording(args.keep_recording, scenario.messages)
        write_labels(labels_path(args.keep_recording), scenario.labels)
    url = fresh_database(args.database_url, "civicpulse_bench_detect")
    messages = scenario_messages(scenario)
    if args.late_share > 0:
        messages = hold_back(messages, args.late_share, args.late_max_s, args.seed)
        late = sum(1 for m in messages if m.arrival is not None and not m.upload)
        out(f"{late:,} of {len(messages):,} messages held back up to {args.late_max_s:,.0f} s")
        scenario.labels += delayed_labels(messages, thresholds)
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
    print_meter_intervals(scenario, alerts, thresholds, out)
    if args.aberdeen:
        run_aberdeen(args.database_url, args.aberdeen, thresholds, out)
    return 0 if all(s.passed for s in scores) else 1


if __name__ == "__main__":
    sys.exit(main())
