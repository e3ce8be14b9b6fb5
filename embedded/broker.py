"""The embedded MQTT broker (amqtt), changed: packets pass a front door, a publish is checked
against the topic plugins first, a sensor message is acknowledged only once stored, and not
queued for delivery when no one subscribes."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amqtt.adapters import StreamWriterAdapter
from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.mqtt.constants import QOS_0, QOS_1
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.mqtt.protocol.handler import INCOMING
from amqtt.mqtt.puback import PubackPacket
from amqtt.mqtt.publish import PublishPacket
from amqtt.session import IncomingApplicationMessage, OutgoingApplicationMessage

from embedded.auth import Gate, auth_plugins, topic_allowed
from embedded.committer import GroupCommitter, NotStored
from embedded.frontdoor import DEFAULT_MAX_PACKET_BYTES, FrontDoor, FrontDoorReader, Malformed
from sensors.deadletter import DeadLetter
from sensors.topics import TOPIC_PREFIX
from storage import DeadLetterStore

log = logging.getLogger(__name__)

_DURABLE_PREFIX = TOPIC_PREFIX + "/"


def is_sensor_topic(topic: str) -> bool:
    """Whether the sensor subscription filter (``civicpulse/#``) matches ``topic``."""
    return topic == TOPIC_PREFIX or topic.startswith(_DURABLE_PREFIX)


class DurableHandler(BrokerProtocolHandler):  # type: ignore[misc]  # amqtt is untyped
    """amqtt's broker-side protocol handler, committing sensor messages before acknowledging.

    Why: amqtt's ``_handle_qos1_message_flow`` (INCOMING) queues a QoS 1 message for delivery
    and sends PUBACK at once, so a crash after the PUBACK loses a message the device has
    already forgotten. Here a message under ``civicpulse/`` is first routed and committed to
    the database (group commit, see :class:`GroupCommitter`); only then does amqtt's own flow
    run — queue for subscribers, then PUBACK (QoS 1) / PUBREC (QoS 2); or, when no client
    subscribes to anything and the message is not retained, just the PUBACK
    (:meth:`DurableBroker.nobody_to_deliver_to`). If the commit cannot happen (database
    down, engine stopping) nothing is acknowledged and the device retries.

    amqtt also asks its topic plugins whether a client may publish only *after* that flow
    (in ``Broker._handle_message_delivery``): a refused QoS 1 publish would already be
    acknowledged, and here already stored. So every incoming publish is first put to the same
    plugins (``Action.PUBLISH``); a refused one is neither stored nor acknowledged, and the
    connection is closed — MQTT 3.1.1, all amqtt speaks, has no negative PUBACK, and a
    silent PUBACK would tell the device its reading was kept. Outgoing messages are untouched.
    """

    committer: GroupCommitter
    broker: DurableBroker

    def _init_session(self, session: Any) -> None:
        super()._init_session(session)
        self.keepalive_timeout = None  # no write timer per packet sent: see start()

    async def start(self) -> None:
        """Start amqtt's handler without its keep-alive timers; the front door keeps time.

        amqtt 0.12.1's broker handler ignores keep-alive timeouts (its ``handle_read_timeout``
        and ``handle_write_timeout`` do nothing) yet pays for them on every packet: a
        ``wait_for`` (a task and a timer) per packet read and a timer per packet sent, ~8 % of
        the engine's busy time under one-reading messages (py-spy, 2026-12-04). With the
        session's keep-alive hidden while its reader loop starts, neither is armed, and the
        front door closes a connection silent for 1.5 × its keep-alive [MQTT-3.1.2-24].
        """
        keep_alive = int(self.session.keep_alive or 0)
        self.session.keep_alive = 0  # read once, when amqtt's reader loop starts
        try:
            await super().start()
        finally:
            if self.session is not None:
                self.session.keep_alive = keep_alive
        if isinstance(self.reader, FrontDoorReader):
            self.reader.watch_keep_alive(keep_alive)

    async def handle_publish(self, publish_packet: PublishPacket) -> None:
        """Handle only the PUBLISH the front door let through next, byte for byte.

        Defence in depth: if amqtt's parser ever framed the stream differently from the front
        door (a packet it cut short, bytes it parsed as another packet), the PUBLISH it hands
        over is not the one checked, and the connection is closed before anything is stored.
        """
        reader = self.reader
        if isinstance(reader, FrontDoorReader) and not reader.expect_publish(
            publish_packet.topic_name,
            publish_packet.qos,
            publish_packet.packet_id if publish_packet.qos else None,
            publish_packet.data,
        ):
            await reader.refuse(Malformed("framing", "amqtt parsed a PUBLISH not let through"))
            await self.handle_connection_closed()
            return
        await super().handle_publish(publish_packet)

    async def _handle_message_flow(
        self, app_message: IncomingApplicationMessage | OutgoingApplicationMessage
    ) -> None:
        if app_message.direction == INCOMING:
            if not await self._may_publish(app_message.topic):
                session = self.session
                log.warning(
                    "refused publish to %r by %r: not stored, not acknowledged, disconnected",
                    app_message.topic,
                    session.username or session.client_id if session else None,
                )
                await self.handle_connection_closed()  # the broker then closes the connection
                return
            if is_sensor_topic(app_message.topic):
                try:
                    await self.committer.submit(app_message.topic, bytes(app_message.data))
                except NotStored as exc:
                    log.debug("not acknowledging %s: %s", app_message.topic, exc)
                    return
                if app_message.qos in (QOS_0, QOS_1) and self.broker.nobody_to_deliver_to(
                    app_message
                ):
                    await self._acknowledge(app_message)
                    return
        await super()._handle_message_flow(app_message)

    async def _acknowledge(self, app_message: IncomingApplicationMessage) -> None:
        """amqtt's QoS 0 / QoS 1 incoming flow without queueing the message for delivery:
        PUBACK (QoS 1) and nothing else, as when it is delivered to no one."""
        if app_message.qos == QOS_1:
            puback = PubackPacket.build(app_message.packet_id)
            await self._send_packet(puback)
            app_message.puback_packet = puback
        self.broker.undelivered += 1

    async def _may_publish(self, topic: str) -> bool:
        """The broker's own publish check (``Broker._topic_filtering``), asked up front."""
        return bool(await self.broker._topic_filtering(self.session, topic, Action.PUBLISH))


class DurableBroker(Broker):  # type: ignore[misc]  # amqtt is untyped
    """An amqtt ``Broker`` whose TCP connections pass a :class:`FrontDoorReader` and whose
    client connections use :class:`DurableHandler`.

    ``max_packet_bytes`` refuses larger packets (connection closed, nothing read past the
    topic and a payload prefix); ``letters`` (its own connection) stores the dead letters of
    refused PUBLISH packets — without it, refusals are only logged and counted
    (``front_door.refused``). ``gate``, the one the config's topic plugin enforces
    (:func:`broker_config`), is asked directly: amqtt would start a task per plugin for
    every publish, twice (here before the commit, and again before delivery).
    """

    def __init__(
        self,
        config: dict[str, Any],
        committer: GroupCommitter,
        *,
        max_packet_bytes: int = DEFAULT_MAX_PACKET_BYTES,
        letters: DeadLetterStore | None = None,
        gate: Gate | None = None,
    ) -> None:
        super().__init__(config)
        self._committer = committer
        self._gate = gate
        self._letters = letters
        self._letters_lock = asyncio.Lock()
        self.front_door = FrontDoor(max_packet_bytes, self._record if letters is not None else None)
        self.undelivered = 0  # sensor messages acknowledged with no one subscribed to deliver to

    def nobody_to_deliver_to(self, app_message: IncomingApplicationMessage) -> bool:
        """Whether delivering ``app_message`` would be a no-op: no client subscribes to
        anything and it is not retained (a retained message is kept for later subscribers).

        amqtt would otherwise queue it for its session's delivery loop, check the publish
        permission a second time, fire two plugin events and hand it to the broadcast loop,
        one task each, only to match it against no subscription (py-spy, 2026-12-05: about a
        tenth of the engine's busy time under 6-reading messages).
        """
        packet = app_message.publish_packet
        retained = packet is not None and packet.retain_flag
        return not retained and not any(self._subscriptions.values())

    async def _record(self, letter: DeadLetter, source_ref: str) -> None:
        if self._letters is None:
            return
        async with self._letters_lock:  # one connection: one write at a time
            await asyncio.to_thread(self._letters.write, [(letter, source_ref)])

    async def _topic_filtering(self, session: Any, topic: str, action: Action) -> bool:
        if self._gate is None or not self.plugins_manager.is_topic_filtering_enabled():
            return bool(await super()._topic_filtering(session, topic, action))
        return topic_allowed(self._gate, session, topic, action)

    async def stream_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, listener_name: str
    ) -> None:
        """amqtt's TCP entry point, with the front door in front of its parser."""
        door = FrontDoorReader(reader, writer, self.front_door)
        await self._client_connected(listener_name, door, StreamWriterAdapter(writer))

    async def shutdown(self) -> None:
        """Stop amqtt, then close the dead-letter connection."""
        await super().shutdown()
        if self._letters is not None:
            await asyncio.to_thread(self._letters.close)

    async def _initialize_client_session(self, *args: Any, **kwargs: Any) -> Any:
        # amqtt builds the handler inside this method (BrokerProtocolHandler.init_from_connect)
        # and offers no factory hook; re-class the fresh handler instead of copying the method.
        # DurableHandler adds no state of its own, only the override above.
        handler, session = await super()._initialize_client_session(*args, **kwargs)
        handler.__class__ = DurableHandler
        handler.committer = self._committer
        handler.broker = self
        return handler, session


