"""The embedded-mode commands: ``run`` (broker + engine + database), ``demo`` and ``replay``."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import math
import os
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from civicpulse.cli.console import cli_name, fail
from civicpulse.cli.demo_live import LiveView
from civicpulse.cli.demo_view import LATEST_DEAD_LETTERS, DeadLetterWatch
from civicpulse.cli.options import EmbeddedDatabaseUrl, MqttUrl, Sensors
from civicpulse.cli.signals import STOP_SIGNALS, stop_deadline
from civicpulse.cli.state import PlatformState, remove_state, write_state
from civicpulse.redact import redact
from civicpulse.settings import Settings, default_data_dir
from civicpulse.wiring import configure_logging
from trust import AuthMode

if TYPE_CHECKING:
    from civicpulse.cli.api_server import ApiTask
    from embedded import EmbeddedEngine

console = Console(stderr=True)
log = logging.getLogger("civicpulse.run")

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
    mqtt_url: str | None,
    data_dir: Path | None,
    batch_size: int | None,
    auth: str | None = None,
    demo: bool = False,
) -> Settings:
    # The demo never shares a data dir with `run` (simulated councils in a real database):
    # it ignores CIVICPULSE_DATA_DIR and defaults to a directory of its own.
    if demo and data_dir is None:
        data_dir = Path(default_data_dir("civicpulse-demo"))
    try:
        settings = Settings.load(
            mqtt_url=mqtt_url,
            data_dir=str(data_dir) if data_dir else None,
            batch_size=batch_size,
            auth=auth,
        )
    except ValueError as exc:
        raise fail(str(exc), code=2) from exc
    configure_logging(settings)
    for noisy in ("amqtt", "transitions", "pgserver"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return settings


def _check_thresholds(settings: Settings) -> None:
    """Read the thresholds file now, so a bad one fails before anything starts."""
    from civicpulse.wiring import build_detection
    from rules.thresholds import ThresholdError

    where = f"CIVICPULSE_THRESHOLDS_FILE={settings.thresholds_file}"
    try:
        build_detection(settings)
    except OSError as exc:
        raise fail(f"{where}: {exc.strerror or exc} — fix the path or unset it", code=2) from exc
    except (ThresholdError, ValueError) as exc:
        raise fail(f"{exc} — fix {where} (see config/thresholds.example.toml)", code=2) from exc


def _engine(
    settings: Settings, database_url: str | None, external_broker: bool = False
) -> EmbeddedEngine:
    from civicpulse.wiring import build_embedded_engine
    from sensors.mqtt_url import BrokerUrl

    _check_thresholds(settings)
    try:
        endpoint = BrokerUrl.parse(settings.mqtt_url)
    except ValueError as exc:
        raise fail(f"{exc} — pass --mqtt-url mqtt://127.0.0.1:1883", code=2) from exc
    if not external_broker and (
        endpoint.tls or endpoint.username or endpoint.host not in _LOCAL_HOSTS
    ):
        raise fail(
            f"{settings.mqtt_url} is not a local address for the embedded broker — "
            "pass --mqtt-url mqtt://127.0.0.1:PORT, or add --external-broker to "
            "subscribe to that broker instead",
            code=2,
        )
    return build_embedded_engine(settings, endpoint, database_url, external_broker)


async def _watch_dead_letters(engine: EmbeddedEngine, stopped: threading.Event) -> None:
    """Log one line per dead-letter reason as they happen (rate-limited), for `run`."""
    watch = DeadLetterWatch()
    loop = asyncio.get_running_loop()
    while not stopped.is_set():
        await asyncio.sleep(1.0)
        rejected = engine.committer.stats.rejected
        due = watch.due(rejected, loop.time())
        if due:
            latest = await asyncio.to_thread(_latest_dead_letters, engine.database_url, list(due))
            for reason, new in due.items():
                log.warning(watch.line(reason, new, rejected[reason], latest.get(reason)))


def _latest_dead_letters(url: str, reasons: list[str]) -> dict[str, tuple[str, str]]:
    import psycopg

    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            rows = conn.execute(LATEST_DEAD_LETTERS, (reasons,)).fetchall()
    except psycopg.Error:
        return {}
    return {reason: (topic, detail or "") for reason, topic, detail in rows}


def _serve(
    engine: EmbeddedEngine,
    mode: str,
    during: Callable[[threading.Event, str], Awaitable[None]] | None = None,
    settings: Settings | None = None,
    open_data: Sequence[str] = (),
) -> None:
    """Start ``engine`` (and the open-data API, unless its port is 0), print where they
    listen, run ``during`` (if any), stop on a signal. ``open_data``: councils registered and
    shared with the public at start (the demo's simulated ones)."""
    from embedded import ListenError
    from storage import StoreUnavailable

    async def main() -> None:
        stop = asyncio.Event()
        stopped = threading.Event()
        loop = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:
            stop.set()
            stop_deadline(signum)  # a clean stop, or an exit within seconds anyway

        for sig in STOP_SIGNALS:
            loop.add_signal_handler(sig, on_signal, sig)
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
        state = PlatformState(
            pid=os.getpid(),
            mode=mode,
            mqtt_url=engine.mqtt_url,
            database_url=engine.database_url,
            data_dir=str(engine.config.data_dir),
            started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        state_file = write_state(state)
        api = await _start_api(engine, settings, open_data)
        mqtt, pg = redact(engine.mqtt_url), redact(engine.database_url)
        print(f"MQTT broker  {mqtt}  (QoS 1 to civicpulse/<council>/<kind>/<sensor>)")
        print(f"Auth         {engine.auth_banner()}")
        print(f"PostgreSQL   psql '{pg}'  ({db})")
        if api is not None:
            print(f"Open data    {api[1]}/  (SensorThings {api[1]}/v1.1, API docs {api[1]}/docs)")
        print(f"State file   {state_file}  (`{cli_name()} alerts list` and the others find it)")
        print("ready — Ctrl-C to stop", flush=True)
        api_url = f"{api[1]}/" if api is not None else ""
        side = asyncio.ensure_future(during(stopped, api_url)) if during else None
        watch = asyncio.ensure_future(_watch_dead_letters(engine, stopped)) if not side else None
        waiters = [asyncio.ensure_future(stop.wait())] + ([side] if side else [])
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.set()
            remove_state(state.data_dir, state.pid)
        for task in (side, watch):
            if task is not None:
                await asyncio.gather(task, return_exceptions=True)
        console.print("stopping: committing messages in flight…")
        if api is not None:
            await api[0].stop()
        await engine.stop()
        stats = engine.committer.stats
        console.print(f"stopped after {stats.messages} messages, {stats.readings} readings")

    try:
        asyncio.run(main())
    except StoreUnavailable as exc:
        raise fail(f"{exc} — check --database-url, or remove a broken --data-dir") from exc


async def _start_api(
    engine: EmbeddedEngine, settings: Settings | None, open_data: Sequence[str]
) -> tuple[ApiTask, str] | None:
    """The API on the engine's database, or None (port 0, or it could not listen: warned)."""
    from civicpulse.cli.api_server import ApiTask
    from civicpulse.wiring import api_public_url, build_api_app

    if settings is None or not settings.api_port:
        return None
    if open_data:
        await asyncio.to_thread(_open_data, engine.database_url, open_data)
    task = ApiTask(
        build_api_app(settings, engine.database_url), settings.api_host, settings.api_port
    )
    why = await task.start()
    if why is not None:
        console.print(f"warning: open-data API not started: {why}", soft_wrap=True)
        return None
    return task, api_public_url(settings)


def _open_data(database_url: str, councils: Sequence[str]) -> None:
    """Register the demo's simulated councils and share their data with the public."""
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        for council in councils:
            conn.execute(
                "INSERT INTO councils (slug, name) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                (council, f"{council.title()} (simulated)"),
            )
            conn.execute(
                "INSERT INTO agreements (provider, recipient, resolution, purpose, legal_basis,"
                " legal_basis_text, starts_at, min_contributors)"
                " SELECT %s, 'public', 'raw', 'civicpulse demo: simulated data',"
                " 'not_personal_data', 'simulated data', now(), 1"
                " WHERE NOT EXISTS (SELECT 1 FROM agreements WHERE provider = %s"
                " AND recipient = 'public' AND status = 'active')",
                (council, council),
            )


ApiPort = Annotated[
    int | None,
    typer.Option(
        "--api-port",
        min=0,
        max=65535,
        help="Open-data API port (0: no API; env CIVICPULSE_API_PORT)",
    ),
]


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
    api_port: ApiPort = None,
) -> None:
    """Run the platform on this machine: embedded MQTT broker, stream engine and PostgreSQL.

    The broker listens at --mqtt-url (with --external-broker: subscribes to it); the
    open-data API at CIVICPULSE_API_HOST:--api-port.
    """
    settings = _settings(mqtt_url, data_dir, batch_size, auth.value if auth else None)
    if api_port is not None:
        settings = dataclasses.replace(settings, api_port=api_port)
    _serve(_engine(settings, database_url, external_broker), "run", settings=settings)


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
    data_dir: Annotated[
        Path | None,
        typer.Option(
            "--data-dir",
            help="Embedded database directory (default: the demo's own, never run's)",
        ),
    ] = None,
    database_url: EmbeddedDatabaseUrl = None,
    api_port: ApiPort = None,
) -> None:
    """Run plus a simulated fleet publishing to it, with a live view of what is stored."""
    # the fleet is anonymous
    settings = _settings(mqtt_url, data_dir, None, AuthMode.AUTO.value, demo=True)
    if api_port is not None:
        settings = dataclasses.replace(settings, api_port=api_port)
    engine = _engine(settings, database_url)

    async def simulate_and_show(stopped: threading.Event, api_url: str) -> None:
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
        show = LiveView(engine, bad_every, console, api_url=api_url)
        with show:
            while not stopped.is_set() and not publisher.done() and loop.time() < deadline:
                await asyncio.sleep(1.0)
                await show.refresh(loop.time())
        stopped.set()
        await asyncio.gather(publisher, return_exceptions=True)

    from simulator import Fleet as _Fleet

    councils = sorted({s.council for s in _Fleet.build(sensors, seed=1).sensors})
    _serve(engine, "demo", simulate_and_show, settings=settings, open_data=councils)


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
    messages = read_recording(file)
    try:  # a corrupt file fails here, before any connection
        first = next(messages, None)
    except ValueError as exc:
        raise fail(f"{exc} — is this a civicpulse recording?") from exc
    try:
        stats = publish(
            itertools.chain([first] if first else [], messages),
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
