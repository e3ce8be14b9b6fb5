"""Every command, found in the Typer app, fails in one line with the right exit code.

Bad arguments exit 2; a database, broker, Kafka or Grafana that does not answer (a closed
loopback port) exits 1. Commands added later are covered without touching this file; one
whose required arguments have no sample below fails with a message saying so.
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from civicpulse.cli import app
from civicpulse.cli.boundary import run_cli

REPO = Path(__file__).resolve().parents[2]
SERVICE_OPTIONS = {"--database-url", "--mqtt-url", "--kafka-bootstrap", "--grafana-url", "--url"}


def _commands(group: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


COMMANDS = dict(_commands(typer.main.get_command(app)))


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


CLOSED = _closed_port()  # nothing listens here: every connection is refused
URLS = {
    "--database-url": f"postgresql://postgres@127.0.0.1:{CLOSED}/civicpulse",
    "--mqtt-url": f"mqtt://127.0.0.1:{CLOSED}",
    "--kafka-bootstrap": f"127.0.0.1:{CLOSED}",
    "--grafana-url": f"http://127.0.0.1:{CLOSED}",
    "--url": f"http://127.0.0.1:{CLOSED}/hook",
}


def _samples(tmp: Path) -> dict[str, str]:
    """A valid value for each required parameter, by its name."""
    recording = tmp / "recording.jsonl"
    line = {"topic": "civicpulse/a/air_quality/aq-1", "payload_b64": "", "t": 0.0}
    line["payload_b64"] = base64.b64encode(b'{"metric":"no2","value":1}').decode()
    recording.write_text(json.dumps(line) + "\n")
    devices = tmp / "devices.csv"
    devices.write_text("sensor_id,council,kind\naq-1,leeds,air_quality\n")
    locations = tmp / "locations.csv"
    locations.write_text("sensor_id,latitude,longitude\naq-1,57.1,-2.1\n")
    return {
        "period": "2025",
        "out_dir": str(tmp / "report"),
        "out": str(tmp / "broker-files"),
        "year": "2025",
        "day": "2025-06-01",
        "alert_id": "1",
        "agreement_id": "1",
        "key_id": "1",
        "slug": "leeds",
        "name": "leeds-reader",
        "council": "leeds",
        "kind": "air_quality",
        "role": "ingest",
        "sensor_id": "aq-1",
        "token": "not-a-token",
        "file": str(recording),
        "csv_file": str(locations),
        "devices_file": str(devices),
    }


def _options(command: Any) -> set[str]:
    return {o for p in command.params for o in getattr(p, "opts", [])}


def _unreachable_args(path: tuple[str, ...], command: Any, tmp: Path) -> list[str]:
    """Arguments that are all valid but point every service at a closed port."""
    opts = _options(command)
    samples = _samples(tmp)
    if path == ("devices", "import"):
        samples["file"] = samples["devices_file"]
    args: list[str] = []
    for param in command.params:
        if not param.required or param.name is None or set(param.opts) & SERVICE_OPTIONS:
            continue
        assert param.name in samples, (
            f"`civicpulse {' '.join(path)}`: add a sample value for its required "
            f"parameter {param.name!r} to _samples() in {Path(__file__).name}"
        )
        if param.param_type_name == "argument":
            args.append(samples[param.name])
        else:
            args += [param.opts[0], samples[param.name]]
    for option, url in URLS.items():
        if option in opts:
            args += [option, url]
    if path == ("process",):
        args.append("--no-migrate")
    if path == ("simulate",):
        args += ["--duration", "0.1"]
    if path == ("bench", "embedded"):  # a running engine is named by both, or by neither
        args += ["--mqtt-port", str(CLOSED)]
    return args


def _invoke(
    args: list[str], capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp: Path
) -> tuple[int, str, str]:
    monkeypatch.setenv("CIVICPULSE_DATA_DIR", str(tmp / "no-platform-here"))
    for var in ("CIVICPULSE_DATABASE_URL", "CIVICPULSE_MQTT_URL", "CIVICPULSE_KAFKA_BOOTSTRAP"):
        monkeypatch.delenv(var, raising=False)
    try:
        code = run_cli(app, args)
    except SystemExit as exc:  # `bench detect` exits with its script's status
        code = int(exc.code or 0)
    out, err = capfd.readouterr()
    return code, out, err


def _one_error_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


@pytest.mark.parametrize("path", list(COMMANDS), ids=" ".join)
def test_a_bad_flag_is_one_usage_line_and_exit_2(
    path: tuple[str, ...],
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    code, _out, err = _invoke([*path, "--no-such-flag"], capfd, monkeypatch, tmp_path)
    line = _one_error_line(err)
    assert code == 2
    assert "--no-such-flag" in line and f"civicpulse {' '.join(path)} --help" in line


@pytest.mark.parametrize(
    "path", [p for p, c in COMMANDS.items() if _options(c) & SERVICE_OPTIONS], ids=" ".join
)
def test_an_unreachable_service_is_one_runtime_line_and_exit_1(
    path: tuple[str, ...],
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    args = _unreachable_args(path, COMMANDS[path], tmp_path)
    code, _out, err = _invoke([*path, *args], capfd, monkeypatch, tmp_path)
    line = _one_error_line(err)
    assert code == 1, line
    assert str(CLOSED) in line or "refused" in line.lower() or "unreachable" in line.lower(), line


def test_a_bad_value_is_a_usage_error(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    code, _out, err = _invoke(["alerts", "list", "--limit", "many"], capfd, monkeypatch, tmp_path)
    assert code == 2 and "--limit" in _one_error_line(err)
    code, _out, err = _invoke(["report", "netzero", "--out", "x"], capfd, monkeypatch, tmp_path)
    assert code == 2 and "--period" in _one_error_line(err)


def test_debug_shows_the_traceback_and_version_prints(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    args = ["--debug", "db", "migrate", "--database-url", "not a url"]
    code, _out, err = _invoke(args, capfd, monkeypatch, tmp_path)
    assert code == 2
    assert "Traceback" in err and err.strip().splitlines()[-1].startswith("error: not a database")
    code, out, _err = _invoke(["--version"], capfd, monkeypatch, tmp_path)
    assert code == 0 and out.startswith("civicpulse ") and out.split()[1][0].isdigit()


# The issue's own examples, each in a real process as a user would run it.


def _cli(args: list[str], tmp: Path, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    base = {k: v for k, v in os.environ.items() if not k.startswith("CIVICPULSE_")}
    return subprocess.run(
        [sys.executable, "-m", "civicpulse.cli", *args],
        env={**base, "CIVICPULSE_DATA_DIR": str(tmp / "none"), **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )


def _nested(tmp: Path) -> Path:
    path = tmp / "nested.jsonl"
    path.write_text("[" * 100_000 + "\n")
    return path


@pytest.mark.parametrize(
    ("name", "code", "hint"),
    [
        ("netzero-out-is-a-file", 2, "is a file"),
        ("netzero-out-cannot-be-made", 2, "cannot create"),
        ("migrate-not-a-url", 2, "postgresql://"),
        ("run-bad-thresholds", 2, "thresholds"),
        ("run-missing-thresholds", 2, "No such file"),
        ("process-kafka-down", 1, "Kafka unreachable"),
        ("bench-detect-no-database", 1, "PostgreSQL"),
        ("replay-deeply-nested-json", 1, "nested too deeply"),
    ],
)
def test_the_issues_examples_are_one_line(name: str, code: int, hint: str, tmp_path: Path) -> None:
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "bad.toml").write_text("[alerts\n")
    db = URLS["--database-url"]
    cases: dict[str, tuple[list[str], dict[str, str]]] = {
        "netzero-out-is-a-file": (
            ["report", "netzero", "--period", "2025", "--out", str(tmp_path / "a-file")],
            {},
        ),
        "netzero-out-cannot-be-made": (
            ["report", "netzero", "--period", "2025", "--out", str(tmp_path / "a-file" / "x")],
            {},
        ),
        "migrate-not-a-url": (["db", "migrate", "--database-url", "not a url"], {}),
        "run-bad-thresholds": (
            ["run", "--database-url", db],
            {"CIVICPULSE_THRESHOLDS_FILE": str(tmp_path / "bad.toml")},
        ),
        "run-missing-thresholds": (
            ["run", "--database-url", db],
            {"CIVICPULSE_THRESHOLDS_FILE": str(tmp_path / "missing.toml")},
        ),
        "process-kafka-down": (["process", "--kafka-bootstrap", URLS["--kafka-bootstrap"]], {}),
        "bench-detect-no-database": (["bench", "detect", "--database-url", db], {}),
        "replay-deeply-nested-json": (
            ["replay", str(_nested(tmp_path)), "--mqtt-url", URLS["--mqtt-url"]],
            {},
        ),
    }
    args, env = cases[name]
    result = _cli(args, tmp_path, **env)
    line = _one_error_line(result.stderr)
    assert result.returncode == code, line
    assert hint in line