@dataclass(frozen=True, slots=True)
class TlsListener:
    """A TLS listener (MQTT over TLS, e.g. port 8883) beside the plain one, on the same host."""

    port: int
    certfile: str
    keyfile: str

    @classmethod
    def from_settings(cls, port: int, certfile: str, keyfile: str) -> TlsListener | None:
        """None when ``port`` is 0; ValueError naming what is missing or unreadable."""
        if not port:
            return None
        for name, path in (("tls_certfile", certfile), ("tls_keyfile", keyfile)):
            if not path:
                raise ValueError(f"CIVICPULSE_TLS_PORT={port} needs CIVICPULSE_{name.upper()}")
            if not Path(path).is_file():
                raise ValueError(f"CIVICPULSE_{name.upper()}={path}: no such file")
        return cls(port, certfile, keyfile)


def broker_config(
    host: str, port: int, gate: Gate, tls: TlsListener | None = None
) -> dict[str, Any]:
    """A TCP listener (and a TLS one), enforcing ``gate`` (auth and topic plugins); no
    packet/event logging plugins (they cost per packet)."""
    listeners: dict[str, Any] = {"default": {"type": "tcp", "bind": f"{host}:{port}"}}
    if tls is not None:
        listeners["tls"] = {
            "type": "tcp",
            "bind": f"{host}:{tls.port}",
            "ssl": True,
            "certfile": tls.certfile,
            "keyfile": tls.keyfile,
        }
    return {"listeners": listeners, "plugins": auth_plugins(gate)}


__all__ = ["DurableBroker", "DurableHandler", "TlsListener", "broker_config"]
