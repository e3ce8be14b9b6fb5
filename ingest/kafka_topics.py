"""Create the platform's Kafka topics (idempotently) before anything produces to them."""

from __future__ import annotations

import logging
import time

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from sensors.errors import CivicPulseError

log = logging.getLogger(__name__)

MAX_MESSAGE_BYTES = 8 * 1024 * 1024  # dead letters keep payloads up to the bridge's cap


class KafkaUnavailable(CivicPulseError):
    """Kafka could not be reached in time."""


def bootstrap_list(bootstrap: str) -> list[str]:
    """``"h1:9092, h2:9092"`` → ``["h1:9092", "h2:9092"]``."""
    return [h.strip() for h in bootstrap.split(",") if h.strip()]


def ensure_topics(
    bootstrap: str,
    readings_topic: str,
    deadletter_topic: str,
    *,
    partitions: int,
    replication: int,
    timeout_s: float = 60.0,
) -> None:
    """Create the readings and dead-letter topics when missing; waits for Kafka to answer."""
    deadline = time.monotonic() + timeout_s
    config = {"max.message.bytes": str(MAX_MESSAGE_BYTES)}
    topics = [
        NewTopic(readings_topic, partitions, replication, topic_configs=config),
        NewTopic(deadletter_topic, max(1, partitions // 2), replication, topic_configs=config),
    ]
    while True:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap_list(bootstrap))
            try:
                existing = set(admin.list_topics())
                missing = [t for t in topics if t.name not in existing]
                if missing:
                    try:
                        admin.create_topics(missing)
                        log.info("created Kafka topics %s", [t.name for t in missing])
                    except TopicAlreadyExistsError:
                        pass
            finally:
                admin.close()
            return
        except KafkaError as exc:
            if time.monotonic() > deadline:
                raise KafkaUnavailable(
                    f"Kafka at {bootstrap} did not answer within {timeout_s:.0f}s: {exc}"
                ) from exc
            log.warning("waiting for Kafka at %s: %s", bootstrap, exc)
            time.sleep(1.0)
