"""The embedded-mode commands: ``run`` (broker + engine + database), ``demo`` and ``replay``."""

from __future__ import annotations

import asyncio
import logging
import math
import signal
import threading
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from civicpulse.cli.console import fail
from civicpulse.cli.options import EmbeddedDatabaseUrl, MqttUrl, Sensors
from civicpulse.settings import Settings
from civicpulse.wiring import configure_logging
from trust import AuthMode

if TYPE_CHECKING:
    from embedded import EmbeddedEngine

console = Console(stderr=True)

DataDir = Annotated[
    Path | None,
    typer.Option("--data-dir", help="Embedded database directory (env CIVICPULSE_DATA_DIR)"),
]
BatchSize = Annotated[
    int | None,
    typer.Option(
        "--batch-size", min=1, help="Most readings per database commit (env CIVICPULSE_BATCH_SIZE)"
    ),
]


Auth = Annotated[
    AuthMode | None,
    typer.Option(
        "--auth",
        case_sensitive=False,
        help="Device authentication at the broker: auto (anonymous clients only while it listens on loopback), required, off (env CIVICPULSE_AUTH)",
    ),
]


_LOCAL_HOSTS = {"127.0.0.1", "localhost", "0.0.0.0", "::1", "::"}  # noqa: S104 - bind choice


