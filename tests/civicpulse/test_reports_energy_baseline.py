"""`civicpulse report energy-baseline` on a real database: the week it was fed comes back."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest

from storage import migrate
from tests.processes import civic_env

pytestmark = pytest.mark.integration

LONDON = ZoneInfo("Europe/London")


def _watts(when: datetime, meter: int) -> float:
    local = when.astimezone(LONDON)
    return 500.0 * meter + 10.0 * (local.weekday() * 24 + local.hour)


def test_each_meter_gets_its_own_local_hour_of_week_profile(fresh_db: str) -> None:
    migrate(fresh_db)
    start = datetime(2025, 3, 3, tzinfo=UTC)  # four weeks across the BST change (30 March)
    times = [start + timedelta(minutes=30 * i) for i in range(4 * 7 * 48)]
    with psycopg.connect(fresh_db) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO readings (time, council, sensor_id, kind, metric, value, unit,"
            " received_at) VALUES (%s, 'bath', %s, 'energy_meter', 'power', %s, 'W', %s)",
            [(t, f"em-{m}", _watts(t, m), t) for m in (1, 2) for t in times],
        )
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "civicpulse.cli",
            "report",
            "energy-baseline",
            "--year",
            "2025",
            "--json",
        ],
        env=civic_env(database_url=fresh_db),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    meters = {m["sensor_id"]: m for m in json.loads(out.stdout)}
    assert set(meters) == {"em-1", "em-2"}
    for m in (1, 2):
        profile = {int(h): w for h, w in meters[f"em-{m}"]["hour_of_week_w"].items()}
        assert len(profile) == 168
        for how, watts in profile.items():
            assert watts == pytest.approx(500.0 * m + 10.0 * how)  # the local hour's value
