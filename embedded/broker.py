"""The embedded MQTT broker (amqtt), changed twice: a publish is checked against the topic
plugins before anything else, and a sensor message is acknowledged only after its commit."""

from __future__ import annotations

import logging
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.mqtt.protocol.handler import INCOMING
from amqtt.session import IncomingApplicationMessage, OutgoingApplicationMessage

from embedded.auth import Gate, auth_plugins
from embedded.committer import GroupCommitter, NotStored
from sensors.topics import TOPIC_PREFIX

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
    run — queue for subscribers, then PUBACK (QoS 1) / PUBREC (QoS 2). If the commit cannot
    happen (database down, engine stopping) nothing is acknowledged and the device retries.

    amqtt also asks its topic plugins whether a client may publish only *after* that flow
    (in ``Broker._handle_message_delivery``): a refused QoS 1 publish would already be
    acknowledged, and here already stored. So every incoming publish is first put to the same
    plugins (``Action.PUBLISH``); a refused one is neither stored nor acknowledged, and the
    connection is closed — MQTT 3.1.1, all amqtt speaks, has no negative PUBACK, and a
    silent PUBACK would tell the device its reading was kept. Outgoing messages are untouched.
    """

    committer: GroupCommitter

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
        await super()._handle_message_flow(app_message)

    async def _may_publish(self, topic: str) -> bool:
        """The broker's own publish check (``Broker._topic_filtering``), asked up front."""
        plugins = self.plugins_manager
        if not plugins.is_topic_filtering_enabled():
            return True
        results = await plugins.map_plugin_topic(
            session=self.session, topic=topic, action=Action.PUBLISH
        )
        return all(results.values())


class DurableBroker(Broker):  # type: ignore[misc]  # amqtt is untyped
    """An amqtt ``Broker`` whose client connections use :class:`DurableHandler`."""

    def __init__(self, config: dict[str, Any], committer: GroupCommitter) -> None:
        super().__init__(config)
        self._committer = committer

    async def _initialize_client_session(self, *args: Any, **kwargs: Any) -> Any:
        # amqtt builds the handler inside this method (BrokerProtocolHandler.init_from_connect)
        # and offers no factory hook; re-class the fresh handler instead of copying the method.
        # DurableHandler adds no state of its own, only the override above.
        handler, session = await super()._initialize_client_session(*args, **kwargs)
        handler.__class__ = DurableHandler
        handler.committer = self._committer
        return handler, session


def broker_config(host: str, port: int, gate: Gate) -> dict[str, Any]:
    """One TCP listener, enforcing ``gate`` (auth and topic plugins); no packet/event logging
    plugins (they cost per packet)."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": auth_plugins(gate),
    }


__all__ = ["DurableBroker", "DurableHandler", "broker_config"]
