"""What one bridge process is told (its settings) and what it counts (its running totals)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from ingest.mqtt_session import SessionConfig
from sensors.validation import Limits


@dataclass(frozen=True, slots=True)
class BridgeConfig:
    """What one bridge process needs (built from the settings by the composition root)."""

    mqtt_url: str
    kafka_bootstrap: str
    readings_topic: str
    deadletter_topic: str
    client_id: str
    share_group: str
    session_expiry_s: int
    partitions: int
    replication: int
    limits: Limits
    receive_maximum: int = 1000
    delivery_timeout_s: float = 120.0  # then a send fails and MQTT redelivers the message
    partition: tuple[int, int] | None = None  # (i, N): a static share instead of share_group

    def session(self) -> SessionConfig:
        """The MQTT side: client id, shared subscription and persistent-session limits."""
        return SessionConfig(
            url=self.mqtt_url,
            client_id=self.client_id,
            share_group=self.share_group,
            session_expiry_s=self.session_expiry_s,
            receive_maximum=self.receive_maximum,
            partition=self.partition,
        )


@dataclass(slots=True)
class BridgeStats:
    """Running totals, logged periodically."""

    messages: int = 0
    readings: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    acked: int = 0
    kafka_failures: int = 0
    other_partitions: int = 0  # acked at once: another bridge's static partition has them

    def summary(self) -> str:
        """One line of totals for the log."""
        rejected = dict(self.rejected) or "none"
        return (
            f"{self.messages} messages, {self.readings} readings, {self.acked} acked,"
            f" rejected {rejected}, kafka failures {self.kafka_failures}"
            f", {self.other_partitions} for other partitions"
        )
