"""The processing pipeline both stream engines drive: prepare a batch, store it, retry."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from rules.alerts import Alert
from sensors.deadletter import DeadLetter
from sensors.reading import Reading
from storage import ReadingStore, WriteResult, retry_while_unavailable
from stream_processors.batch import DEFAULT_BATCH_READINGS, PoisonRecord, prepare_batches
from stream_processors.detection import Detection, DetectionBatch


@dataclass(slots=True)
class PipelineStats:
    """Running totals for logs and live views."""

    batches: int = 0
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    poison: int = 0
    store_retries: int = 0


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """A stored batch, and the poison records the engine must dead-letter before acking.

    ``deadletters`` holds one dead letter per poison record (``bad_canonical_record``, stage
    ``stream_processors``), built here so that both engines keep the same record.
    """

    write: WriteResult
    poison: list[PoisonRecord] = field(default_factory=list)
    deadletters: list[DeadLetter] = field(default_factory=list)


class ReadingPipeline:
    """Takes raw ``readings``-topic values, stores them exactly once, reports poison records.

    ``process`` returns only once the batch is committed to the database: an engine then
    dead-letters the poison records and only after that commits its source offsets (Kafka)
    or acknowledges its messages (embedded).

    Detection (alerts) runs inside each batch's transaction on the newly inserted readings.
    Engines must also call :meth:`tick` every few seconds for the wall-clock rules
    (staleness, impossible values from dead letters, quiet resolution); ``detect=False``
    turns detection off.
    """

    def __init__(
        self,
        store: ReadingStore,
        *,
        sleep: Callable[[float], None] = time.sleep,
        max_backoff_s: float = 10.0,
        detection: Detection | None = None,
        detect: bool = True,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        max_batch_readings: int | None = DEFAULT_BATCH_READINGS,
    ) -> None:
        self._store = store
        self._max_batch_readings = max_batch_readings
        self.detection = (detection or Detection()) if detect else None
        self._clock = clock
        self._lock = threading.Lock()
        self._sleep = sleep
        self._max_backoff_s = max_backoff_s
        self.stats = PipelineStats()

    def process(self, values: Sequence[bytes | Reading]) -> BatchOutcome:
        """Store one batch; blocks and retries with backoff while the database is down.

        ``values`` are ``readings``-topic record values (one reading or a sensor's pack
        each), or canonical readings themselves (the embedded engine: decoded once at
        ingest, never encoded in between). More than ``max_batch_readings`` readings are
        stored in several transactions, one after the other, before this returns (``None``:
        one transaction, for an engine that bounds its batches itself)."""
        inserted = received = refreshed = 0
        poison: list[PoisonRecord] = []
        for batch in prepare_batches(values, self._max_batch_readings):
            poison += batch.poison
            self.stats.poison += len(batch.poison)
            with self._lock:
                result = self._write_with_retry(batch.readings)
            self.stats.batches += 1
            self.stats.received += len(batch.readings) + batch.duplicates_in_batch
            self.stats.stored += result.inserted
            self.stats.duplicates += result.duplicates + batch.duplicates_in_batch
            inserted += result.inserted
            received += result.received
            refreshed += result.minutes_refreshed
        return BatchOutcome(
            WriteResult(received, inserted, refreshed), poison, self._deadletters(poison)
        )

    def _deadletters(self, poison: Sequence[PoisonRecord]) -> list[DeadLetter]:
        at = self._clock()
        return [
            DeadLetter("bad_canonical_record", p.reason, p.raw, "", at, stage="stream_processors")
            for p in poison
        ]

    def _write_with_retry(self, readings: Sequence[Reading]) -> WriteResult:
        def count_retry() -> None:
            self.stats.store_retries += 1

        return retry_while_unavailable(
            lambda: self._store.write(readings, on_inserted=self._on_inserted),
            what=f"{len(readings)} readings",
            sleep=self._sleep,
            max_backoff_s=self._max_backoff_s,
            on_retry=count_retry,
        )

    def _on_inserted(
        self, cur: psycopg.Cursor[Any], inserted: list[Reading]
    ) -> DetectionBatch | None:
        if self.detection is None:
            return None
        return self.detection.begin(cur, inserted, self._clock())

    def tick(self, now: datetime | None = None) -> list[Alert]:
        """Run the wall-clock detection rules once; raises StoreUnavailable if the DB is down."""
        if self.detection is None:
            return []
        detection, at = self.detection, now or self._clock()
        with self._lock:
            return self._store.transact(lambda cur: detection.tick(cur, at))
