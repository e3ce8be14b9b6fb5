"""Options that several commands take, each declared once: connection URLs, --json, filters."""

from __future__ import annotations

from typing import Annotated

import typer

# Help texts write "(env NAME)": Typer's rich help takes "[env NAME]" for markup and drops it.
# A flag left out (None) falls back to that variable in civicpulse.settings.Settings.load.

DatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", help="PostgreSQL URL (env CIVICPULSE_DATABASE_URL)"),
]
# ``run`` and ``demo`` ignore CIVICPULSE_DATABASE_URL: without the flag they start their own.
EmbeddedDatabaseUrl = Annotated[
    str | None,
    typer.Option("--database-url", help="Use this PostgreSQL instead of the embedded one"),
]
MqttUrl = Annotated[
    str | None,
    typer.Option("--mqtt-url", help="MQTT broker URL (env CIVICPULSE_MQTT_URL)"),
]
KafkaBootstrap = Annotated[
    str | None,
    typer.Option(
        "--kafka-bootstrap", help="Kafka bootstrap servers (env CIVICPULSE_KAFKA_BOOTSTRAP)"
    ),
]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON")]
Council = Annotated[str | None, typer.Option("--council", help="Only this council")]
Sensors = Annotated[int, typer.Option("--sensors", min=1, help="Number of simulated sensors")]
