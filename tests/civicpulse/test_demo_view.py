"""The demo's 80×24 view, its piped lines, dead-letter lines, state files and meter registers."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from civicpulse.cli import app
from civicpulse.cli.alerts import alerts_table
from civicpulse.cli.boundary import run_cli
from civicpulse.cli.demo_view import DeadLetterWatch, Snapshot, plain_line, view
from civicpulse.cli.state import STATE_FILE, PlatformState, discover, write_state
from simulator import Fleet
from simulator.bad import BAD_KINDS

PSQL = "postgresql://postgres:@/civicpulse?host=/var/lib/civicpulse-demo/pgdata"
RULES = ["energy_register_reset", "sensor_impossible_value", "no2_hourly_exceedance"]


def _snapshot() -> Snapshot:
    opened = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)
    alerts = [(opened, f"em-{i:04d}", RULES[i % 3], "critical", "acknowledged") for i in range(6)]
    every_reason = Counter({str(reason): 7 + i for i, (_l, reason, _b) in enumerate(BAD_KINDS)})
    return Snapshot(
        mqtt_url="mqtt://127.0.0.1:1883",
        database_url=PSQL,
        messages=1_234_567,
        stored=9_876_543,
        per_s=1234.5,
        duplicates=12,
        rejected=every_reason,
        commits=45_678,
        last_commit_ms=12.0,
        alerts=alerts,
        bad_every=50,
        cli=".venv/bin/civicpulse",
        api_url="http://127.0.0.1:8080/",
    )


def test_the_live_view_fits_80_by_24_with_the_urls_and_every_alert() -> None:
    console = Console(width=80, height=24, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(view(_snapshot()))
    lines = console.export_text().rstrip("\n").splitlines()
    assert len(lines) <= 23, "\n".join(lines)  # one line spare: nothing scrolls
    assert max(len(line) for line in lines) <= 80
    text = "\n".join(lines)
    assert "mqtt://127.0.0.1:1883" in text and PSQL in text
    assert "open data   http://127.0.0.1:8080/  (API docs http://127.0.0.1:8080/docs)" in text
    assert "the simulator's deliberate bad messages" in text
    alert_lines = [line for line in lines if line.startswith("09:30:00")]
    assert len(alert_lines) == 6
    for line, i in zip(alert_lines, range(6), strict=True):
        assert f"em-{i:04d}" in line and RULES[i % 3] in line and "acknowledged" in line


def test_piped_output_is_one_plain_line() -> None:
    line = plain_line(_snapshot())
    assert "\n" not in line and "\x1b" not in line
    assert "9,876,543 readings stored" in line and "deliberate bad messages" in line


def test_dead_letter_lines_are_one_per_reason_and_rate_limited() -> None:
    watch = DeadLetterWatch(every_s=10.0)
    rejected = Counter({"time_out_of_range": 1})
    assert watch.due(rejected, now=0.0) == {"time_out_of_range": 1}
    rejected["time_out_of_range"] += 5
    rejected["malformed_json"] += 1
    assert watch.due(rejected, now=3.0) == {"malformed_json": 1}  # a new reason at once
    assert watch.due(rejected, now=9.0) == {}
    assert watch.due(rejected, now=10.0) == {"time_out_of_range": 5}
    line = watch.line("time_out_of_range", 5, 6, ("civicpulse/a/air_quality/x", "too old"))
    assert "\n" not in line and "civicpulse/a/air_quality/x" in line
    assert "CIVICPULSE_MAX_PAST_S" in line


def test_alerts_list_is_one_line_per_alert_at_80_columns() -> None:
    now = datetime(2026, 12, 4, 9, 30, tzinfo=UTC)
    alerts = [
        SimpleNamespace(
            id=1000 + i,
            opened_at=now,
            severity=SimpleNamespace(value="critical"),
            state=SimpleNamespace(value="acknowledged"),
            rule=RULES[i % 3],
            sensor_id=f"bin-{i:04d}",
            count=120 + i,
            last_seen_at=now,
        )
        for i in range(3)
    ]
    console = Console(width=80, record=True, file=open("/dev/null", "w"))  # noqa: SIM115
    console.print(alerts_table(alerts, 80))
    lines = console.export_text().splitlines()
    assert max(len(line.rstrip()) for line in lines) <= 80
    for i, alert in enumerate(alerts):
        [line] = [ln for ln in lines if ln.startswith(str(alert.id))]
        assert alert.rule in line and alert.sensor_id in line and str(alert.count) in line, i


def test_a_state_file_has_no_password_and_a_dead_one_is_ignored_with_a_note(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    state = PlatformState(
        pid=gone.pid,
        mode="run",
        mqtt_url="mqtt://engine:s3cret@127.0.0.1:1",
        database_url="postgresql://civic:hunter2@127.0.0.1:1/civicpulse",
        data_dir=str(tmp_path),
        started_at="2026-12-04T09:30:00+00:00",
    )
    path = write_state(state)
    text = path.read_text()
    assert "s3cret" not in text and "hunter2" not in text
    assert json.loads(text)["pid"] == gone.pid
    found, notes = discover([tmp_path])
    assert found is None and len(notes) == 1 and str(gone.pid) in notes[0]

    monkeypatch.delenv("CIVICPULSE_DATABASE_URL", raising=False)
    args = ["--data-dir", str(tmp_path), "alerts", "list", "--database-url", "postgresql://x:1"]
    run_cli(app, args)
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 2 and err[0].startswith("note: ignoring") and STATE_FILE in err[0]
    assert err[1].startswith("error: ")


def test_a_restarted_demo_never_starts_a_meter_register_below_where_it_stopped() -> None:
    fleet = Fleet.build(30, seed=1)  # the demo's fleet, restarted on the same data
    start = datetime(2026, 12, 4, 8, 0, tzinfo=UTC)  # a weekday morning: meters at full load
    first = list(fleet.emissions(30 * 40, start, rate=1.0))
    restart = first[-1].time + timedelta(seconds=5)
    second = list(fleet.emissions(30 * 2, restart, rate=1.0))
    meters = 0
    for sensor in {e.sensor_id for e in first if e.kind == "energy_meter"}:
        meters += 1
        for metric in ("energy_import", "energy_export"):
            before = [s.value for e in first if e.sensor_id == sensor for s in e.samples]
            stopped = [
                s.value
                for e in first
                if e.sensor_id == sensor
                for s in e.samples
                if s.metric == metric
            ]
            resumed = [
                s.value
                for e in second
                if e.sensor_id == sensor
                for s in e.samples
                if s.metric == metric
            ]
            if stopped and resumed:
                assert resumed[0] >= stopped[-1], (sensor, metric, before[-3:])
    assert meters >= 5