def _settings(
    mqtt_url: str | None, data_dir: Path | None, batch_size: int | None, auth: str | None = None
) -> Settings:
    try:
        settings = Settings.load(
            mqtt_url=mqtt_url,
            data_dir=str(data_dir) if data_dir else None,
            batch_size=batch_size,
            auth=auth,
        )
    except ValueError as exc:
        raise fail(str(exc)) from exc
    configure_logging(settings)
    for noisy in ("amqtt", "transitions", "pgserver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return settings


def _engine(
    settings: Settings, database_url: str | None, external_broker: bool = False
) -> EmbeddedEngine:
    from civicpulse.wiring import build_embedded_engine
    from sensors.mqtt_url import BrokerUrl

    try:
        endpoint = BrokerUrl.parse(settings.mqtt_url)
    except ValueError as exc:
        raise fail(f"{exc} — pass --mqtt-url mqtt://127.0.0.1:1883") from exc
    if not external_broker and (
        endpoint.tls or endpoint.username or endpoint.host not in _LOCAL_HOSTS
    ):
        raise fail(
            f"{settings.mqtt_url} is not a local address for the embedded broker — "
            "pass --mqtt-url mqtt://127.0.0.1:PORT, or add --external-broker to "
            "subscribe to that broker instead"
        )
    return build_embedded_engine(settings, endpoint, database_url, external_broker)


def _serve(
    engine: EmbeddedEngine, during: Callable[[threading.Event], Awaitable[None]] | None = None
) -> None:
    """Start ``engine``, print where it listens, run ``during`` (if any), stop on a signal."""
    from embedded import ListenError
    from storage import StoreUnavailable

    async def main() -> None:
        stop = asyncio.Event()
        stopped = threading.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await engine.start()
        except ListenError as exc:
            await engine.stop()
            raise fail(
                f"{exc} — stop the other broker or pass --mqtt-url mqtt://127.0.0.1:OTHER_PORT"
            ) from exc
        db = (
            "embedded, data in " + str(engine.config.data_dir)
            if engine.embedded_database
            else "external"
        )
        if engine.gate.mode is AuthMode.OFF:
            console.print(
                "warning: auth off — anyone may connect and publish to any topic;"
                " use it only on a closed test network",
                soft_wrap=True,
            )
        print(f"MQTT broker  {engine.mqtt_url}  (QoS 1 to civicpulse/<council>/<kind>/<sensor>)")
        print(f"Auth         {engine.auth_banner()}")
        print(f"PostgreSQL   psql '{engine.database_url}'  ({db})")
        print("ready — Ctrl-C to stop", flush=True)
        side = asyncio.ensure_future(during(stopped)) if during else None
        waiters = [asyncio.ensure_future(stop.wait())] + ([side] if side else [])
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        stopped.set()
        if side is not None:
            await asyncio.gather(side, return_exceptions=True)
        console.print("stopping: committing messages in flight…")
        await engine.stop()
        stats = engine.committer.stats
        console.print(f"stopped after {stats.messages} messages, {stats.readings} readings")

    try:
        asyncio.run(main())
    except StoreUnavailable as exc:
        raise fail(f"{exc} — check --database-url, or remove a broken --data-dir") from exc


def run(
    mqtt_url: MqttUrl = None,
    data_dir: DataDir = None,
    database_url: EmbeddedDatabaseUrl = None,
    batch_size: BatchSize = None,
    external_broker: Annotated[
        bool,
        typer.Option(
            "--external-broker",
            help="Subscribe to the broker at --mqtt-url (e.g. Mosquitto) instead of embedding one; acks after commit",
        ),
    ] = False,
    auth: Auth = None,
) -> None:
    """Run the platform on this machine: embedded MQTT broker, stream engine and PostgreSQL.

    The broker listens at --mqtt-url (with --external-broker: subscribes to it).
    """
    settings = _settings(mqtt_url, data_dir, batch_size, auth.value if auth else None)
    _serve(_engine(settings, database_url, external_broker))


def demo(
    sensors: Sensors = 300,
    rate: Annotated[
        float, typer.Option("--rate", min=0.1, help="MQTT messages per second")
    ] = 100.0,
    bad_every: Annotated[
        int, typer.Option("--bad-every", min=0, help="One bad message every N (0: none)")
    ] = 50,
    duration: Annotated[
        float,
        typer.Option("--duration", min=0.0, help="Stop after this many seconds (0: until Ctrl-C)"),
    ] = 0.0,
    mqtt_url: MqttUrl = None,
    data_dir: DataDir = None,
    database_url: EmbeddedDatabaseUrl = None,
) -> None:
    """Run plus a simulated fleet publishing to it, with a live view of what is stored."""
    settings = _settings(mqtt_url, data_dir, None, AuthMode.AUTO.value)  # the fleet is anonymous
    engine = _engine(settings, database_url)

    async def simulate_and_show(stopped: threading.Event) -> None:
        from simulator import BadMessage, Emission, Fleet, bad_messages, publish

        fleet = Fleet.build(sensors, seed=1)
        start = datetime.now(UTC)

        def messages() -> Iterator[Emission | BadMessage]:
            bad = bad_messages(1, 10**9, start, fleet.addresses)
            for i, emission in enumerate(fleet.emissions(10**9, start, rate)):
                if stopped.is_set():
                    return
                yield emission
                if bad_every and i % bad_every == bad_every - 1:
                    yield next(bad)

        publisher = asyncio.ensure_future(
            asyncio.to_thread(
                publish,
                messages(),
                engine.mqtt_url,
                rate * (1 + (1 / bad_every if bad_every else 0)),
            )
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + duration if duration else math.inf
        alerts: list[tuple[object, ...]] = []
        with Live(_view(engine, 0.0, alerts), console=console, refresh_per_second=2) as live:
            last, last_t = 0, loop.time()
            while not stopped.is_set() and not publisher.done() and loop.time() < deadline:
                await asyncio.sleep(1.0)
                now, stored = loop.time(), engine.committer.pipeline.stats.stored
                alerts = await asyncio.to_thread(_latest_alerts, engine.database_url, alerts)
                live.update(_view(engine, (stored - last) / (now - last_t), alerts))
                last, last_t = stored, now
        stopped.set()
        await asyncio.gather(publisher, return_exceptions=True)

    _serve(engine, simulate_and_show)


_ALERTS = """
SELECT opened_at, sensor_id, rule, severity, state FROM alerts
 ORDER BY opened_at DESC LIMIT 6
"""


def _latest_alerts(url: str, previous: list[tuple[object, ...]]) -> list[tuple[object, ...]]:
    """The newest alerts (anomalies, DAQI bands, stale sensors); the last answer on error."""
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            return conn.execute(_ALERTS).fetchall()
    except psycopg.Error:
        return previous


def _view(engine: EmbeddedEngine, per_s: float, alerts: list[tuple[object, ...]]) -> Group:
    c = engine.committer.stats
    p = engine.committer.pipeline.stats
    table = Table(title=f"civicpulse demo — {engine.mqtt_url}", show_header=False)
    table.add_row("readings stored /s", f"{per_s:,.0f}")
    table.add_row("MQTT messages", f"{c.messages:,}")
    table.add_row("readings stored", f"{p.stored:,}")
    table.add_row("duplicates skipped", f"{p.duplicates:,}")
    table.add_row("rejected (dead letters)", f"{sum(c.rejected.values()):,}")
    for reason, n in c.rejected.most_common():
        table.add_row(f"  {reason}", f"{n:,}")
    table.add_row("commits / last took", f"{c.batches:,} / {c.last_commit_s * 1000:.0f} ms")
    latest = Table("opened", "sensor", "rule", "severity", "state", title="latest alerts")
    for opened, *rest in alerts:
        when = opened.strftime("%H:%M:%S") if isinstance(opened, datetime) else str(opened)
        latest.add_row(when, *(str(v) for v in rest))
    return Group(table, latest)


def replay(
    file: Annotated[
        Path, typer.Argument(help="Recording (JSON Lines from `civicpulse simulate --record`)")
    ],
    mqtt_url: MqttUrl = None,
    rate: Annotated[
        float,
        typer.Option("--rate", min=0.0, help="Messages per second (0: as fast as acknowledged)"),
    ] = 200.0,
) -> None:
    """Publish a recording over MQTT QoS 1, waiting for every acknowledgement."""
    from simulator import PublishError, publish, read_recording

    settings = Settings.load(mqtt_url=mqtt_url)
    if not file.is_file():
        raise fail(f"{file} not found — record one with `civicpulse simulate --record {file}`")
    try:
        stats = publish(
            read_recording(file),
            settings.mqtt_url,
            rate if rate > 0 else math.inf,
            progress=lambda sent, acked: console.print(f"sent {sent:,}, acknowledged {acked:,}"),
        )
    except ValueError as exc:
        raise fail(f"{exc} — is this a civicpulse recording?") from exc
    except PublishError as exc:
        raise fail(
            f"{exc} — is a broker at {settings.mqtt_url}? start one with `civicpulse run`"
        ) from exc
    console.print(
        f"replayed {stats.sent:,} messages ({stats.acked:,} acknowledged) in {stats.elapsed:.1f} s"
    )


def register(app: typer.Typer) -> None:
    """Add ``run``, ``demo`` and ``replay`` to the ``civicpulse`` command line."""
    app.command("run")(run)
    app.command("demo")(demo)
    app.command("replay")(replay)
