"""Faust adapter: consume the readings topic in batches and hand them to the pipeline."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from functools import partial
from pathlib import Path

import faust

from sensors.deadletter import DeadLetter, deadletter_ref
from storage import DeadLetterStore, ReadingStore, StoreUnavailable, retry_while_unavailable
from stream_processors.detection import Detection
from stream_processors.pipeline import ReadingPipeline

log = logging.getLogger(__name__)

_MAX_MESSAGE_BYTES = 8 * 1024 * 1024
# Records per take() for each reading of CIVICPULSE_BATCH_SIZE: 500 for 10,000. With records
# of at most 1,000 readings (ingest.record_batcher) a take holds at most 500,000 readings,
# ~100 MB of JSON (~200 bytes a reading), when a backlog is read; under a live load the
# 0.2 s wait ends a take sooner.
TAKE_RECORDS_PER_BATCH_READING = 0.05


def kafka_broker_urls(bootstrap: str) -> list[str]:
    """``host:port,host:port`` → Faust's ``kafka://`` broker list."""
    return [f"kafka://{h.strip()}" for h in bootstrap.split(",") if h.strip()]


def create_app(
    *,
    app_id: str,
    kafka_bootstrap: str,
    database_url: str,
    readings_topic: str,
    deadletter_topic: str,
    partitions: int,
    batch_size: int,
    batch_seconds: float,
    session_timeout_s: float = 10.0,
    tick_seconds: float = 5.0,
    detection: Detection | None = None,
) -> faust.App:
    """Build the Faust app: one agent, ``concurrency=1`` (faust bug #606), batches via take()."""
    datadir = Path(tempfile.gettempdir()) / "civicpulse-faust" / app_id
    datadir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        app_id,
        broker=kafka_broker_urls(kafka_bootstrap),
        store="memory://",
        # nothing durable lives there (tables are in memory): keep it out of the cwd
        datadir=str(datadir),
        autodiscover=False,
        topic_partitions=partitions,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
        broker_commit_interval=1.0,
        producer_max_request_size=_MAX_MESSAGE_BYTES,
        producer_acks=-1,
        broker_session_timeout=session_timeout_s,
        broker_heartbeat_interval=max(1.0, session_timeout_s / 3),
    )
    source = app.topic(readings_topic, key_serializer="raw", value_serializer="raw")
    deadletters = app.topic(deadletter_topic, key_serializer="raw", value_serializer="raw")
    # take() counts records, and a record packs up to the bridge's RecordBatcher limit of
    # readings: at most TAKE_RECORDS_PER_BATCH_READING of a batch's worth per take bounds a
    # take's readings (memory), and the pipeline stores them in transactions of at most
    # batch_size readings
    take_records = max(100, round(batch_size * TAKE_RECORDS_PER_BATCH_READING))
    pipeline = ReadingPipeline(
        ReadingStore(database_url), detection=detection, max_batch_readings=batch_size
    )

    @app.agent(source, concurrency=1, name="store_readings")
    async def store_readings(stream: faust.StreamT[bytes]) -> None:
        # take() acks (and so lets Faust commit) a batch only after this body returns,
        # i.e. after the database committed it: a crash replays, the store dedupes.
        async for values in stream.take(take_records, within=batch_seconds):
            outcome = await asyncio.to_thread(pipeline.process, values)
            for letter in outcome.deadletters:
                await deadletters.send(
                    key=b"readings", value=letter.payload, headers=letter.headers()
                )
            log.debug(
                "stored %d of %d readings from %d records (%d duplicates)",
                outcome.write.inserted,
                outcome.write.received,
                len(values),
                outcome.write.duplicates,
            )

    @app.timer(interval=tick_seconds, on_leader=True)  # type: ignore[untyped-decorator]
    async def detection_tick() -> None:
        # Wall-clock alert rules (staleness, impossible values, quiet resolution).
        try:
            await asyncio.to_thread(pipeline.tick)
        except StoreUnavailable as exc:
            log.warning("detection tick skipped, database unavailable: %s", exc)

    letters_store = DeadLetterStore(database_url)

    @app.agent(deadletters, concurrency=1, name="keep_dead_letters")
    async def keep_dead_letters(stream: faust.StreamT[bytes]) -> None:
        # Dead letters are few: one at a time, keyed like the embedded engine's (topic and the
        # payload's SHA-256), so a message the bridge sends again after an MQTT redelivery
        # (a new Kafka record) is stored once, as a Kafka replay of the same record is.
        async for event in stream.events():
            message = event.message
            letter = DeadLetter.from_kafka(event.value, list(message.headers or []))
            ref = deadletter_ref(letter)
            await asyncio.to_thread(
                retry_while_unavailable,
                partial(letters_store.write, [(letter, ref)]),
                what="a dead letter",
            )

    app.civicpulse_pipeline = pipeline  # type: ignore[attr-defined]  # for stats in tests/CLI
    return app


def run_worker(app: faust.App, loglevel: str = "info") -> None:
    """Run a Faust worker for ``app`` in this process until SIGTERM/SIGINT."""
    worker = faust.Worker(app, loglevel=loglevel.lower(), quiet=True)
    worker.execute_from_commandline()
