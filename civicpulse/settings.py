"""The one settings object: environment variables (CIVICPULSE_*) overridden by CLI flags."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import platformdirs

from sensors.topics import parse_partition
from stream_processors.batch import DEFAULT_BATCH_READINGS
from trust import AuthMode

PREFIX = "CIVICPULSE_"
AUTH_MODES = tuple(mode.value for mode in AuthMode)  # auto, required, off


def default_data_dir(name: str = "civicpulse") -> str:
    """The platform data dir of ``name`` (``civicpulse-demo`` for the demo: never shared)."""
    # As root the embedded PostgreSQL runs as its own OS user, which must be able to reach
    # the data dir: /var/lib suits that; /root/.local/share would need /root opened up.
    if os.geteuid() == 0:
        return f"/var/lib/{name}"
    return str(Path(platformdirs.user_data_dir(name)))


def _default_data_dir() -> str:
    return default_data_dir()


# Values found on this machine rather than configured: the URLs in the state file of a running
# `civicpulse run`/`demo` (civicpulse/cli/state.py). They rank below the environment.
_discovered: dict[str, str] = {}


def use_discovered(values: Mapping[str, str]) -> None:
    """Set the discovered defaults (field name → value); an empty mapping clears them."""
    _discovered.clear()
    _discovered.update(values)


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything a civicpulse process is configured with; read once at start-up.

    Each field maps to the environment variable ``CIVICPULSE_<FIELD NAME UPPER-CASED>``;
    ``doc`` metadata is what the README's configuration table says.
    """

    mqtt_url: str = field(
        default="mqtt://127.0.0.1:1883",
        metadata={"doc": "MQTT broker URL (mqtt://user:pass@host:port)"},
    )
    kafka_bootstrap: str = field(
        default="127.0.0.1:9092", metadata={"doc": "Kafka bootstrap servers, comma-separated"}
    )
    database_url: str = field(
        default="postgresql://postgres@127.0.0.1:5432/civicpulse",
        metadata={"doc": "PostgreSQL/TimescaleDB URL (libpq form)"},
    )
    readings_topic: str = field(
        default="civicpulse.readings.v1", metadata={"doc": "Kafka topic of canonical readings"}
    )
    deadletter_topic: str = field(
        default="civicpulse.deadletter.v1", metadata={"doc": "Kafka topic of rejected messages"}
    )
    kafka_partitions: int = field(
        default=6, metadata={"doc": "Partitions when the bridge creates the topics"}
    )
    kafka_replication: int = field(
        default=1, metadata={"doc": "Replication factor when the bridge creates the topics"}
    )
    mqtt_share_group: str = field(
        default="civicpulse-ingest",
        metadata={"doc": "Shared-subscription group the bridges split the load in"},
    )
    mqtt_partition: str = field(
        default="",
        metadata={
            "doc": "Static partition 'i/N' of this bridge among N (each holds a plain "
            "subscription and handles the topics whose CRC-32 mod N is i): unlike a shared "
            "subscription it survives a Mosquitto restart, so nothing published before the "
            "bridges reconnect is lost. Empty: the shared subscription above"
        },
    )
    mqtt_client_id: str = field(
        default="civicpulse-ingest-1",
        metadata={"doc": "Bridge MQTT client id; keep it stable so its session survives restarts"},
    )
    mqtt_session_expiry_s: int = field(
        default=86400, metadata={"doc": "How long the broker keeps a stopped bridge's queue"}
    )
    kafka_delivery_timeout_s: float = field(
        default=120.0,
        metadata={
            "doc": "How long the bridge retries a Kafka send before handing the message "
            "back to the MQTT broker for redelivery"
        },
    )
    max_payload_bytes: int = field(
        default=262144, metadata={"doc": "Largest MQTT payload decoded; larger are dead-lettered"}
    )
    max_packet_bytes: int = field(
        default=1048576,
        metadata={
            "doc": "Embedded broker: largest MQTT packet accepted; a larger one closes the "
            "connection and is dead-lettered (topic, first 4 KiB, size). Compose Mosquitto: "
            "max_packet_size"
        },
    )
    tls_port: int = field(
        default=0,
        metadata={
            "doc": "Embedded broker: also listen with TLS on this port (e.g. 8883; 0: no TLS "
            "listener); needs tls_certfile and tls_keyfile"
        },
    )
    tls_certfile: str = field(
        default="", metadata={"doc": "TLS listener: the server certificate chain (PEM)"}
    )
    tls_keyfile: str = field(
        default="", metadata={"doc": "TLS listener: the server's private key (PEM)"}
    )
    max_past_s: int = field(
        default=7 * 86400, metadata={"doc": "Oldest reading accepted, seconds before receipt"}
    )
    max_future_s: int = field(
        default=300, metadata={"doc": "Newest reading accepted, seconds after receipt (clock skew)"}
    )
    faust_app_id: str = field(
        default="civicpulse-processor", metadata={"doc": "Faust app id (consumer group)"}
    )
    kafka_session_timeout_s: float = field(
        default=10.0,
        metadata={"doc": "Faust session timeout: how soon a dead worker's partitions move"},
    )
    batch_size: int = field(
        default=DEFAULT_BATCH_READINGS,
        metadata={"doc": "Most readings per database batch (both engines)"},
    )
    batch_seconds: float = field(
        default=0.2, metadata={"doc": "Longest wait before a partial batch is written"}
    )
    thresholds_file: str = field(
        default="",
        metadata={
            "doc": "Alert thresholds (TOML, see config/thresholds.example.toml); "
            "empty: built-in defaults"
        },
    )
    late_horizon_hours: float = field(
        default=24.0,
        metadata={
            "doc": "How late a reading may arrive (behind its sensor's newest) and still be "
            "run through the alert rules; older ones are stored only"
        },
    )
    retention_raw_days: float = field(
        default=90.0,
        metadata={"doc": "Keep raw readings and readings_1m this many days (0: for ever)"},
    )
    retention_15m_days: float = field(
        default=365.0, metadata={"doc": "Keep readings_15m this many days (0: for ever)"}
    )
    retention_hourly_days: float = field(
        default=730.0, metadata={"doc": "Keep hourly rollups this many days (0: for ever)"}
    )
    retention_daily_days: float = field(
        default=0.0, metadata={"doc": "Keep daily rollups this many days (0: for ever)"}
    )
    retention_alerts_days: float = field(
        default=365.0,
        metadata={
            "doc": "Keep resolved alerts, sent webhook notifications and dead letters this "
            "many days (0: for ever)"
        },
    )
    data_dir: str = field(
        default_factory=_default_data_dir,
        metadata={"doc": "Embedded mode: where its PostgreSQL keeps its data"},
    )
    auth: str = field(
        default="auto",
        metadata={
            "doc": "Device authentication: auto (anonymous clients only while the embedded "
            "broker listens on loopback), required (also: the bridge dead-letters unknown and "
            "disabled devices), or off"
        },
    )
    api_host: str = field(
        default="127.0.0.1",
        metadata={"doc": "Open-data API (civicpulse api, run, demo): the address it listens on"},
    )
    api_port: int = field(default=8080, metadata={"doc": "Open-data API: the port it listens on"})
    api_public_url: str = field(
        default="",
        metadata={
            "doc": "Open-data API: the public base URL its links are built from, exactly as "
            "clients reach it (default http://{api_host}:{api_port})"
        },
    )
    log_level: str = field(default="INFO", metadata={"doc": "Logging level"})

    def __post_init__(self) -> None:
        if self.auth not in AUTH_MODES:
            raise ValueError(f"{PREFIX}AUTH={self.auth!r} is not one of {', '.join(AUTH_MODES)}")
        try:
            parse_partition(self.mqtt_partition)
        except ValueError as exc:
            raise ValueError(f"{PREFIX}MQTT_PARTITION: {exc}") from None

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Environment (else a discovered running platform), then every non-``None`` override."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = env.get(PREFIX + f.name.upper())
            if (raw is None or raw == "") and environ is None:
                raw = _discovered.get(f.name)
            if raw is not None and raw != "":
                values[f.name] = _coerce(f.type, raw, f.name)
        settings = cls(**values)
        given = {k: v for k, v in overrides.items() if v is not None}
        return replace(settings, **given) if given else settings

    @classmethod
    def documented(cls) -> list[tuple[str, str, str]]:
        """(variable, default, description) rows for the README."""
        rows = []
        for f in fields(cls):
            default = f.default if f.default_factory is MISSING else "(platform data dir)"
            rows.append((PREFIX + f.name.upper(), str(default), str(f.metadata.get("doc", ""))))
        return rows


def _coerce(type_name: object, raw: str, name: str) -> Any:
    kind = str(type_name)
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
    except ValueError as exc:
        raise ValueError(f"{PREFIX}{name.upper()}={raw!r} is not a valid {kind}") from exc
    return raw
