"""The CLI's shared stderr console and its one way of failing: one line that says what to do."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import typer
from rich.console import Console

from civicpulse.redact import redact

T = TypeVar("T")

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


def say(text: str) -> None:
    """One line on stderr, taken literally (names and ids are never markup)."""
    console.print(text, soft_wrap=True, markup=False, highlight=False)


def with_store(database_url: str | None, work: Callable[[str], T]) -> T:
    """``work(url)`` on the configured database; its refusals (the project's errors) and an
    outage become one-line failures."""
    from rich.markup import escape

    from civicpulse.settings import Settings
    from sensors.errors import CivicPulseError
    from storage.connection import StoreUnavailable

    url = Settings.load(database_url=database_url).database_url
    try:
        return work(url)
    except StoreUnavailable as exc:
        raise fail(
            escape(
                f"{exc} — is PostgreSQL running? `civicpulse run` starts one; --database-url or"
                " CIVICPULSE_DATABASE_URL says where"
            )
        ) from exc
    except CivicPulseError as exc:
        raise fail(escape(str(exc))) from exc
