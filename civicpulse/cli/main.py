"""The root ``civicpulse`` app: ingest, process, db and simulate; the other groups register here."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from civicpulse.cli import alerts as alerts_cli
from civicpulse.cli import api as api_cli
from civicpulse.cli import boundary
from civicpulse.cli import dashboards as dashboards_cli
from civicpulse.cli import embedded as embedded_cli
from civicpulse.cli import registry as registry_cli
from civicpulse.cli import reports as reports_cli
from civicpulse.cli import sharing as sharing_cli
from civicpulse.cli.console import console, fail
from civicpulse.cli.options import DatabaseUrl, JsonOutput, KafkaBootstrap, MqttUrl, Sensors
from civicpulse.cli.probe import unreachable
from civicpulse.cli.signals import on_stop_signals, run_faust_worker
from civicpulse.settings import Settings
from civicpulse.wiring import (
    build_bridge,
    build_faust_app,
    build_storage_policy,
    configure_logging,
)

app = typer.Typer(
    help="civicpulse — real-time IoT sensor platform for UK councils.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.callback()(boundary.root)
db_app = typer.Typer(help="Database schema: migrations and status.", no_args_is_help=True)
app.add_typer(db_app, name="db")


@app.command()
def ingest(
    mqtt_url: MqttUrl = None,
    kafka_bootstrap: KafkaBootstrap = None,
    client_id: Annotated[
        str | None,
        typer.Option(help="MQTT client id (stable per bridge) (env CIVICPULSE_MQTT_CLIENT_ID)"),
    ] = None,
    retire: Annotated[
        bool,
        typer.Option(
            "--retire",
            help="Scale down: drain this client id's queued messages into Kafka, delete its session, exit",
        ),
    ] = False,
) -> None:
    """Run the MQTT → Kafka bridge (QoS 1 shared subscription, ack after Kafka ack)."""
    settings = Settings.load(
        mqtt_url=mqtt_url, kafka_bootstrap=kafka_bootstrap, mqtt_client_id=client_id
    )
    _need_kafka(settings)
    configure_logging(settings)
    bridge = build_bridge(settings)
    on_stop_signals(bridge.stop)  # within seconds, even while Kafka does not answer
    try:
        if retire:
            drained = bridge.retire()
            console.print(f"retired {settings.mqtt_client_id}: drained {drained} message(s)")
            return
        bridge.run()
    except Exception as exc:  # one line for people; the log has the traceback
        raise fail(f"{exc} — check the broker and Kafka URLs") from exc


@app.command()
def process(
    kafka_bootstrap: KafkaBootstrap = None,
    database_url: DatabaseUrl = None,
    migrate_first: Annotated[
        bool,
        typer.Option("--migrate/--no-migrate", help="Apply pending migrations before starting"),
    ] = True,
) -> None:
    """Run a Faust stream-processing worker: readings topic → database (scale by running N)."""
    settings = Settings.load(kafka_bootstrap=kafka_bootstrap, database_url=database_url)
    _need_kafka(settings)
    configure_logging(settings)
    if migrate_first:
        _migrate(settings.database_url, settings)
    sys.argv = sys.argv[:1]  # Faust parses argv itself; our flags are already read
    run_faust_worker(build_faust_app(settings), loglevel=settings.log_level)


def _need_kafka(settings: Settings) -> None:
    """Fail in one line, before any retrying, if no Kafka bootstrap server answers."""
    why = unreachable(settings.kafka_bootstrap)
    if why is not None:
        raise fail(f"Kafka unreachable ({why}) — start Kafka or pass --kafka-bootstrap HOST:PORT")


def _migrate(database_url: str, settings: Settings | None = None) -> list[str]:
    """Apply migrations, then (on TimescaleDB) register the storage policies."""
    from storage import StoreUnavailable, connect, migrate
    from storage.retention import apply_policies

    try:
        applied = [m.name for m in migrate(database_url)]
        if settings is not None:
            policy = build_storage_policy(settings)
            with connect(database_url, autocommit=True) as conn:
                apply_policies(conn, policy)
        return applied
    except StoreUnavailable as exc:
        raise fail(
            f"{exc} — is PostgreSQL running? `civicpulse run` starts one; --database-url or CIVICPULSE_DATABASE_URL says where"
        ) from exc
    except ValueError as exc:  # an inconsistent retention policy
        raise fail(f"{exc} — check the CIVICPULSE_RETENTION_* settings") from exc


@db_app.command("migrate")
def db_migrate(
    database_url: DatabaseUrl = None,
    as_json: JsonOutput = False,
) -> None:
    """Apply pending numbered migrations from sql/ (idempotent).

    On TimescaleDB also register the compression, refresh and retention policies from CIVICPULSE_RETENTION_*.
    """
    settings = Settings.load(database_url=database_url)
    applied = _migrate(settings.database_url, settings)
    if as_json:
        print(json.dumps({"applied": applied}))
    elif applied:
        console.print(f"applied {len(applied)} migration(s): " + ", ".join(applied))
    else:
        console.print("database is up to date")


@db_app.command("retention")
def db_retention(
    database_url: DatabaseUrl = None,
    as_json: JsonOutput = False,
) -> None:
    """Delete what the retention horizons no longer keep: run it daily.

    On TimescaleDB its own jobs drop readings and rollups; this trims readings_1m, old alerts and dead letters.
    """
    from storage import StoreUnavailable, connect
    from storage.retention import enforce_retention

    settings = Settings.load(database_url=database_url)
    try:
        with connect(settings.database_url, autocommit=True) as conn:
            deleted = enforce_retention(conn, build_storage_policy(settings))
    except StoreUnavailable as exc:
        raise fail(
            f"{exc} — is PostgreSQL running? `civicpulse run` starts one; --database-url or CIVICPULSE_DATABASE_URL says where"
        ) from exc
    if as_json:
        print(json.dumps({"deleted": deleted}))
    else:
        for relation, n in deleted.items():
            console.print(f"{relation}: {n} row(s) deleted")


@db_app.command("status")
def db_status(
    database_url: DatabaseUrl = None,
    as_json: JsonOutput = False,
) -> None:
    """Show which migrations are pending."""
    from storage import StoreUnavailable, pending

    settings = Settings.load(database_url=database_url)
    try:
        todo = [m.name for m in pending(settings.database_url)]
    except StoreUnavailable as exc:
        raise fail(
            f"{exc} — is PostgreSQL running? `civicpulse run` starts one; --database-url or CIVICPULSE_DATABASE_URL says where"
        ) from exc
    if as_json:
        print(json.dumps({"pending": todo}))
    else:
        console.print("pending: " + (", ".join(todo) if todo else "none"))


@app.command()
def simulate(
    sensors: Sensors = 300,
    rate: Annotated[
        float, typer.Option("--rate", min=0.001, help="MQTT messages per second")
    ] = 100.0,
    duration: Annotated[float, typer.Option("--duration", min=0.0, help="Seconds to run")] = 60.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed: same seed, same readings")] = 1,
    speed: Annotated[
        float, typer.Option("--speed", min=0.001, help="Simulated seconds per wall second")
    ] = 1.0,
    start: Annotated[
        datetime | None,
        typer.Option("--start", help="Event time of the first reading (UTC ISO); default now"),
    ] = None,
    bad_ratio: Annotated[
        float,
        typer.Option("--bad-ratio", min=0.0, max=1.0, help="Share of deliberately bad messages"),
    ] = 0.0,
    record: Annotated[
        Path | None,
        typer.Option(
            "--record",
            help="Write the messages to this recording file instead of (or as well as) publishing",
        ),
    ] = None,
    no_publish: Annotated[
        bool, typer.Option("--no-publish", help="Only record; do not connect to MQTT")
    ] = False,
    mqtt_url: MqttUrl = None,
) -> None:
    """Publish realistic readings for a fleet of air-quality, bin and energy sensors (QoS 1)."""
    from civicpulse.cli.simulate import run_simulation
    from simulator import PublishError

    settings = Settings.load(mqtt_url=mqtt_url)
    when = (start.replace(tzinfo=UTC) if start and start.tzinfo is None else start) or datetime.now(
        UTC
    )
    try:
        stats = run_simulation(
            n_sensors=sensors,
            rate=rate,
            duration=duration,
            seed=seed,
            speed=speed,
            start=when,
            bad_ratio=bad_ratio,
            record=record,
            publish_to=None if no_publish else settings.mqtt_url,
            console=console,
        )
    except (OSError, ValueError, PublishError) as exc:
        raise fail(f"{exc} — is the MQTT broker at {settings.mqtt_url} running?") from exc
    console.print(stats)


for _commands in (
    embedded_cli,
    alerts_cli,
    reports_cli,
    dashboards_cli,
    registry_cli,
    sharing_cli,
    api_cli,
):
    _commands.register(app)


def main() -> None:
    """Entry point of the ``civicpulse`` console script: one error line, never a traceback."""
    sys.exit(boundary.run_cli(app))


if __name__ == "__main__":
    main()
