"""The bridge with ``CIVICPULSE_AUTH=required``: a message that got past an open broker from an
unknown or disabled device is dead-lettered (``unknown_device`` / ``device_disabled``), never
stored; a registered device's reading is stored; a disable takes effect within seconds.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.publish as publish
import psycopg
import pytest

from storage import migrate
from storage import registry_store as reg
from tests.processes import distributed_path, running, wait_until
from trust import Device

pytestmark = pytest.mark.integration


def message(sensor: str, value: float) -> str:
    return json.dumps(
        {
            "v": 1,
            "sensor_id": sensor,
            "time": datetime.now(UTC).isoformat(),
            "readings": [{"metric": "pm10", "value": value, "unit": "ug/m3"}],
        }
    )


def send(port: int, sensor: str, value: float) -> None:
    topic = f"civicpulse/regtest/air_quality/{sensor}"
    publish.single(topic, message(sensor, value), qos=1, hostname="127.0.0.1", port=port)


def stored(url: str) -> set[tuple[str, float]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT sensor_id, value FROM readings WHERE council = 'regtest'"
        ).fetchall()
    return {(s, v) for s, v in rows}


def letters(url: str) -> list[tuple[str, str]]:
    with psycopg.connect(url) as conn:
        return conn.execute(  # type: ignore[return-value]
            "SELECT reason, mqtt_topic FROM dead_letters WHERE mqtt_topic LIKE"
            " 'civicpulse/regtest/%' ORDER BY id"
        ).fetchall()


def test_bridge_dead_letters_unknown_and_disabled_devices(
    mqtt_url: str, kafka_bootstrap: str, fresh_db: str, tmp_path: Path
) -> None:
    migrate(fresh_db)
    reg.add_council(fresh_db, "regtest", "Registry Test")
    reg.add_device(fresh_db, Device("reg-known", "regtest", "air_quality"))
    reg.add_device(fresh_db, Device("reg-later-off", "regtest", "air_quality"))
    reg.add_device(fresh_db, Device("reg-off", "regtest", "air_quality"))
    reg.disable_device(fresh_db, "reg-off")
    bridge, worker = distributed_path(
        tmp_path, mqtt_url, kafka_bootstrap, fresh_db, auth="required"
    )
    port = int(mqtt_url.rsplit(":", 1)[1])
    with running(bridge, worker):
        bridge.wait_for_log("subscribed to", timeout=60)
        send(port, "reg-known", 11.0)
        send(port, "reg-stranger", 12.0)
        send(port, "reg-off", 13.0)
        send(port, "reg-later-off", 14.0)
        assert wait_until(
            lambda: len(stored(fresh_db)) >= 2 and len(letters(fresh_db)) >= 2, timeout=90
        ), worker.log_tail()
        assert stored(fresh_db) == {("reg-known", 11.0), ("reg-later-off", 14.0)}
        assert letters(fresh_db) == [
            ("unknown_device", "civicpulse/regtest/air_quality/reg-stranger"),
            ("device_disabled", "civicpulse/regtest/air_quality/reg-off"),
        ]
        reg.disable_device(fresh_db, "reg-later-off")
        time.sleep(3.5)  # the bridge reloads the registry every 2 s
        send(port, "reg-later-off", 15.0)
        assert wait_until(lambda: len(letters(fresh_db)) >= 3, timeout=30), worker.log_tail()
        assert letters(fresh_db)[2] == (
            "device_disabled",
            "civicpulse/regtest/air_quality/reg-later-off",
        )
        assert ("reg-later-off", 15.0) not in stored(fresh_db)
        assert bridge.alive and worker.alive
