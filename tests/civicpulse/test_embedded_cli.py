"""The embedded-mode commands' help and their one-line errors (no services needed)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from civicpulse.cli import app
from embedded import deadletter_ref
from sensors.deadletter import DeadLetter

runner = CliRunner()


@pytest.mark.parametrize("command", ["run", "demo", "replay"])
def test_each_command_has_help(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "--mqtt-url" in result.output


@pytest.mark.parametrize(
    ("args", "hint", "code"),
    [
        (["run", "--mqtt-url", "mqtt://broker.example:1883"], "--external-broker", 2),
        (["run", "--mqtt-url", "http://127.0.0.1"], "--mqtt-url mqtt://127.0.0.1:1883", 2),
        (["replay", "no-such-recording.jsonl"], "civicpulse simulate --record", 1),
    ],
)
def test_errors_are_one_line_that_say_what_to_do(
    args: list[str], hint: str, code: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, args)
    assert result.exit_code == code  # 2: the command line must change
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert hint in lines[0]


def test_a_redelivered_dead_letter_has_the_same_source_ref() -> None:
    def letter(payload: bytes, topic: str = "civicpulse/a/air_quality/x") -> DeadLetter:
        return DeadLetter("malformed_json", "", payload, topic, datetime.now(UTC))

    assert deadletter_ref(letter(b"x")) == deadletter_ref(letter(b"x"))
    assert deadletter_ref(letter(b"x")) != deadletter_ref(letter(b"y"))
    assert deadletter_ref(letter(b"x")) != deadletter_ref(letter(b"x", "civicpulse/b/k/x"))
