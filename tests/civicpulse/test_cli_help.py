"""Every civicpulse command, at every level, answers --help."""

from __future__ import annotations

from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from civicpulse.cli import app


def _paths(group: Any, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = []
    for name, command in group.commands.items():
        found.append((*prefix, name))
        if hasattr(command, "commands"):  # a sub-group (typer vendors its own click)
            found += _paths(command, (*prefix, name))
    return found


COMMANDS = _paths(typer.main.get_command(app))


def test_the_cli_has_the_commands_the_readme_names() -> None:
    names = {" ".join(p) for p in COMMANDS}
    for expected in (
        "ingest",
        "process",
        "simulate",
        "run",
        "demo",
        "replay",
        "db migrate",
        "db retention",
        "alerts list",
        "waste due",
        "report netzero",
        "dashboards export",
    ):
        assert expected in names


@pytest.mark.parametrize("path", COMMANDS, ids=" ".join)
def test_help(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_bench_detect_finds_its_bench_script() -> None:
    # the layout step moved the CLI one folder down and this path went wrong unnoticed
    from civicpulse.cli.alerts import DETECT_BENCH

    assert DETECT_BENCH.is_file()
    assert DETECT_BENCH.parent.name == "benchmarks"
