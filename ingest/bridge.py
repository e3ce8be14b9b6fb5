"""MQTT → Kafka bridge: a QoS 1 message is acknowledged only after Kafka acknowledged it."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import paho.mqtt.client as mqtt
from kafka import KafkaProducer
from kafka.errors import KafkaError
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from ingest.kafka_topics import MAX_MESSAGE_BYTES, bootstrap_list, ensure_topics
from sensors.deadletter import DeadLetter
from sensors.errors import RejectReason
from sensors.intake import Routed, route_message
from sensors.mqtt_url import BrokerUrl
from sensors.topics import SUBSCRIPTION_FILTER
from sensors.validation import Limits

log = logging.getLogger(__name__)

# Dead letters keep payloads whole up to this size (the Kafka topic allows 8 MiB records).
DEADLETTER_MAX_VALUE_BYTES = 4 * 1024 * 1024


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


@dataclass(slots=True)
class BridgeStats:
    """Running totals, logged periodically."""

    messages: int = 0
    readings: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    acked: int = 0
    kafka_failures: int = 0


class _PendingAck:
    """Acks one MQTT message once every Kafka send made for it has succeeded."""

    __slots__ = ("failed", "generation", "lock", "mid", "qos", "remaining")

    def __init__(self, mid: int, qos: int, remaining: int, generation: int) -> None:
        self.mid, self.qos, self.remaining, self.generation = mid, qos, remaining, generation
        self.failed = False
        self.lock = threading.Lock()


class Bridge:
    """Subscribes (shared, QoS 1) to every sensor topic and feeds Kafka.

    Valid readings go to the readings topic keyed by sensor id; rejects go to the
    dead-letter topic with reason, raw bytes, MQTT topic and receive time. Should Kafka
    fail a send, the bridge drops its MQTT connection without acking: the broker keeps
    the message in the bridge's persistent session and redelivers it on reconnect.
    """

    def __init__(self, config: BridgeConfig, clock: Callable[[], datetime] | None = None) -> None:
        self._config = config
        self._clock = clock or (lambda: datetime.now(UTC))
        self._endpoint = BrokerUrl.parse(config.mqtt_url)
        self._stopping = threading.Event()
        self._generation = 0
        self._last_summary = time.monotonic()
        self._retiring = False
        self._unsubscribed = threading.Event()
        self._outstanding = 0
        self._outstanding_lock = threading.Lock()
        self._last_activity = time.monotonic()
        self._kafka_progress = time.monotonic()  # last Kafka answer, or first send after none
        self._producer_wedged = False
        self.stats = BridgeStats()
        self._producer: KafkaProducer | None = None
        self._client = self._make_client()

    # -- wiring ---------------------------------------------------------------------------
    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._config.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if self._endpoint.username:
            client.username_pw_set(self._endpoint.username, self._endpoint.password)
        if self._endpoint.tls:
            client.tls_set()
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_unsubscribe = lambda *_: self._unsubscribed.set()
        client.reconnect_delay_set(min_delay=1, max_delay=10)
        client.enable_logger(logging.getLogger("paho.mqtt"))  # packet trace at DEBUG
        return client

    def _make_producer(self) -> KafkaProducer:
        delivery_ms = int(self._config.delivery_timeout_s * 1000)
        return KafkaProducer(
            bootstrap_servers=bootstrap_list(self._config.kafka_bootstrap),
            acks="all",
            linger_ms=5,
            batch_size=256 * 1024,
            max_request_size=MAX_MESSAGE_BYTES,
            max_block_ms=10_000,
            delivery_timeout_ms=delivery_ms,
            request_timeout_ms=max(1000, min(30_000, delivery_ms // 2)),
            client_id=self._config.client_id,
        )

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
        self._producer = self._make_producer()
        threading.Thread(target=self._watch_kafka, name="kafka-watchdog", daemon=True).start()
        props = self._connect_properties()
        log.info(
            "bridge %s: MQTT %s:%d ($share/%s/%s) → Kafka %s (%s, dead letters %s)",
            c.client_id,
            self._endpoint.host,
            self._endpoint.port,
            c.share_group,
            SUBSCRIPTION_FILTER,
            c.kafka_bootstrap,
            c.readings_topic,
            c.deadletter_topic,
        )
        while not self._stopping.is_set():
            try:
                self._client.connect(
                    self._endpoint.host,
                    self._endpoint.port,
                    keepalive=30,
                    clean_start=False,
                    properties=props,
                )
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

    def _connect_properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = self._config.session_expiry_s
        props.ReceiveMaximum = self._config.receive_maximum
        return props

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
        self._producer = self._make_producer()
        self._client.connect(
            self._endpoint.host,
            self._endpoint.port,
            keepalive=30,
            clean_start=False,
            properties=self._connect_properties(),
        )
        deadline = time.monotonic() + timeout_s
        self._last_activity = time.monotonic()
        while True:
            self._client.loop(timeout=0.2)
            with self._outstanding_lock:
                busy = self._outstanding > 0
            idle = time.monotonic() - self._last_activity
            if self._unsubscribed.is_set() and not busy and idle >= idle_s:
                break
            if time.monotonic() > deadline:
                raise TimeoutError(f"bridge {c.client_id} still draining after {timeout_s:.0f}s")
        self._producer.flush(timeout=10)
        for _ in range(5):  # write out any acks the flush released
            self._client.loop(timeout=0.1)
        bye = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
        bye.SessionExpiryInterval = 0
        self._client.disconnect(properties=bye)
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
            if self._producer is not None:
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
        if self._producer is not None:
            try:
                self._producer.flush(timeout=10)
            except Exception as exc:  # Kafka down: unacked messages stay with the broker
                log.warning("Kafka flush on shutdown failed: %s", exc)
            self._producer.close(timeout=10)
        self._log_summary(force=True)

    # -- MQTT callbacks (network thread) --------------------------------------------------
    def _watch_kafka(self) -> None:
        """Replace a producer that stopped answering (sends neither acked nor failed).

        Seen with a broker killed and restarted mid-stream: the client went quiet for
        good with sends outstanding, so nothing was acked and the MQTT window stayed full.
        A fresh producer and an MQTT reconnect make the broker redeliver what was not acked.
        """
        limit = self._config.delivery_timeout_s + 15.0
        while not self._stopping.wait(1.0):
            with self._outstanding_lock:
                busy = self._outstanding > 0
            silent = time.monotonic() - self._kafka_progress
            if busy and silent > limit and not self._producer_wedged:
                log.error(
                    "Kafka producer silent for %.0fs with sends outstanding; replacing it and"
                    " reconnecting MQTT so the broker redelivers",
                    silent,
                )
                self.stats.kafka_failures += 1
                self._producer_wedged = True
                self._client.disconnect()

    def _on_connect(self, client: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("MQTT connect refused: %s", reason)
            return
        self._generation += 1
        with self._outstanding_lock:
            self._outstanding = 0  # the broker redelivers whatever was not acked before
        if self._producer_wedged:
            old, self._producer = self._producer, None
            self._producer_wedged = False
            if old is not None:
                threading.Thread(target=old.close, kwargs={"timeout": 0}, daemon=True).start()
        topic = f"$share/{self._config.share_group}/{SUBSCRIPTION_FILTER}"
        if self._retiring:
            client.unsubscribe(topic)
            log.info("retiring: unsubscribed from %s, draining the session", topic)
            return
        client.subscribe(topic, options=SubscribeOptions(qos=1))
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

    def _route(self, topic: str, payload: bytes, received: datetime) -> Routed:
        try:
            return route_message(topic, payload, received, self._config.limits)
        except Exception as exc:  # a decoder bug must not lose the message: dead-letter it
            log.exception("decoder failed on a message on %r; dead-lettering it", topic)
            detail = f"{type(exc).__name__}: {exc}"
            return Routed(
                [], DeadLetter(RejectReason.INTERNAL_ERROR.value, detail, payload, topic, received)
            )

    def _bridge_message(self, msg: mqtt.MQTTMessage) -> None:
        if self._producer is None:  # replaced after a wedge: KafkaError here → redelivery
            self._producer = self._make_producer()
        received = self._clock()
        topic = bytes(msg._topic).decode("utf-8", "replace")  # .topic raises on bad UTF-8
        payload = bytes(msg.payload)
        self.stats.messages += 1
        routed = self._route(topic, payload, received)
        letter = routed.deadletter
        if letter is not None:
            self.stats.rejected[letter.reason] += 1
            log.debug("rejected %s on %s: %s", letter.reason, topic, letter.detail)
            value, headers = letter.to_kafka(DEADLETTER_MAX_VALUE_BYTES)
            futures = [
                self._producer.send(
                    self._config.deadletter_topic,
                    key=topic.encode("utf-8", "replace"),
                    value=value,
                    headers=headers,
                )
            ]
        else:
            self.stats.readings += len(routed.readings)
            futures = [
                self._producer.send(self._config.readings_topic, key=key, value=value)
                for key, value in routed.readings
            ]
        self._last_activity = time.monotonic()
        if msg.qos == 0:
            return
        with self._outstanding_lock:
            if self._outstanding == 0:
                self._kafka_progress = time.monotonic()
            self._outstanding += 1
        pending = _PendingAck(msg.mid, msg.qos, len(futures), self._generation)
        for future in futures:
            future.add_callback(self._sent, pending)
            future.add_errback(self._send_failed, pending)

    # -- Kafka callbacks (producer I/O thread) --------------------------------------------
    def _sent(self, pending: _PendingAck, _metadata: Any) -> None:
        self._kafka_progress = time.monotonic()
        with pending.lock:
            pending.remaining -= 1
            done = pending.remaining == 0 and not pending.failed
        if done and pending.generation == self._generation:
            with self._outstanding_lock:
                self._outstanding -= 1
            self._last_activity = time.monotonic()
            self._client.ack(pending.mid, pending.qos)
            self.stats.acked += 1

    def _send_failed(self, pending: _PendingAck, exc: BaseException) -> None:
        self._kafka_progress = time.monotonic()
        with pending.lock:
            first = not pending.failed
            pending.failed = True
        # a message of an earlier connection is redelivered anyway: only the current counts
        if first and pending.generation == self._generation:
            with self._outstanding_lock:
                self._outstanding -= 1
            self._kafka_trouble(exc)

    def _kafka_trouble(self, exc: BaseException) -> None:
        self.stats.kafka_failures += 1
        log.error("Kafka send failed (%s); reconnecting MQTT so the broker redelivers", exc)
        self._client.disconnect()

    def _log_summary(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_summary < 10.0:
            return
        self._last_summary = now
        s = self.stats
        log.info(
            "bridge: %d messages, %d readings, %d acked, rejected %s, kafka failures %d",
            s.messages,
            s.readings,
            s.acked,
            dict(s.rejected) or "none",
            s.kafka_failures,
        )


def limits_from(max_payload_bytes: int, max_past_s: int, max_future_s: int) -> Limits:
    """Build validation limits from plain settings values."""
    return Limits(
        max_payload_bytes=max_payload_bytes,
        max_past=timedelta(seconds=max_past_s),
        max_future=timedelta(seconds=max_future_s),
    )
