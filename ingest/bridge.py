"""MQTT → Kafka bridge: a QoS 1 message is acknowledged only after Kafka acknowledged it."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import paho.mqtt.client as mqtt
from kafka.errors import KafkaError

from ingest import mqtt_session
from ingest.bridge_config import BridgeConfig, BridgeStats
from ingest.kafka_acks import (
    DEADLETTER_MAX_VALUE_BYTES,
    AckTracker,
    ProducerSlot,
    send_deadletter,
)
from ingest.kafka_topics import ensure_topics
from ingest.record_batcher import RecordBatcher
from sensors.intake import Authorize, route_message

__all__ = ["DEADLETTER_MAX_VALUE_BYTES", "Bridge", "BridgeConfig", "BridgeStats"]

log = logging.getLogger(__name__)


class Bridge:
    """Subscribes (shared, QoS 1) to every sensor topic and feeds Kafka.

    Valid readings go to the readings topic, packed with those of the messages that arrived
    in the same few milliseconds into one record per partition (``RecordBatcher``; a sensor's
    partition is its id's); rejects go to the dead-letter topic with reason, raw bytes, MQTT
    topic and receive time. Should Kafka
    fail a send, the bridge drops its MQTT connection without acking: the broker keeps
    the message in the bridge's persistent session and redelivers it on reconnect.
    """

    def __init__(
        self,
        config: BridgeConfig,
        clock: Callable[[], datetime] | None = None,
        authorize: Authorize | None = None,
    ) -> None:
        self._config = config
        self._authorize = authorize  # unknown/disabled devices → dead letters (auth required)
        self._clock = clock or (lambda: datetime.now(UTC))
        self._session = config.session()
        self._endpoint = self._session.endpoint
        self._stopping = threading.Event()
        self._last_summary = time.monotonic()
        self._retiring = False
        self._unsubscribed = threading.Event()
        self._last_activity = time.monotonic()
        self.stats = BridgeStats()
        self._producer = ProducerSlot(
            config.kafka_bootstrap, config.client_id, config.delivery_timeout_s
        )
        self._acks = AckTracker(self._ack, self._kafka_trouble)
        self._batcher = RecordBatcher(
            self._producer.get, config.readings_topic, self._acks, on_error=self._kafka_trouble
        )
        self._client = self._make_client()

    # -- wiring ---------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        client = mqtt_session.make_client(self._session)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_unsubscribe = lambda *_: self._unsubscribed.set()
        client.enable_logger(logging.getLogger("paho.mqtt"))  # packet trace at DEBUG
        return client

    # -- lifecycle ------------------------------------------------------------------------
    def run(self) -> None:
        """Connect to Kafka and MQTT and bridge until :meth:`stop` (or SIGTERM/SIGINT)."""
        c = self._config
        ensure_topics(
            c.kafka_bootstrap,
            c.readings_topic,
            c.deadletter_topic,
            partitions=c.partitions,
            replication=c.replication,
        )
        self._producer.fresh()
        self._batcher.start()
        threading.Thread(target=self._watch_kafka, name="kafka-watchdog", daemon=True).start()
        log.info(
            "bridge %s: MQTT %s:%d (%s) → Kafka %s (%s, dead letters %s)",
            c.client_id,
            self._endpoint.host,
            self._endpoint.port,
            self._session.describe(),
            c.kafka_bootstrap,
            c.readings_topic,
            c.deadletter_topic,
        )
        while not self._stopping.is_set():
            try:
                mqtt_session.connect(self._client, self._session)
                self._client.loop_forever(retry_first_connection=True)
            except OSError as exc:
                log.warning(
                    "MQTT broker %s:%d unreachable: %s; retrying",
                    self._endpoint.host,
                    self._endpoint.port,
                    exc,
                )
            if not self._stopping.is_set():
                time.sleep(1.0)
        self._shutdown()

    def retire(self, idle_s: float = 5.0, timeout_s: float = 900.0) -> int:
        """Drain this client id's session into Kafka, then have the broker delete it.

        For scaling bridges down: a stopped bridge's persistent session keeps receiving its
        share of the shared subscription until it expires, and the broker drops what it
        holds then. Retiring unsubscribes at once (nothing new is routed here), forwards
        everything already queued, and disconnects with session expiry 0. Returns how many
        messages it drained; raises ``TimeoutError`` if the queue did not empty in time.
        """
        c = self._config
        self._retiring = True
        self._producer.fresh()
        self._batcher.start()
        mqtt_session.connect(self._client, self._session)
        deadline = time.monotonic() + timeout_s
        self._last_activity = time.monotonic()
        while True:
            self._client.loop(timeout=0.2)
            idle = time.monotonic() - self._last_activity
            busy = self._acks.busy() or self._batcher.busy()
            if self._unsubscribed.is_set() and not busy and idle >= idle_s:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"bridge {c.client_id} still draining after {timeout_s:.0f}s")
        self._batcher.stop()
        self._producer.flush(timeout=10)
        for _ in range(5):  # write out any acks the flush released
            self._client.loop(timeout=0.1)
        self._client.disconnect(properties=mqtt_session.end_session_properties())
        self._client.loop(timeout=0.5)
        self._shutdown()
        log.info(
            "bridge %s retired: drained %d messages, session deleted",
            c.client_id,
            self.stats.messages,
        )
        return self.stats.messages

    def stop(self) -> None:
        """Flush Kafka (so pending acks go out), then leave MQTT; safe from signal handlers."""
        self._stopping.set()
        try:
            self._batcher.stop()
            self._producer.flush(timeout=10)
        except Exception as exc:  # Kafka down: what is unacked is redelivered to the next bridge
            log.warning("could not flush Kafka on stop (%s); leaving unacked messages to MQTT", exc)
        finally:
            self._client.disconnect()

    def install_signal_handlers(self) -> None:
        """Stop cleanly on SIGTERM and SIGINT."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: self.stop())

    def _shutdown(self) -> None:
        try:
            self._batcher.stop()
            self._producer.flush(timeout=10)
        except Exception as exc:  # Kafka down: unacked messages stay with the broker
            log.warning("Kafka flush on shutdown failed: %s", exc)
        self._producer.close(timeout=10)
        self._log_summary(force=True)

    # -- watchdog thread ------------------------------------------------------------------
    def _watch_kafka(self) -> None:
        """Replace a producer that stopped answering (sends neither acked nor failed).

        Seen with a broker killed and restarted mid-stream: the client went quiet for
        good with sends outstanding, so nothing was acked and the MQTT window stayed full.
        A fresh producer and an MQTT reconnect make the broker redeliver what was not acked.
        """
        limit = self._config.delivery_timeout_s + 15.0
        while not self._stopping.wait(1.0):
            silent = self._acks.stalled_for(limit)
            if silent is not None and not self._producer.wedged:
                log.error(
                    "Kafka producer silent for %.0fs with sends outstanding; replacing it and"
                    " reconnecting MQTT so the broker redelivers",
                    silent,
                )
                self.stats.kafka_failures += 1
                self._producer.wedged = True
                self._client.disconnect()

    # -- MQTT callbacks (network thread) --------------------------------------------------
    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("MQTT connect refused: %s", reason)
            return
        self._acks.new_connection()  # the broker redelivers whatever was not acked before
        self._batcher.discard()  # so are the messages still waiting to be sent
        self._producer.drop_if_wedged()
        topic = self._session.describe()
        if self._retiring:
            mqtt_session.unsubscribe(client, self._session)
            log.info("retiring: unsubscribed from %s, draining the session", topic)
            return
        mqtt_session.subscribe(client, self._session)
        log.info(
            "MQTT connected (session present: %s), subscribed to %s", _f.session_present, topic
        )

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if not self._stopping.is_set():
            log.warning("MQTT disconnected (%s); unacked messages will be redelivered", reason)

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            self._bridge_message(msg)
        except KafkaError as exc:  # buffer full / Kafka unreachable: keep it for redelivery
            self._kafka_trouble(exc)
        except Exception:  # never let one message kill the bridge: keep it unacked instead
            log.exception("unexpected error bridging a message on %r; left unacked", msg.topic)
        self._log_summary()

    def _bridge_message(self, msg: mqtt.MQTTMessage) -> None:
        if mqtt_session.ack_if_elsewhere(self._client, self._session, msg):
            self.stats.other_partitions += 1
            return
        producer = self._producer.get()  # after a wedge a new one: KafkaError → redelivery
        received = self._clock()
        raw_topic = bytes(msg._topic)  # .topic raises on bad UTF-8: a bad_topic dead letter
        topic = raw_topic.decode("utf-8", "backslashreplace")
        payload = bytes(msg.payload)
        self.stats.messages += 1
        routed = route_message(raw_topic, payload, received, self._config.limits, self._authorize)
        letter = routed.deadletter
        if letter is not None:
            for part in letter.parts or (letter,):
                self.stats.rejected[part.reason] += 1
            log.debug("rejected %s on %s: %s", letter.reason, topic, letter.detail)
        self.stats.readings += len(routed.readings)
        futures = send_deadletter(producer, routed, topic, self._config.deadletter_topic)
        self._last_activity = time.monotonic()
        if routed.readings:  # acked once its readings' records (and dead letter) are in Kafka
            self._batcher.add(msg.mid, msg.qos, routed.readings, futures)
        elif msg.qos > 0:
            self._acks.track(msg.mid, msg.qos, futures)

    # -- Kafka callbacks (producer I/O thread) --------------------------------------------
    def _ack(self, mid: int, qos: int) -> None:
        """Every Kafka send for MQTT message ``mid`` succeeded: acknowledge it."""
        self._last_activity = time.monotonic()
        self._client.ack(mid, qos)
        self.stats.acked += 1

    def _kafka_trouble(self, exc: BaseException) -> None:
        self.stats.kafka_failures += 1
        log.error("Kafka send failed (%s); reconnecting MQTT so the broker redelivers", exc)
        self._client.disconnect()

    def _log_summary(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_summary < 10.0:
            return
        self._last_summary = now
        log.info("bridge: %s", self.stats.summary())
