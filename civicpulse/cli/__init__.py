"""The ``civicpulse`` command line: one Typer app, one module per command group."""

from civicpulse.cli.main import app, main

__all__ = ["app", "main"]
