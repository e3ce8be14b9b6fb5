"""The CLI's one error boundary and its global options (--version, --debug, --data-dir)."""

from __future__ import annotations

import os
import sys
import traceback
from importlib import metadata
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from typer._click import exceptions as cli_errors  # typer vendors its own click

from civicpulse.cli.console import console
from civicpulse.cli.errors import USAGE, explain
from civicpulse.cli.state import discover, search_dirs
from civicpulse.redact import redact
from civicpulse.settings import use_discovered

_debug = False
# Commands that start a platform of their own: they never take a running one's URLs.
_STARTERS = frozenset({"run", "demo"})


def version() -> str:
    """The installed civicpulse version."""
    try:
        return metadata.version("civicpulse")
    except metadata.PackageNotFoundError:
        return "unknown (not installed: pip install -e .)"


def _print_version(value: bool) -> None:
    if value:
        print(f"civicpulse {version()}")
        raise typer.Exit(0)


def root(
    ctx: typer.Context,
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print the version and exit",
        ),
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="On an error, show the full traceback")
    ] = False,
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Find the platform `civicpulse run`/`demo` started in this data dir "
            "(default: CIVICPULSE_DATA_DIR, else run's then demo's default)",
        ),
    ] = None,
) -> None:
    """civicpulse — real-time IoT sensor platform for UK councils."""
    global _debug
    _debug = debug
    if ctx.invoked_subcommand in _STARTERS:
        return
    state, notes = discover(search_dirs(data_dir, os.environ))
    for note in notes:
        console.print(escape(note), soft_wrap=True, highlight=False)
    use_discovered(state.discovered() if state else {})
    ctx.call_on_close(lambda: use_discovered({}))


def say_error(message: str) -> None:
    """Print ``error: message`` as one line on stderr, passwords removed."""
    line = " ".join(redact(message).split())
    console.print(f"[bold red]error:[/] {escape(line)}", soft_wrap=True, highlight=False)


def run_cli(app: typer.Typer, argv: list[str] | None = None) -> int:
    """Run the command line; every failure becomes one line and exit code 2 (usage) or 1."""
    global _debug
    _debug = False
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="civicpulse", standalone_mode=False)
    except cli_errors.NoArgsIsHelpError as exc:  # `civicpulse alerts`: the help, shown
        if exc.format_message().strip():  # (rich help is printed as it is made)
            print(exc.format_message())
        return 0
    except cli_errors.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "civicpulse"
        say_error(f"{exc.format_message()} — see `{where} --help`")
        return USAGE
    except cli_errors.ClickException as exc:  # a bad file argument, and the like
        say_error(exc.format_message())
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        say_error("interrupted")
        return 130
    except Exception as exc:
        if _debug:
            traceback.print_exc()
        message, code = explain(exc)
        say_error(message)
        return code
    finally:
        sys.stdout.flush()
    return result if isinstance(result, int) else 0
