"""The CLI's shared stderr console and its one way of failing: one line that says what to do."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import typer
from rich.console import Console

from civicpulse.redact import redact

console = Console(stderr=True)


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` on one line (never wrapped, no passwords); return the Exit."""
    console.print(f"[bold red]error:[/] {redact(message)}", soft_wrap=True)
    return typer.Exit(code)


def cli_name() -> str:
    """How to call civicpulse from here: ``civicpulse`` if that is on PATH, else its path."""
    argv0 = sys.argv[0] if sys.argv and sys.argv[0] else ""
    if Path(argv0).name != "civicpulse":  # python -m civicpulse.cli, a test runner
        return "civicpulse"
    found = shutil.which("civicpulse")
    if found and Path(found).resolve() == Path(argv0).resolve():
        return "civicpulse"
    relative = os.path.relpath(argv0)
    return relative if not relative.startswith("..") else argv0
