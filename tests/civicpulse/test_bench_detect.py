"""``civicpulse bench detect``: its report's shape, the backlog property, and its URLs.

The smoke test runs the small scenario (10 sensors: meters at 1, 15 and 30 min, a device
backlog, a congested gateway, a flapping link and a flapping tilt flag) from a clean start:
no ``--database-url``, so the bench starts and stops its own PostgreSQL.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from psycopg.conninfo import conninfo_to_dict

from civicpulse.cli.boundary import run_cli
from civicpulse.cli.main import app

REPO = Path(__file__).resolve().parents[2]


def test_the_url_civicpulse_run_prints_keeps_its_socket_and_names_the_bench_database() -> None:
    from benchmarks.detect_replay import database_conninfo

    # `civicpulse run` prints a socket URL; splitting it at the last "/" gave
    # ".../civicpulse?host=/srv/civicpulse/civicpulse_bench_detect"
    url = "postgresql://postgres@/civicpulse?host=/srv/civicpulse/pgdata"
    got = conninfo_to_dict(database_conninfo(url, "civicpulse_bench_detect"))
    assert got == {
        "user": "postgres",
        "host": "/srv/civicpulse/pgdata",
        "dbname": "civicpulse_bench_detect",
    }
    tcp = "postgresql://postgres:secret@127.0.0.1:5433/x?sslmode=disable"
    assert conninfo_to_dict(database_conninfo(tcp, "b")) == {
        "user": "postgres",
        "password": "secret",
        "host": "127.0.0.1",
        "port": "5433",
        "dbname": "b",
        "sslmode": "disable",
    }
    kv = "host=/tmp/pg port=5999 dbname=civicpulse"
    assert conninfo_to_dict(database_conninfo(kv, "b")) == {
        "host": "/tmp/pg",
        "port": "5999",
        "dbname": "b",
    }


@pytest.mark.integration
def test_bench_detect_small_from_a_clean_start(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CIVICPULSE_DATA_DIR", str(tmp_path / "no-platform-here"))
    monkeypatch.delenv("CIVICPULSE_DATABASE_URL", raising=False)
    try:
        code = run_cli(app, ["bench", "detect", "--scenario", "small", "--json"])
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capfd.readouterr()
    assert "Traceback" not in err, err
    report = json.loads(out)
    assert report["server"] == "throwaway"
    rule_keys = {"rule", "labels", "alerts", "opens", "precision", "recall", "passed"}
    rule_keys |= {"median_delay_s", "p95_delay_s", "window_s", "per_sensor_day"}
    assert report["rules"] and all(rule_keys <= set(r) for r in report["rules"])
    assert {r["rule"] for r in report["rules"]} >= {
        "energy_spike",
        "energy_out_of_hours",
        "sensor_stale",
        "sensor_data_delayed",
        "bin_tilted",
    }
    assert [m["interval_s"] for m in report["meter_intervals"]] == [60.0, 900.0, 1800.0]
    events = {"opened", "reopened", "escalated", "resolved", "withdrawn"}
    for n in report["notifications"]:
        assert set(n["expected"]) == set(n["actual"]) == events
    flapping = {n["rule"]: n for n in report["notifications"]}["bin_tilted"]
    assert flapping["actual"]["reopened"] == 3  # 6 flaps: 3 re-opens told, then held
    # a device backlog and a congested gateway: arriving, so never stale while uploading
    assert report["backlog"]["uploads"] >= 2
    assert report["backlog"]["stale_openings"] == 0
    assert report["stats"]["outbox_matches_history"] == 1.0
    assert report["passed"] is True and code == 0
