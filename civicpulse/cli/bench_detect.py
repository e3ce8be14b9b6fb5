"""``civicpulse bench detect``: labelled scenarios through the real pipeline, scored per rule.

The harness is ``benchmarks/detect_bench.py`` beside the package in a source checkout.
Without ``--database-url`` it starts a throwaway PostgreSQL (tools/devstack) and stops it at
the end; with one — any URL or conninfo, e.g. the ``postgresql://postgres@/civicpulse?host=…``
socket URL ``civicpulse run`` prints — it creates its own databases on that server.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from civicpulse.cli.console import fail
from civicpulse.cli.options import JsonOutput

REPO = Path(__file__).resolve().parents[2]
DETECT_BENCH = REPO / "benchmarks" / "detect_bench.py"


def _harness() -> Any:
    """``benchmarks.detect_bench``, imported from the source checkout."""
    if not DETECT_BENCH.exists():
        raise fail(f"{DETECT_BENCH} not found: run from a source checkout of civicpulse")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    return importlib.import_module("benchmarks.detect_bench")


def bench_detect(
    database_url: Annotated[
        str | None,
        typer.Option(
            "--database-url",
            help="PostgreSQL server to use (any database on it; URL or conninfo, a ?host= "
            "socket path too); default: start a throwaway one and stop it at the end",
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Scenario seed")] = 1,
    scenario: Annotated[
        str,
        typer.Option(
            help="full (47 sensors, 9 days, ~1-2 min) or small (10 sensors, a smoke test)"
        ),
    ] = "full",
    aberdeen: Annotated[
        Path | None,
        typer.Option(
            help="Also replay real Sensor.Community SDS011 files (sds011_sensor_*.csv) from this directory"
        ),
    ] = None,
    keep_recording: Annotated[
        Path | None, typer.Option(help="Write the scenario recording here, labels beside it")
    ] = None,
    thresholds: Annotated[
        Path | None,
        typer.Option(help="Thresholds TOML (see config/thresholds.example.toml); default built-in"),
    ] = None,
    late_share: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of messages held back to arrive late")
    ] = 0.0,
    late_max_s: Annotated[
        float, typer.Option(min=60.0, help="Longest hold-back, seconds")
    ] = 10800.0,
    as_json: JsonOutput = False,
) -> None:
    """Replay labelled scenarios through the real pipeline: per-rule precision, recall and
    latency (per meter interval for energy), notifications vs expected, backlog staleness.

    Exit code 0 when every check passes, 1 when one fails.
    """
    if scenario not in ("full", "small"):
        raise typer.BadParameter("full or small", param_hint="--scenario")
    bench = _harness()
    argv = ["--seed", str(seed), "--scenario", scenario]
    argv += ["--database-url", database_url] if database_url else []
    argv += ["--aberdeen", str(aberdeen)] if aberdeen else []
    argv += ["--keep-recording", str(keep_recording)] if keep_recording else []
    argv += ["--thresholds", str(thresholds)] if thresholds else []
    argv += ["--late-share", str(late_share), "--late-max-s", str(late_max_s)]
    argv += ["--json"] if as_json else []
    code = bench.main(argv)  # errors: one line from the CLI boundary
    raise typer.Exit(code)


def register_bench_detect(bench_app: typer.Typer) -> None:
    """Add ``detect`` to the ``bench`` group."""
    bench_app.command("detect")(bench_detect)
