"""The bridge's readings batcher: messages arriving within ms share a Kafka record per partition.

A Faust worker's cost is mostly per Kafka record, and so is the bridge's producer: with one
record per MQTT message, one-reading messages cost a record each. The batcher holds each
message's encoded readings for at most ``linger_s`` (or until ``max_readings`` /
``max_bytes`` are pending), then sends one record per partition with every pending reading
of that partition packed (``sensors.reading.pack_encoded``). A sensor's readings go to the
partition kafka-python's default partitioner gives its id (murmur2), as when each record was
keyed by the sensor id, so a sensor stays on one partition and in order.

Acknowledgement is unchanged: a message is tracked with the futures of every record that
holds one of its readings (and of its dead letter), so it is acked once all of them are in
Kafka. A message that arrived on an earlier MQTT connection is dropped at the flush, neither
sent nor acked: the broker redelivers it on the new one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kafka import KafkaProducer
from kafka.partitioner.default import murmur2
from kafka.producer.future import FutureRecordMetadata

from ingest.kafka_acks import AckTracker
from sensors.reading import pack_encoded

DEFAULT_LINGER_S = 0.02
DEFAULT_MAX_READINGS = 1_000  # a record's readings: bounds a worker's take() (faust_app)
DEFAULT_MAX_BYTES = 1024 * 1024
_PARTITION_CACHE = 100_000  # sensor ids whose partition is remembered


def partition_of(key: bytes, partitions: int) -> int:
    """kafka-python's (and Java's) default partition of a keyed record among ``partitions``."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def pack_by_partition(
    messages: Sequence[Sequence[tuple[bytes, bytes]]],
    partition: Callable[[bytes], int],
) -> tuple[dict[int, list[bytes]], list[set[int]]]:
    """Encoded readings ``(sensor id, value)`` of several messages grouped by partition
    (arrival order kept), and the partitions each message's readings went to."""
    by_partition: dict[int, list[bytes]] = {}
    touched: list[set[int]] = []
    for readings in messages:
        mine: set[int] = set()
        for key, value in readings:
            part = partition(key)
            by_partition.setdefault(part, []).append(value)
            mine.add(part)
        touched.append(mine)
    return by_partition, touched


@dataclass(slots=True)
class _Pending:
    """One MQTT message waiting for its readings' records."""

    mid: int
    qos: int
    generation: int
    readings: list[tuple[bytes, bytes]]
    other: list[FutureRecordMetadata] = field(default_factory=list)  # its dead letter's send


class RecordBatcher:
    """Packs the readings of messages that arrive close together into per-partition records.

    ``add`` runs on the MQTT network thread; a background thread flushes ``linger_s`` after
    the first pending message, and ``add`` flushes at once when the limits are reached.
    Flushes are serialised, so a partition's records go out in arrival order.
    """

    def __init__(
        self,
        producer: Callable[[], KafkaProducer],
        topic: str,
        acks: AckTracker,
        *,
        linger_s: float = DEFAULT_LINGER_S,
        max_readings: int = DEFAULT_MAX_READINGS,
        max_bytes: int = DEFAULT_MAX_BYTES,
        on_error: Callable[[BaseException], None] | None = None,
    ) -> None:
        self._producer = producer
        self._topic = topic
        self._acks = acks
        self._linger_s = linger_s
        self._max_readings = max_readings
        self._max_bytes = max_bytes
        self._on_error = on_error
        self._cond = threading.Condition()
        self._flush_lock = threading.RLock()  # stop() may flush from a signal handler
        self._pending: list[_Pending] = []
        self._readings = 0
        self._bytes = 0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._partitions: dict[bytes, tuple[int, int]] = {}  # murmur2 is pure Python

    def start(self) -> None:
        """Start the flushing thread (idempotent)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="record-batcher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Flush what is pending and let the flushing thread end; safe from signal handlers."""
        self._stopping.set()
        with self._cond:
            self._cond.notify_all()
        self.flush()

    def busy(self) -> bool:
        """Whether any message waits to be sent."""
        with self._cond:
            return bool(self._pending)

    def add(
        self,
        mid: int,
        qos: int,
        readings: list[tuple[bytes, bytes]],
        other: list[FutureRecordMetadata],
    ) -> None:
        """Queue one message's readings; it is tracked for its ack once they are sent."""
        size = sum(len(v) for _k, v in readings)
        with self._cond:
            self._pending.append(_Pending(mid, qos, self._acks.generation, readings, other))
            self._readings += len(readings)
            self._bytes += size
            full = self._readings >= self._max_readings or self._bytes >= self._max_bytes
            if len(self._pending) == 1:
                self._cond.notify()
        if full:
            self.flush()

    def discard(self) -> None:
        """Forget what is pending (a new MQTT connection: the broker redelivers it)."""
        with self._cond:
            self._pending, self._readings, self._bytes = [], 0, 0

    def flush(self) -> None:
        """Send what is pending now: one record per partition, then track each message."""
        with self._flush_lock:
            with self._cond:
                pending, self._pending = self._pending, []
                self._readings = self._bytes = 0
            current = self._acks.generation
            pending = [p for p in pending if p.generation == current]
            if not pending:
                return
            try:
                self._send(pending)
            except Exception as exc:  # Kafka unreachable / buffer full: redelivery, as before
                if self._on_error is None:
                    raise
                self._on_error(exc)

    def _send(self, pending: list[_Pending]) -> None:
        producer = self._producer()
        partitions = len(producer.partitions_for(self._topic))
        by_partition, touched = pack_by_partition(
            [p.readings for p in pending], lambda key: self._partition(key, partitions)
        )
        futures = {
            part: producer.send(self._topic, value=pack_encoded(values), partition=part)
            for part, values in by_partition.items()
        }
        for p, parts in zip(pending, touched, strict=True):
            if p.qos > 0:
                mine = [futures[part] for part in parts]
                self._acks.track(p.mid, p.qos, mine + p.other, generation=p.generation)

    def _partition(self, key: bytes, partitions: int) -> int:
        cached = self._partitions.get(key)
        if cached is not None and cached[0] == partitions:
            return cached[1]
        if len(self._partitions) >= _PARTITION_CACHE:
            self._partitions.clear()
        part = partition_of(key, partitions)
        self._partitions[key] = (partitions, part)
        return part

    def _run(self) -> None:
        while not self._stopping.is_set():
            with self._cond:
                while not self._pending and not self._stopping.is_set():
                    self._cond.wait(1.0)
            if self._stopping.is_set():
                return
            time.sleep(self._linger_s)  # let the messages arriving meanwhile join the records
            try:
                self.flush()
            except Exception:  # never let the thread die: the next flush tries again
                time.sleep(self._linger_s)
