"""The embedded engine: amqtt broker + group commit into PostgreSQL, in one asyncio process."""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from pathlib import Path

from amqtt.errors import BrokerError

from embedded.auth import DirectoryLoader, DirectoryRefresher, Gate, empty_directory
from embedded.broker import DurableBroker, TlsListener, broker_config
from embedded.committer import GroupCommitter
from embedded.external import ExternalSubscriber
from embedded.postgres import EmbeddedPostgres, start_embedded_postgres
from sensors.errors import CivicPulseError
from sensors.intake import Authorize, Routed, RoutedReadings, route_in_process
from sensors.mqtt_url import BrokerUrl
from sensors.validation import Limits
from storage import DeadLetterStore, ReadingStore, migrate
from stream_processors.batch import DEFAULT_BATCH_READINGS
from stream_processors.detection import Detection
from trust import AuthMode

log = logging.getLogger(__name__)


class ListenError(CivicPulseError):
    """The embedded broker cannot listen where it was asked to (port in use, bad address)."""


def _probe_listen(host: str, port: int) -> None:
    """Bind and release ``host:port`` as asyncio will (SO_REUSEADDR), so a clash is explained."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))


@dataclass(frozen=True, slots=True)
class EmbeddedConfig:
    """What the embedded engine needs (built from the settings by the composition root)."""

    mqtt_host: str
    mqtt_port: int
    data_dir: Path
    limits: Limits
    database_url: str | None = None  # None: embedded PostgreSQL in data_dir
    batch_size: int = DEFAULT_BATCH_READINGS
    window_s: float = 0.025
    external_mqtt_url: str | None = None  # subscribe to this broker instead of embedding one
    client_id: str = "civicpulse-embedded-1"
    share_group: str = "civicpulse-ingest"
    partition: tuple[int, int] | None = None  # external broker: a static share (i, N)
    session_expiry_s: int = 86400
    thresholds_file: str = ""  # alert thresholds (TOML); empty: built-in defaults
    late_horizon_s: float = 86400.0  # late readings within this still reach the alert rules
    auth: AuthMode = AuthMode.AUTO  # anonymous clients only on a loopback listener
    directory_refresh_s: float = 2.0  # how often the device registry is reloaded
    max_packet_bytes: int = 1_048_576  # embedded broker: larger MQTT packets are refused
    tls: TlsListener | None = None  # a second, TLS listener on the same host


def _route(
    limits: Limits,
    authorize: Authorize | None,
    topic: str | bytes,
    payload: bytes,
    received_at: datetime,
) -> Routed | RoutedReadings:
    return route_in_process(topic, payload, received_at, limits, authorize)


class EmbeddedEngine:
    """Start with :meth:`start`, stop with :meth:`stop`; ``mqtt_url``/``database_url`` say where."""

    def __init__(
        self, config: EmbeddedConfig, directory_loader: DirectoryLoader = empty_directory
    ) -> None:
        """``directory_loader`` turns the database URL into a registry snapshot; it is called
        once at start (after the migrations) and then every ``directory_refresh_s``."""
        self.config = config
        self.gate = Gate(config.auth, [self._listener_host()])
        self._directory_loader = directory_loader
        self._refresher: DirectoryRefresher | None = None
        self._committer: GroupCommitter | None = None
        self._postgres: EmbeddedPostgres | None = None
        self._broker: DurableBroker | None = None
        self._external: ExternalSubscriber | None = None
        self._stores: tuple[ReadingStore, DeadLetterStore] | None = None
        self.database_url = config.database_url or ""

    def _listener_host(self) -> str:
        """Where devices connect: the embedded listener, or the external broker's host."""
        if self.config.external_mqtt_url:
            try:
                return BrokerUrl.parse(self.config.external_mqtt_url).host
            except ValueError:
                return ""  # not loopback: auto then refuses anonymous clients
        return self.config.mqtt_host

    def auth_banner(self) -> str:
        """What the start-up banner says about device authentication, in one line."""
        if not self.config.external_mqtt_url:
            return self.gate.describe()
        ingest = (
            "every device's messages accepted"
            if self.gate.anonymous
            else "messages of unknown or disabled devices dead-lettered"
        )
        return f"{self.gate.mode.value} — the external broker authenticates; {ingest}"

    @property
    def mqtt_url(self) -> str:
        """Where devices publish."""
        if self.config.external_mqtt_url:
            return self.config.external_mqtt_url
        return f"mqtt://{self.config.mqtt_host}:{self.config.mqtt_port}"

    @property
    def committer(self) -> GroupCommitter:
        """The group committer (its ``stats`` and ``pipeline.stats`` feed live views)."""
        if self._committer is None:
            raise RuntimeError("the embedded engine has not been started")
        return self._committer

    @property
    def broker(self) -> DurableBroker | None:
        """The embedded broker (None before :meth:`start`, or with an external broker)."""
        return self._broker

    @property
    def embedded_database(self) -> bool:
        """Whether the database is the embedded pgserver one."""
        return self._postgres is not None

    async def start(self) -> None:
        """Database up and migrated, then the commit loop, then the broker's listener."""
        c = self.config
        if not c.external_mqtt_url:
            try:
                _probe_listen(c.mqtt_host, c.mqtt_port)
            except OSError as exc:
                raise ListenError(
                    f"cannot listen on {self.mqtt_url}: {exc.strerror or exc}"
                ) from exc
        if c.database_url is None:
            self._postgres = await asyncio.to_thread(start_embedded_postgres, c.data_dir)
            self.database_url = self._postgres.url
        applied = await asyncio.to_thread(migrate, self.database_url)
        if applied:
            log.info("applied migrations: %s", ", ".join(m.name for m in applied))
        url = self.database_url
        self._refresher = DirectoryRefresher(
            self.gate, lambda: self._directory_loader(url), c.directory_refresh_s
        )
        await asyncio.to_thread(self._refresher.refresh)  # the first connection sees it
        self._refresher.start()
        # A message that reaches ingest although its device may not publish (an open external
        # broker, or a device disabled in flight) is dead-lettered, unless anonymous clients
        # are let in anyway (auto on loopback, off): then anything goes, as before.
        authorize = None if self.gate.anonymous else self.gate.refusal
        self._stores = (ReadingStore(self.database_url), DeadLetterStore(self.database_url))
        self._committer = GroupCommitter(
            *self._stores,
            partial(_route, c.limits, authorize),
            max_readings=c.batch_size,
            window_s=c.window_s,
            detection=Detection.configured(c.thresholds_file, c.late_horizon_s),
        )
        self._committer.start()
        if c.external_mqtt_url:
            self._external = ExternalSubscriber(
                c.external_mqtt_url,
                self._committer,
                asyncio.get_running_loop(),
                client_id=c.client_id,
                share_group=c.share_group,
                session_expiry_s=c.session_expiry_s,
                partition=c.partition,
            )
            self._external.start()
            log.info("embedded engine: external MQTT %s → %s", self.mqtt_url, self.database_url)
            return
        self._broker = DurableBroker(
            broker_config(c.mqtt_host, c.mqtt_port, self.gate, c.tls),
            self._committer,
            max_packet_bytes=c.max_packet_bytes,
            letters=DeadLetterStore(self.database_url),  # refused PUBLISH packets
            gate=self.gate,
        )
        try:
            await self._broker.start()
        except BrokerError as exc:
            raise ListenError(f"embedded broker did not start on {self.mqtt_url}: {exc}") from exc
        log.info("embedded engine: MQTT %s → %s", self.mqtt_url, self.database_url)

    async def stop(self) -> None:
        """Commit (and acknowledge) what is in flight, close the broker, stop the database."""
        if self._committer is not None:
            await self._committer.stop()  # commits and acknowledges what is in flight
        if self._external is not None:
            await asyncio.to_thread(self._external.stop)
        if self._broker is not None:
            await self._broker.shutdown()
        if self._refresher is not None:
            await asyncio.to_thread(self._refresher.stop)
        if self._stores is not None:
            for store in self._stores:
                store.close()
        if self._postgres is not None:
            await asyncio.to_thread(self._postgres.stop)
