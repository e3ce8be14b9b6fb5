"""``civicpulse bench embedded``: a tiny run starts what it needs and reports every figure."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from civicpulse.cli.bench_throughput import register_bench

pytestmark = pytest.mark.integration

STAGES = {"mqtt_publish_qos1", "broker_to_subscriber", "decode_validate", "detection",
          "store_aggregates"}  # fmt: skip


def test_bench_embedded_json_has_every_stage_and_the_end_to_end_figures() -> None:
    bench = typer.Typer()
    register_bench(bench)
    app = typer.Typer()
    app.add_typer(bench, name="bench")
    args = ["bench", "embedded", "--shapes", "6", "--duration", "2", "--probe-readings", "600"]
    args += ["--sensors", "12", "--clients", "2", "--window", "3", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["engine"] == "embedded"
    assert (report["clients"], report["window"]) == (2, 3)  # at most 6 messages in flight
    (shape,) = report["shapes"]
    assert shape["readings_per_message"] == 6
    assert {s["stage"] for s in shape["stages"]} == STAGES
    for s in shape["stages"]:
        assert s["readings_per_s"] > 0, s
        assert s["cpu_s_per_1k_readings"], s
    e2e = shape["end_to_end"]
    assert e2e["readings_per_s"] > 0
    assert e2e["acknowledged"] == e2e["expected"] == e2e["stored"]  # acknowledged ⇒ stored
    assert set(shape["latency"]) == {"50%", "80%"}
    for lat in shape["latency"].values():
        assert 0 < lat["p50_ms"] <= lat["p95_ms"] <= lat["p99_ms"]
    assert shape["ratio_end_to_end_to_slowest_stage"] > 0
    assert {"engine", "postgres", "bench"} <= set(shape["peak_rss_mb"])
    assert all(v > 0 for v in shape["peak_rss_mb"].values())
    assert {"engine", "postgres"} <= set(shape["cpu_s_per_1k_readings"])


def test_bench_pipeline_scale_out_splits_the_work_with_no_missing_or_duplicate_reading() -> None:
    """Two bridges and two Faust workers on one topic: each bridged and stored some of it,
    and every reading the publishers had acknowledged is stored exactly once."""
    bench = typer.Typer()
    register_bench(bench)
    app = typer.Typer()
    app.add_typer(bench, name="bench")
    args = ["bench", "pipeline", "--shapes", "6", "--duration", "2", "--probe-readings", "600"]
    args += ["--sensors", "24", "--clients", "2", "--bridges", "2", "--workers", "2", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["engine"] == "pipeline"
    (shape,) = report["shapes"]
    assert {s["stage"] for s in shape["stages"]} == STAGES | {"kafka_produce", "kafka_consume"}
    assert shape["end_to_end"]["stored"] == shape["end_to_end"]["expected"] > 0
    so = report["scale_out"]
    assert so["ok"], so
    assert so["missing"] == so["stored_twice"] == 0
    assert so["readings_stored"] == so["readings_acknowledged"] > 0
    assert set(so["bridges"]) == {"bridge0", "bridge1"}
    assert all(b and b["messages"] > 0 for b in so["bridges"].values()), so["bridges"]
    assert so["messages_bridged"] >= so["messages_acknowledged_to_publishers"]
    assert set(so["workers"]) == {"worker0", "worker1"}
    partitions = [p for w in so["workers"].values() for p in w["partitions"]]
    assert sorted(partitions) == list(range(6))  # split, every partition owned once
    assert all(w["readings_stored"] > 0 for w in so["workers"].values()), so["workers"]
    assert sum(w["readings_stored"] for w in so["workers"].values()) == so["readings_stored"]
