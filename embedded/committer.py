"""Group commit: concurrent MQTT messages share one database write; each awaits its commit."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sensors.deadletter import deadletter_ref
from sensors.errors import CivicPulseError
from sensors.intake import Routed, RoutedReadings
from storage import DeadLetterStore, ReadingStore, StoreUnavailable, retry_while_unavailable
from stream_processors.batch import DEFAULT_BATCH_READINGS
from stream_processors.detection import Detection
from stream_processors.pipeline import ReadingPipeline

log = logging.getLogger(__name__)

Router = Callable[[str | bytes, bytes, datetime], Routed | RoutedReadings]
"""``route_in_process`` (or ``route_message``) with its limits bound: topic (raw bytes
allowed), payload, receive time → ``RoutedReadings`` (or encoded ``Routed``)."""


class NotStored(CivicPulseError):
    """This message was not committed to the database: it must not be acknowledged."""


class EngineStopped(NotStored):
    """The engine stopped before this message was committed."""


@dataclass(slots=True)
class CommitStats:
    """Running totals for logs, the demo view and the benchmark."""

    messages: int = 0
    readings: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    committed_messages: int = 0
    batches: int = 0
    db_retries: int = 0
    last_commit_s: float = 0.0


@dataclass(slots=True)
class _Item:
    routed: Routed | RoutedReadings
    done: asyncio.Future[None]


def _topic(item: _Item) -> str:
    letter = item.routed.deadletter
    return letter.mqtt_topic if letter else "a sensor topic"


class GroupCommitter:
    """Collects routed messages into batches and commits each batch before releasing its waiters.

    A batch closes when it holds ``max_readings`` readings, or ``window_s`` after its first
    message arrived; while one batch commits (in a worker thread) the next one fills up. While
    the database is down the commit retries, so waiters (and their PUBACKs) are held.
    """

    def __init__(
        self,
        store: ReadingStore,
        letters: DeadLetterStore,
        route: Router,
        *,
        max_readings: int = DEFAULT_BATCH_READINGS,
        window_s: float = 0.025,
        tick_s: float = 5.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        detection: Detection | None = None,
    ) -> None:
        # one transaction per batch: this committer bounds its batches itself
        self.pipeline = ReadingPipeline(
            store, sleep=self._sleep, detection=detection, max_batch_readings=None
        )
        self.stats = CommitStats()
        self._letters = letters
        self._route = route
        self._max = max_readings
        self._window_s = window_s
        self._clock = clock
        self._pending: list[_Item] = []
        self._pending_readings = 0
        self._first_at = 0.0
        self._arrived = asyncio.Event()
        self._closing = False
        self._stopping = threading.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="civicpulse-commit")
        self._tick_s = tick_s
        self._task: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the commit loop and the detection tick on the running event loop."""
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._run(), name="group-commit")
        self._ticker = loop.create_task(self._tick(), name="detection-tick")

    async def _tick(self) -> None:
        """The pipeline's wall-clock alert rules, every ``tick_s``, in the commit thread."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self._tick_s)
            try:
                await loop.run_in_executor(self._executor, self.pipeline.tick)
            except StoreUnavailable as exc:
                log.warning("detection tick skipped, database unavailable: %s", exc)
            except Exception:
                log.exception("detection tick failed")

    async def submit(self, topic: str | bytes, payload: bytes) -> None:
        """Route one message; return once its readings and dead letter (if any) are committed.

        ``topic`` may be the raw bytes of the topic name: one that is not UTF-8 is committed
        as a ``bad_topic`` dead letter, so nothing acknowledged is dropped without a record.
        """
        if self._closing:
            raise EngineStopped("engine is stopping")
        routed = self._route(topic, payload, self._clock())
        self.stats.messages += 1
        self.stats.readings += len(routed.readings)
        letter = routed.deadletter
        if letter is not None:
            for part in letter.parts or (letter,):
                self.stats.rejected[part.reason] += 1
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not self._pending:
            self._first_at = time.monotonic()
        self._pending.append(_Item(routed, done))
        self._pending_readings += len(routed.readings)
        self._arrived.set()
        await done

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._arrived.wait()
            if not self._pending:
                if self._stopping.is_set():
                    return
                self._arrived.clear()
                continue
            while self._pending_readings < self._max and not self._stopping.is_set():
                remaining = self._first_at + self._window_s - time.monotonic()
                if remaining <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except TimeoutError:
                    break
            batch = self._take_batch()
            try:
                await loop.run_in_executor(self._executor, self._commit, batch)
            except EngineStopped as exc:
                self._release(batch, exc)
                return
            except Exception:
                # Not an outage (those are retried inside): e.g. a value the database refuses.
                # Commit message by message so one bad message cannot hold up the others.
                log.exception("batch of %d messages failed; committing them one by one", len(batch))
                for item in batch:
                    try:
                        await loop.run_in_executor(self._executor, self._commit, [item])
                    except Exception as exc:
                        log.exception("message on %s not stored; left unacknowledged", _topic(item))
                        self._release([item], exc)
                        if isinstance(exc, EngineStopped):
                            self._release(batch, exc)
                            return
            self._release(batch, None)

    def _release(self, items: list[_Item], error: BaseException | None) -> None:
        """Wake the waiters: committed (``error`` None) or not stored (never acknowledged)."""
        for item in items:
            if item.done.done():
                continue
            if error is None:
                item.done.set_result(None)
                self.stats.committed_messages += 1
            elif isinstance(error, NotStored):
                item.done.set_exception(error)
            else:
                item.done.set_exception(NotStored(str(error)))
        if error is None:
            self.stats.batches += 1

    def _take_batch(self) -> list[_Item]:
        """Whole messages from the front of the queue, up to ``max_readings`` readings."""
        taken = n = 0
        while taken < min(len(self._pending), self._max) and (n < self._max or taken == 0):
            n += len(self._pending[taken].routed.readings)
            taken += 1
        batch, self._pending = self._pending[:taken], self._pending[taken:]
        self._pending_readings -= n
        if self._pending:
            self._first_at = 0.0  # the rest has waited long enough: commit it next, no window
        else:
            self._arrived.clear()
        return batch

    def _commit(self, batch: list[_Item]) -> None:
        """Worker thread: readings first (retried by the pipeline), then dead letters."""
        started = time.monotonic()
        values = [value for item in batch for value in item.routed.values()]
        letters = [(d, deadletter_ref(d)) for item in batch if (d := item.routed.deadletter)]
        if values:
            outcome = self.pipeline.process(values)
            letters += [(d, deadletter_ref(d)) for d in outcome.deadletters]
        if letters:
            retry_while_unavailable(
                lambda: self._letters.write(letters),
                what=f"{len(letters)} dead letters",
                sleep=self._sleep,
                on_retry=self._count_retry,
            )
        self.stats.last_commit_s = time.monotonic() - started

    def _count_retry(self) -> None:
        self.stats.db_retries += 1

    def _sleep(self, seconds: float) -> None:
        """The pipeline's retry sleep: wakes early and gives up when the engine stops."""
        if self._stopping.wait(seconds):
            raise EngineStopped("engine stopped while the database was unavailable")

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Refuse new messages, commit those pending (unless the database stays down), stop."""
        self._closing = True
        deadline = time.monotonic() + timeout_s
        while self._pending and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        self._stopping.set()
        self._arrived.set()
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        for item in self._pending:
            if not item.done.done():
                item.done.set_exception(EngineStopped("engine stopped"))
        self._executor.shutdown(wait=True, cancel_futures=True)
