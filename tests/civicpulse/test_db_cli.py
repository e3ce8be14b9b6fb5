"""`civicpulse db migrate|status|retention` on a real PostgreSQL."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests.processes import civic_env

pytestmark = pytest.mark.integration


def _cli(db: str, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "civicpulse.cli", "db", *args],
        env=civic_env(database_url=db, **settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_migrate_is_idempotent_and_retention_keeps_the_horizon(fresh_db: str) -> None:
    first = _cli(fresh_db, "migrate", "--json")
    assert first.returncode == 0, first.stderr
    applied = json.loads(first.stdout)["applied"]
    assert applied[:3] == ["000_extensions.sql", "001_readings.sql", "002_readings_1m.sql"]
    again = _cli(fresh_db, "migrate", "--json")
    assert json.loads(again.stdout) == {"applied": []}
    assert json.loads(_cli(fresh_db, "status", "--json").stdout) == {"pending": []}

    now = datetime.now(UTC)
    with psycopg.connect(fresh_db) as conn:
        for age_days in (200, 40, 1):
            conn.execute(
                "INSERT INTO readings (time, council, sensor_id, kind, metric, value, unit,"
                " received_at) VALUES (%s, 'bath', 'aq-1', 'air_quality', 'no2', 1, 'ug/m3', %s)",
                (now - timedelta(days=age_days), now),
            )
    kept = _cli(fresh_db, "retention", "--json", retention_raw_days="60")
    assert kept.returncode == 0, kept.stderr
    assert json.loads(kept.stdout)["deleted"]["readings"] == 1
    with psycopg.connect(fresh_db) as conn:
        ages = sorted(
            round((now - t).total_seconds() / 86400)
            for (t,) in conn.execute("SELECT time FROM readings").fetchall()
        )
    assert ages == [1, 40]


def test_an_unreachable_database_is_a_one_line_error() -> None:
    out = _cli("postgresql://postgres@127.0.0.1:1/civicpulse", "migrate")
    assert out.returncode == 1
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "is PostgreSQL running" in lines[0], out.stderr
