"""The composition root: build each process's parts from the one settings object."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from civicpulse.redact import RedactingFilter
from civicpulse.settings import Settings
from sensors.topics import parse_partition

if TYPE_CHECKING:
    import faust

    from embedded import DirectoryLoader, EmbeddedEngine
    from ingest.bridge import Bridge
    from sensors.mqtt_url import BrokerUrl
    from sensors.validation import Limits
    from storage.retention import StoragePolicy
    from stream_processors.detection import Detection


def configure_logging(settings: Settings) -> None:
    """One log format for every civicpulse process."""
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    for handler in logging.getLogger().handlers:  # no password ever reaches a log
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
    for noisy in ("kafka", "aiokafka", "faust", "mode"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def build_bridge(settings: Settings) -> Bridge:
    """The MQTT → Kafka bridge as configured; with ``auth=required`` it also dead-letters
    messages of unknown or disabled devices (the registry reloaded every 2 s)."""
    from ingest.bridge import Bridge, BridgeConfig

    authorize = None
    if settings.auth == "required":
        from ingest.registry_watch import RegistryWatch
        from storage.registry_store import load_directory

        watch = RegistryWatch(lambda: load_directory(settings.database_url))
        watch.start()
        authorize = watch.refusal
    return Bridge(
        BridgeConfig(
            mqtt_url=settings.mqtt_url,
            kafka_bootstrap=settings.kafka_bootstrap,
            readings_topic=settings.readings_topic,
            deadletter_topic=settings.deadletter_topic,
            client_id=settings.mqtt_client_id,
            share_group=settings.mqtt_share_group,
            partition=parse_partition(settings.mqtt_partition),
            session_expiry_s=settings.mqtt_session_expiry_s,
            partitions=settings.kafka_partitions,
            replication=settings.kafka_replication,
            delivery_timeout_s=settings.kafka_delivery_timeout_s,
            limits=build_limits(settings),
        ),
        authorize=authorize,
    )


def build_limits(settings: Settings) -> Limits:
    """What ingest accepts (payload size, how far in the past or future), for both engines."""
    from datetime import timedelta

    from sensors.validation import Limits

    return Limits(
        max_payload_bytes=settings.max_payload_bytes,
        max_past=timedelta(seconds=settings.max_past_s),
        max_future=timedelta(seconds=settings.max_future_s),
    )


def build_embedded_engine(
    settings: Settings, endpoint: BrokerUrl, database_url: str | None, external_broker: bool
) -> EmbeddedEngine:
    """The single-process engine: its broker at ``endpoint`` (or subscribed to it, external)."""
    from pathlib import Path

    from embedded import EmbeddedConfig, EmbeddedEngine
    from embedded.broker import TlsListener
    from trust import AuthMode

    return EmbeddedEngine(
        EmbeddedConfig(
            mqtt_host=endpoint.host,
            mqtt_port=endpoint.port,
            data_dir=Path(settings.data_dir).expanduser(),
            limits=build_limits(settings),
            database_url=database_url,
            batch_size=settings.batch_size,
            external_mqtt_url=settings.mqtt_url if external_broker else None,
            client_id=settings.mqtt_client_id,
            share_group=settings.mqtt_share_group,
            partition=parse_partition(settings.mqtt_partition),
            session_expiry_s=settings.mqtt_session_expiry_s,
            thresholds_file=settings.thresholds_file,
            late_horizon_s=settings.late_horizon_hours * 3600.0,
            auth=AuthMode(settings.auth),
            max_packet_bytes=settings.max_packet_bytes,
            tls=TlsListener.from_settings(
                settings.tls_port, settings.tls_certfile, settings.tls_keyfile
            ),
        ),
        directory_loader=build_directory_loader(),
    )


def build_directory_loader() -> DirectoryLoader:
    """Database URL → a snapshot of the device registry, for the broker's auth and ingest."""
    from storage.registry_store import load_directory

    loader: DirectoryLoader = load_directory
    return loader


def build_storage_policy(settings: Settings) -> StoragePolicy:
    """Retention horizons (and TimescaleDB compression/refresh defaults) from the settings."""
    from datetime import timedelta

    from storage.retention import StoragePolicy

    def days(value: float) -> timedelta | None:
        return timedelta(days=value) if value > 0 else None

    return StoragePolicy(
        raw=days(settings.retention_raw_days),
        m15=days(settings.retention_15m_days),
        hourly=days(settings.retention_hourly_days),
        daily=days(settings.retention_daily_days),
        alerts=days(settings.retention_alerts_days),
    )


def build_detection(settings: Settings) -> Detection:
    """Alert detection with the configured thresholds file, or the built-in defaults."""
    from stream_processors.detection import Detection

    return Detection.configured(settings.thresholds_file, settings.late_horizon_hours * 3600.0)


def build_faust_app(settings: Settings) -> faust.App:
    """The Faust app (imported lazily: faust is heavy and only workers need it)."""
    from stream_processors.faust_app import create_app

    return create_app(
        app_id=settings.faust_app_id,
        kafka_bootstrap=settings.kafka_bootstrap,
        database_url=settings.database_url,
        readings_topic=settings.readings_topic,
        deadletter_topic=settings.deadletter_topic,
        partitions=settings.kafka_partitions,
        batch_size=settings.batch_size,
        batch_seconds=settings.batch_seconds,
        session_timeout_s=settings.kafka_session_timeout_s,
        detection=build_detection(settings),
    )


def api_public_url(settings: Settings, port: int | None = None) -> str:
    """The API's public base URL: the configured one, else http://{api_host}:{port}."""
    if settings.api_public_url:
        return settings.api_public_url.rstrip("/")
    host = settings.api_host
    if host in ("0.0.0.0", "::"):  # noqa: S104 - a bind address is no address to link to
        host = "localhost"
    return f"http://{host}:{port or settings.api_port}"


def build_api_app(settings: Settings, database_url: str, port: int | None = None) -> Any:
    """The open-data API's ASGI app on ``database_url`` (tenancy on: every read as its caller)."""
    from api.app import ApiConfig, create_app

    return create_app(
        ApiConfig(database_url=database_url, public_url=api_public_url(settings, port))
    )
