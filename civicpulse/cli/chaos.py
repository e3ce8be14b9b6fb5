"""``civicpulse bench chaos``: a fault-and-soak run under a seeded fault schedule, and its ledger."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from civicpulse.cli.console import fail
from civicpulse.cli.options import JsonOutput

# The harness (benchmarks/chaos) and the test services (tools/devstack) live beside the
# package in a source checkout.
REPO = Path(__file__).resolve().parents[2]
HARNESS = REPO / "benchmarks" / "chaos" / "run.py"


def _harness() -> Any:
    if not HARNESS.exists():
        raise fail(f"{HARNESS} not found: run from a source checkout of civicpulse")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return importlib.import_module("benchmarks.chaos.run")


def bench_chaos(
    engine: Annotated[
        str, typer.Option(help="embedded (civicpulse run) or distributed (Mosquitto, Kafka, …)")
    ] = "embedded",
    minutes: Annotated[float, typer.Option(min=0.5, help="How long the fleet publishes")] = 10.0,
    rate: Annotated[float, typer.Option(min=1.0, help="MQTT messages per second offered")] = 40.0,
    sensors: Annotated[int, typer.Option(min=3, help="Simulated sensors")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the fleet and of the fault schedule")] = 13,
    short: Annotated[
        bool, typer.Option("--short", help="CI profile: one fault of each kind, brief outages")
    ] = False,
    alerts: Annotated[
        bool,
        typer.Option("--alerts/--no-alerts", help="Compare alerts with a fault-free replay"),
    ] = True,
    workdir: Annotated[
        Path | None, typer.Option(help="Keep services, logs and data here (default: a temp dir)")
    ] = None,
    as_json: JsonOutput = False,
) -> None:
    """Soak an engine under kill -9s, restarts, outages and pauses; print the ledger.

    Exits 1 if any acknowledged reading was lost or stored twice.
    """
    if engine not in ("embedded", "distributed"):
        raise typer.BadParameter("--engine is embedded or distributed")
    harness = _harness()
    config = harness.ChaosConfig(
        engine=engine,
        duration_s=minutes * 60,
        rate=rate,
        sensors=sensors,
        seed=seed,
        short=short,
        alerts=alerts,
        workdir=workdir,
    )
    try:
        ledger = harness.run_chaos(config, lambda line: print(line, file=sys.stderr, flush=True))
    except (OSError, RuntimeError, ValueError) as exc:
        raise fail(f"{exc} — see the logs in the work dir (--workdir keeps them)") from exc
    if as_json:
        print(json.dumps(ledger.to_json(), indent=2, default=str))
    else:
        harness.render(ledger)
    if not ledger.ok:
        raise typer.Exit(1)


def register(bench: typer.Typer) -> None:
    """Add ``chaos`` to the ``bench`` group."""
    bench.command("chaos")(bench_chaos)
