"""The corpus: every device payload in tests/fixtures must decode whole through route_message."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sensors.intake import route_message
from sensors.reading import decode_reading
from sensors.validation import Limits

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
# tests/fixtures/payloads/README.md: the topic each payload is sent on
TOPICS = {
    "senml-sds011-5331.json": "civicpulse/aberdeen/air_quality/sds011-5331",
    "civicpulse-sds011-5331-batch.json": "civicpulse/aberdeen/air_quality/sds011-5331",
    "senml-milesight-em400-bin.json": "civicpulse/edinburgh/waste_bin/em400-0042",
    "senml-energy-meter-primary.json": "civicpulse/camden/energy_meter/meter-17",
}
ANY_TIME = Limits(max_past=timedelta(days=36500), max_future=timedelta(days=36500))


def test_every_payload_fixture_is_in_the_corpus() -> None:
    assert {p.name for p in (FIXTURES / "payloads").glob("*.json")} == set(TOPICS)


@pytest.mark.parametrize("name", sorted(TOPICS))
def test_corpus_payload_decodes_whole(name: str) -> None:
    payload = (FIXTURES / "payloads" / name).read_bytes()
    document = json.loads(payload)
    records = len(document) if isinstance(document, list) else len(document["readings"])
    routed = route_message(TOPICS[name], payload, datetime.now(UTC), ANY_TIME)
    assert routed.deadletter is None, routed.deadletter
    assert len(routed.readings) == records
    for key, value in routed.readings:
        assert key == decode_reading(value).sensor_id.encode()


def test_real_sds011_rows_decode_as_sent() -> None:
    """Sensor.Community rows (real SDS011 data, Aberdeen 2018) as the device's SenML pack."""
    rows = 0
    for path in sorted((FIXTURES / "aberdeen").glob("sds011_sensor_*.csv")):
        sensor = "sds011-" + path.name.split("_")[2]
        topic = f"civicpulse/aberdeen/air_quality/{sensor}"
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh, delimiter=";"):
                if not row["P1"] or not row["P2"]:
                    continue
                when = datetime.fromisoformat(row["timestamp"]).replace(tzinfo=UTC)
                pack = [
                    {"bn": f"urn:dev:civicpulse:{sensor}:", "bt": when.timestamp(), "bu": "ug/m3",
                     "bver": 26, "n": "P1", "v": float(row["P1"])},
                    {"n": "P2", "v": float(row["P2"])},
                ]  # fmt: skip
                routed = route_message(topic, json.dumps(pack).encode(), when, ANY_TIME)
                assert routed.deadletter is None, (row, routed.deadletter)
                got = {r.metric: r.value for r in (decode_reading(v) for _k, v in routed.readings)}
                assert got == {"pm10": float(row["P1"]), "pm2_5": float(row["P2"])}
                rows += 1
    assert rows >= 90
