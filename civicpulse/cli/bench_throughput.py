"""``civicpulse bench embedded`` and ``civicpulse bench pipeline``: throughput, every stage
measured in one run (the measuring code is in ``benchmarks/throughput_*.py``)."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from civicpulse.cli.console import console, fail
from civicpulse.cli.options import JsonOutput

# The benchmarks and the test services (tools/devstack) live beside the package in a source
# checkout.
REPO = Path(__file__).resolve().parents[2]

Shapes = Annotated[str, typer.Option(help="Readings per MQTT message, comma-separated load shapes")]
Duration = Annotated[float, typer.Option(min=1.0, help="Seconds each end-to-end phase publishes")]
ProbeReadings = Annotated[
    int, typer.Option(min=100, help="Readings each raw stage probe is measured over")
]
SensorCount = Annotated[int, typer.Option(min=1, help="Simulated sensors (the simulator's mix)")]
Clients = Annotated[int, typer.Option(min=1, help="Publishing MQTT connections")]
Window = Annotated[
    int,
    typer.Option(
        min=1,
        help="Messages each connection may have unacknowledged (the closed-loop capacity "
        "phase is bounded by connections × window messages in flight)",
    ),
]


def _module(name: str) -> Any:
    if not (REPO / "benchmarks" / f"{name}.py").exists():
        raise fail(f"benchmarks/{name}.py not found: run from a source checkout of civicpulse")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return importlib.import_module(f"benchmarks.{name}")


def _shapes(text: str) -> tuple[int, ...]:
    try:
        shapes = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise typer.BadParameter("--shapes is a comma-separated list of numbers") from None
    if not shapes or min(shapes) < 1:
        raise typer.BadParameter("--shapes needs at least one positive number")
    return shapes


def _run(module: Any, config: Any, as_json: bool) -> None:
    with _module("throughput_stages").sigterm_as_exit():  # stop what it started on SIGTERM
        _run_report(module, config, as_json)


def _run_report(module: Any, config: Any, as_json: bool) -> None:
    if as_json:
        report = module.run(config)
        sys.stdout.write(json.dumps(report, indent=2, default=str) + "\n")
        _check(report)
        return
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        task = progress.add_task("starting", total=None)
        report = module.run(config, step=lambda what: progress.update(task, description=what))
    module_stages = _module("throughput_stages")
    module_stages.render(report, console.print)
    _check(report)


def _check(report: dict[str, Any]) -> None:
    """A scale-out ledger with a missing or duplicated reading fails the command."""
    so = report.get("scale_out")
    if so is not None and not so["ok"]:
        raise fail(
            f"scale-out ledger: {so['missing']} acknowledged readings missing, "
            f"{so['stored_twice']} stored twice, {len(so['workers'])} worker(s) in the group"
        )


def bench_embedded(
    shapes: Shapes = "1,6,50",
    duration: Duration = 10.0,
    probe_readings: ProbeReadings = 30_000,
    sensors: SensorCount = 300,
    clients: Clients = 16,
    window: Window = 100,
    mqtt_port: Annotated[
        int | None, typer.Option(help="A running engine's MQTT port (with --database-url)")
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help="That engine's database; default: start civicpulse run")
    ] = None,
    as_json: JsonOutput = False,
) -> None:
    """Embedded engine: each stage's raw ceiling, then end to end (readings/s, latency at
    50 % and 80 % of capacity, CPU and peak RSS per process, end-to-end ÷ slowest stage)."""
    if (mqtt_port is None) != (database_url is None):
        raise typer.BadParameter("--mqtt-port and --database-url go together")
    module = _module("throughput_embedded")
    config = module.Config(
        shapes=_shapes(shapes),
        duration_s=duration,
        probe_readings=probe_readings,
        sensors=sensors,
        clients=clients,
        window=window,
        mqtt_port=mqtt_port,
        database_url=database_url,
    )
    try:
        _run(module, config, as_json)
    except (OSError, RuntimeError) as exc:
        raise fail(f"bench embedded: {exc}") from exc


def bench_pipeline(
    shapes: Shapes = "1,6,50",
    duration: Duration = 10.0,
    probe_readings: ProbeReadings = 30_000,
    sensors: SensorCount = 300,
    clients: Clients = 16,
    window: Window = 100,
    bridges: Annotated[int, typer.Option(min=1, help="Bridge processes")] = 1,
    workers: Annotated[int, typer.Option(min=1, help="Faust worker processes")] = 1,
    mqtt_url: Annotated[str | None, typer.Option(help="A running Mosquitto")] = None,
    kafka_bootstrap: Annotated[str | None, typer.Option(help="A running Kafka")] = None,
    database_url: Annotated[
        str | None,
        typer.Option(help="A PostgreSQL server (a scratch database is created in it)"),
    ] = None,
    as_json: JsonOutput = False,
) -> None:
    """Distributed path (Mosquitto, bridges, Kafka, Faust workers, PostgreSQL): each stage's
    raw ceiling, then end to end; starts on loopback whatever is not given."""
    module = _module("throughput_pipeline")
    config = module.Config(
        shapes=_shapes(shapes),
        duration_s=duration,
        probe_readings=probe_readings,
        sensors=sensors,
        clients=clients,
        window=window,
        bridges=bridges,
        workers=workers,
        mqtt_url=mqtt_url,
        kafka_bootstrap=kafka_bootstrap,
        database_url=database_url,
    )
    try:
        _run(module, config, as_json)
    except (OSError, RuntimeError) as exc:
        raise fail(f"bench pipeline: {exc}") from exc


def register_bench(bench_app: typer.Typer) -> None:
    """Add ``embedded`` and ``pipeline`` to the ``bench`` group."""
    bench_app.command("embedded")(bench_embedded)
    bench_app.command("pipeline")(bench_pipeline)
