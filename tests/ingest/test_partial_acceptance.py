"""Partial acceptance on the distributed path: Mosquitto → bridge → Kafka → Faust → PostgreSQL.

The same three messages as the embedded test (a JSON object, a JSON batch, a SenML pack, each
with good and bad records): the good readings reach ``readings`` and each bad record its own
``dead_letters`` row, the message kept once; the bridge acks only after both Kafka sends.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.embedded.test_partial_acceptance import check, letters, messages, publish, readings
from tests.processes import distributed_path, running, wait_until

pytestmark = pytest.mark.integration


def test_distributed_path_stores_the_good_readings_of_a_partly_bad_message(
    mqtt_url: str, kafka_bootstrap: str, fresh_db: str, tmp_path: Path
) -> None:
    bridge, worker = distributed_path(tmp_path, mqtt_url, kafka_bootstrap, fresh_db)
    port = int(mqtt_url.rsplit(":", 1)[1])
    sent = messages("partialkafka")
    readings_due = sum(len(s.stored) for s in sent)
    letters_due = sum(len(s.rejected) for s in sent)
    with running(bridge, worker):
        bridge.wait_for_log("subscribed to", timeout=60)
        for s in sent:
            publish(port, s)

        def arrived() -> None:
            assert wait_until(
                lambda: (
                    len(readings(fresh_db, "partialkafka")) >= readings_due
                    and len(letters(fresh_db, "partialkafka")) >= letters_due
                ),
                timeout=90,
            ), f"distributed path incomplete:\n{worker.log_tail()}"

        check(fresh_db, "partialkafka", sent, arrived)
        assert bridge.alive and worker.alive
