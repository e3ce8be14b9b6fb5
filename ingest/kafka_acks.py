"""The bridge's Kafka side: its producer, what it sends, and ack-after-Kafka bookkeeping.

An MQTT QoS 1 message is acknowledged only once every Kafka send made for it succeeded, and
only on the MQTT connection it arrived on: after a reconnect the broker redelivers whatever
was not acked, so acks (and failures) of an earlier connection no longer count. The tracker
also counts messages with sends outstanding and notes when Kafka last answered, which the
bridge's watchdog uses to spot a producer that went silent; :class:`ProducerSlot` then
swaps that producer for a fresh one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from kafka import KafkaProducer
from kafka.producer.future import FutureRecordMetadata

from ingest.kafka_topics import MAX_MESSAGE_BYTES, bootstrap_list
from sensors.deadletter import KEEP_BYTES
from sensors.intake import Routed

# Dead letters keep the first bytes of a payload, with its size and SHA-256 (sensors.deadletter).
DEADLETTER_MAX_VALUE_BYTES = KEEP_BYTES


def make_producer(bootstrap: str, client_id: str, delivery_timeout_s: float) -> KafkaProducer:
    """An ``acks=all`` producer whose sends fail after ``delivery_timeout_s``."""
    delivery_ms = int(delivery_timeout_s * 1000)
    return KafkaProducer(
        bootstrap_servers=bootstrap_list(bootstrap),
        acks="all",
        linger_ms=5,
        batch_size=256 * 1024,
        max_request_size=MAX_MESSAGE_BYTES,
        max_block_ms=10_000,
        delivery_timeout_ms=delivery_ms,
        request_timeout_ms=max(1000, min(30_000, delivery_ms // 2)),
        client_id=client_id,
    )


class ProducerSlot:
    """The bridge's current producer; one found wedged is dropped on the next MQTT connect."""

    def __init__(self, bootstrap: str, client_id: str, delivery_timeout_s: float) -> None:
        self._make = partial(make_producer, bootstrap, client_id, delivery_timeout_s)
        self.current: KafkaProducer | None = None
        self.wedged = False  # set by the watchdog; the next connect drops the producer

    def fresh(self) -> KafkaProducer:
        """A new producer in the slot (at start-up)."""
        self.current = self._make()
        return self.current

    def get(self) -> KafkaProducer:
        """The current producer, made anew if a wedged one was dropped."""
        if self.current is None:  # replaced after a wedge: KafkaError here → redelivery
            self.current = self._make()
        return self.current

    def flush(self, timeout: float) -> None:
        """Flush the current producer, if any (its successes release MQTT acks)."""
        if self.current is not None:
            self.current.flush(timeout=timeout)

    def close(self, timeout: float) -> None:
        """Close the current producer, if any."""
        if self.current is not None:
            self.current.close(timeout=timeout)

    def drop_if_wedged(self) -> None:
        """Close a wedged producer in the background (it may hang); the next get() replaces it."""
        if self.wedged:
            old, self.current = self.current, None
            self.wedged = False
            if old is not None:
                threading.Thread(target=old.close, kwargs={"timeout": 0}, daemon=True).start()


def send_deadletter(
    producer: KafkaProducer, routed: Routed, mqtt_topic: str, deadletter_topic: str
) -> list[FutureRecordMetadata]:
    """Send the message's dead letter, if it has one (keyed by MQTT topic)."""
    futures: list[FutureRecordMetadata] = []
    letter = routed.deadletter
    if letter is not None:
        value, headers = letter.to_kafka(DEADLETTER_MAX_VALUE_BYTES)
        futures.append(
            producer.send(
                deadletter_topic,
                key=mqtt_topic.encode("utf-8", "replace"),
                value=value,
                headers=headers,
            )
        )
    return futures


class PendingAck:
    """Acks one MQTT message once every Kafka send made for it has succeeded."""

    __slots__ = ("failed", "generation", "lock", "mid", "qos", "remaining")

    def __init__(self, mid: int, qos: int, remaining: int, generation: int) -> None:
        self.mid, self.qos, self.remaining, self.generation = mid, qos, remaining, generation
        self.failed = False
        self.lock = threading.Lock()


class AckTracker:
    """Turns Kafka send results into MQTT acks (``ack``) or a redelivery (``on_failure``).

    ``ack(mid, qos)`` runs when the last send of a message of the current connection
    succeeded; ``on_failure(exc)`` when the first send of one failed. Both run on the
    producer's I/O thread.
    """

    def __init__(
        self, ack: Callable[[int, int], None], on_failure: Callable[[BaseException], None]
    ) -> None:
        self._ack = ack
        self._on_failure = on_failure
        self.generation = 0  # one per MQTT connection
        self._outstanding = 0
        self._outstanding_lock = threading.Lock()
        self._kafka_progress = time.monotonic()  # last Kafka answer, or first send after none

    def new_connection(self) -> None:
        """A (re)connect: what was not acked before is redelivered, so forget it."""
        self.generation += 1
        with self._outstanding_lock:
            self._outstanding = 0

    def busy(self) -> bool:
        """Whether any message of this connection still waits for Kafka."""
        with self._outstanding_lock:
            return self._outstanding > 0

    def stalled_for(self, limit_s: float) -> float | None:
        """Seconds since Kafka last answered, if over ``limit_s`` with sends outstanding."""
        busy = self.busy()
        silent = time.monotonic() - self._kafka_progress
        return silent if busy and silent > limit_s else None

    def track(
        self,
        mid: int,
        qos: int,
        futures: Sequence[FutureRecordMetadata],
        generation: int | None = None,
    ) -> None:
        """Ack MQTT message ``mid`` once all of ``futures`` (its Kafka sends) succeeded.

        ``generation``: the connection it arrived on (default: the current one); a message
        of an earlier connection is not tracked (the broker redelivers it)."""
        generation = self.generation if generation is None else generation
        if generation != self.generation:
            return
        with self._outstanding_lock:
            if self._outstanding == 0:
                self._kafka_progress = time.monotonic()
            self._outstanding += 1
        pending = PendingAck(mid, qos, len(futures), generation)
        for future in futures:
            future.add_callback(self._sent, pending)
            future.add_errback(self._send_failed, pending)

    # -- Kafka callbacks (producer I/O thread) --------------------------------------------
    def _sent(self, pending: PendingAck, _metadata: Any) -> None:
        self._kafka_progress = time.monotonic()
        with pending.lock:
            pending.remaining -= 1
            done = pending.remaining == 0 and not pending.failed
        if done and pending.generation == self.generation:
            with self._outstanding_lock:
                self._outstanding -= 1
            self._ack(pending.mid, pending.qos)

    def _send_failed(self, pending: PendingAck, exc: BaseException) -> None:
        self._kafka_progress = time.monotonic()
        with pending.lock:
            first = not pending.failed
            pending.failed = True
        # a message of an earlier connection is redelivered anyway: only the current counts
        if first and pending.generation == self.generation:
            with self._outstanding_lock:
                self._outstanding -= 1
            self._on_failure(exc)
