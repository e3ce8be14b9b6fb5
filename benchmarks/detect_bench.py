"""Detection benchmark: labelled scenarios and real Aberdeen data through the real pipeline.

Path: scenario messages → ingest ``route_message`` (decode + validate, dead letters) →
``ReadingPipeline.process`` (real PostgreSQL: COPY, insert, detectors, alerts in one
transaction) → ``pipeline.tick`` at 1-s resolution of simulated time → ``alert_events``.
MQTT and Kafka are left out: they move bytes, they do not decide alerts. Prints, per rule,
precision, recall, median and p95 detection delay against the rule's own window, alerts
per sensor-day; the same for the energy and health rules per meter interval; notifications
queued per rule beside those the labels call for; ``sensor_stale`` openings during backlog
uploads (must be 0). ``--json`` prints all of it as one JSON object.

    python benchmarks/detect_bench.py [--database-url URL] [--scenario small] [--json]
    civicpulse bench detect [--database-url URL] [--aberdeen ../shared/data/aberdeen-air]

Without ``--database-url`` a throwaway PostgreSQL is started (tools/devstack) and stopped
at the end. Any URL or conninfo of the server works (``?host=/socket/dir`` too): the bench
creates its own databases there.

The messages and their replay are in detect_replay.py, the scoring in detect_scoring.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import shutil
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any

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
    replay_full,
    scenario_messages,
)
from benchmarks.detect_scoring import (  # noqa: E402
    EVENTS,
    NotificationCount,
    RuleScore,
    notification_counts,
    score,
    stale_during_uploads,
)
from rules.alerts import RULES  # noqa: E402
from rules.thresholds import Thresholds  # noqa: E402
from sensors.errors import CivicPulseError  # noqa: E402
from simulator.anomalies import Scenario, bench_spec, build_scenario, small_bench_spec  # noqa: E402
from stream_processors.detection import Detection  # noqa: E402

ENERGY_AND_HEALTH = ("energy_", "sensor_")


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


def print_notifications(
    counts: Iterable[NotificationCount], out: Callable[[str], None] = print
) -> None:
    """Per rule: notifications queued / expected from the labels, per event."""
    out(f"{'rule':<26}" + "".join(f"{e:>14}" for e in EVENTS) + "  ok")
    for c in counts:
        cells = "".join(f"{f'{c.actual[e]}/{c.expected[e]}':>14}" for e in EVENTS)
        out(f"{c.rule:<26}{cells}  {'PASS' if c.equal else 'FAIL'}")


def meter_interval_scores(
    scenario: Scenario, alerts: Sequence[StoredAlert], thresholds: Thresholds
) -> dict[float, tuple[int, int, list[RuleScore]]]:
    """The energy and health rules again, per meter reporting interval (1, 15, 30 min):
    ``{interval_s: (meters, meter-days, scores)}``."""
    groups: dict[float, set[str]] = defaultdict(set)
    for sid, kind in scenario.sensors.items():
        if kind == "energy_meter":
            groups[scenario.intervals.get(sid, 1800.0)].add(sid)
    out = {}
    for every, sids in sorted(groups.items()):
        days = len(sids) * scenario.spec.days["energy_meter"]
        labels = [lb for lb in scenario.labels if lb.sensor_id in sids]
        found = [a for a in alerts if a.sensor_id in sids]
        scores = [
            s
            for s in score(labels, found, {"energy_meter": days}, thresholds)
            if s.rule.startswith(ENERGY_AND_HEALTH)
        ]
        out[every] = (len(sids), days, scores)
    return out


def run_aberdeen(
    server_url: str, data_dir: Path, thresholds: Thresholds, out: Callable[[str], None] = print
) -> dict[str, Any]:
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
    return {
        "sensors": len(days),
        "sensor_days": sensor_days,
        "readings": stats["readings"],
        "alerts": dict(sorted(by_rule.items())),
    }


@contextlib.contextmanager
def server(database_url: str | None, out: Callable[[str], None]) -> Iterator[str]:
    """The PostgreSQL server to use: ``database_url``'s, or a throwaway one (tools/devstack)
    in a temporary directory, stopped and removed on the way out."""
    if database_url:
        yield database_url
        return
    from tools.devstack import ServiceError, start_postgres

    workdir = Path(tempfile.mkdtemp(prefix="civicpulse-bench-detect-"))
    try:
        try:
            service = start_postgres(workdir)
        except ServiceError as exc:
            first = str(exc).splitlines()[0]
            raise CivicPulseError(
                f"cannot start a throwaway PostgreSQL ({first}) — install the PostgreSQL "
                "server (scripts/bootstrap.sh) or pass --database-url (`civicpulse run` "
                "prints one)"
            ) from exc
        try:
            out(f"started a throwaway PostgreSQL ({service.url}); it is stopped at the end")
            yield service.url
        finally:
            service.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _number(x: float | None) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else x


def _score_json(s: RuleScore) -> dict[str, Any]:
    d = {k: _number(v) if isinstance(v, float) else v for k, v in asdict(s).items()}
    return {**d, "passed": s.passed}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument(
        "--database-url",
        default=None,
        help="any database on the PostgreSQL server to use (URL or conninfo; bench databases "
        "are created there); default: start a throwaway PostgreSQL",
    )
    p.add_argument("--seed", type=int, default=1)
    p.add_argument(
        "--scenario",
        choices=("full", "small"),
        default="full",
        help="full: the bench's 55 sensors; small: a few sensors for a smoke test",
    )
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
    p.add_argument("--json", action="store_true", help="print one JSON object, nothing else")
    return p


def run(args: argparse.Namespace, out: Callable[[str], None] = print) -> dict[str, Any]:
    """Build the scenario, replay it on the server, score it; print tables via ``out``;
    return the report (what ``--json`` prints)."""
    thresholds = (
        Detection.from_file(args.thresholds).thresholds if args.thresholds else Thresholds()
    )
    with server(args.database_url, out) as server_url:
        url = fresh_database(server_url, "civicpulse_bench_detect")  # fails fast
        return _run(args, thresholds, server_url, url, out)


def _run(
    args: argparse.Namespace,
    thresholds: Thresholds,
    server_url: str,
    url: str,
    out: Callable[[str], None],
) -> dict[str, Any]:
    spec = small_bench_spec(args.seed) if args.scenario == "small" else bench_spec(args.seed)
    scenario = build_scenario(spec)
    if args.keep_recording:
        from simulator.anomaly_labels import labels_path, write_labels
        from simulator.recording import write_recording

        write_recording(args.keep_recording, scenario.messages)
        write_labels(labels_path(args.keep_recording), scenario.labels)
    messages = scenario_messages(scenario)
    late = 0
    if args.late_share > 0:
        messages = hold_back(messages, args.late_share, args.late_max_s, args.seed)
        late = sum(1 for m in messages if m.arrival is not None and not m.upload)
        out(f"{late:,} of {len(messages):,} messages held back up to {args.late_max_s:,.0f} s")
        scenario.labels += delayed_labels(messages, thresholds)
    done = replay_full(url, messages, thresholds)
    aberdeen = run_aberdeen(server_url, args.aberdeen, thresholds, out) if args.aberdeen else None
    stats = done.stats
    counts = Counter(scenario.sensors.values())
    sensor_days = {k: counts[k] * scenario.spec.days[k] for k in counts}
    out(
        f"Labelled scenario {args.scenario} seed {args.seed}: {len(scenario.sensors)} sensors, "
        f"{len(scenario.labels)} labels, {stats['readings']:,} readings, "
        f"{stats['dead_letters']} dead letters, {stats['ticks']:,} ticks, "
        f"{stats['seconds']:.1f} s ({stats['readings_per_s']:,.0f} readings/s incl. detection)"
    )
    scores = score(scenario.labels, done.alerts, sensor_days, thresholds)
    print_scores(scores, out)
    per_interval = meter_interval_scores(scenario, done.alerts, thresholds)
    for every, (n, days, rows) in per_interval.items():
        out(f"\nMeters reporting every {every / 60:g} min ({n} meters, {days} meter-days)")
        print_scores(rows, out)
    sensor_end: dict[str, datetime] = {}
    for m in messages:
        sensor_end[m.sensor_id] = max(m.time, sensor_end.get(m.sensor_id, m.time))
    notes = notification_counts(
        scenario.labels, done.notifications, sensor_end, messages[-1].arrives, thresholds
    )
    out("\nNotifications queued / expected from the labels")
    print_notifications(notes, out)
    stale = stale_during_uploads(scenario.uploads, done.transitions)
    out(
        f"\nBacklog uploads: {len(scenario.uploads)} (device and gateway backlogs); "
        f"sensor_stale openings while uploading: {stale}  {'PASS' if stale == 0 else 'FAIL'}"
    )
    passed = (
        all(s.passed for s in scores)
        and all(s.passed for _, _, rows in per_interval.values() for s in rows)
        and all(c.equal for c in notes)
        and stale == 0
    )
    out(f"\n{'PASS' if passed else 'FAIL'}")
    return {
        "scenario": args.scenario,
        "seed": args.seed,
        "server": "given" if args.database_url else "throwaway",
        "late_share": args.late_share,
        "late_messages": late,
        "sensors": len(scenario.sensors),
        "labels": len(scenario.labels),
        "stats": stats,
        "rules": [_score_json(s) for s in scores],
        "meter_intervals": [
            {
                "interval_s": every,
                "meters": n,
                "meter_days": days,
                "rules": [_score_json(s) for s in rows],
            }
            for every, (n, days, rows) in per_interval.items()
        ],
        "notifications": [
            {"rule": c.rule, "expected": c.expected, "actual": c.actual, "equal": c.equal}
            for c in notes
        ],
        "backlog": {
            "uploads": len(scenario.uploads),
            "stale_openings": stale,
            "passed": stale == 0,
        },
        "aberdeen": aberdeen,
        "passed": passed,
    }


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> int:
    """Run the bench; 0 when every check passes, 1 otherwise."""
    args = parser().parse_args(argv)
    if args.json:
        report = run(args, out=lambda _line: None)
        out(json.dumps(report))
    else:
        report = run(args, out)
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
