"""The embedded MQTT broker (amqtt) with one change: PUBACK only after the database commit."""

from __future__ import annotations

import logging
from typing import Any

from amqtt.broker import Broker
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.mqtt.protocol.handler import INCOMING
from amqtt.session import IncomingApplicationMessage, OutgoingApplicationMessage

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
    Other topics and outgoing messages are untouched.
    """

    committer: GroupCommitter

    async def _handle_message_flow(
        self, app_message: IncomingApplicationMessage | OutgoingApplicationMessage
    ) -> None:
        if app_message.direction == INCOMING and is_sensor_topic(app_message.topic):
            try:
                await self.committer.submit(app_message.topic, bytes(app_message.data))
            except NotStored as exc:
                log.debug("not acknowledging %s: %s", app_message.topic, exc)
                return
        await super()._handle_message_flow(app_message)


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


def broker_config(host: str, port: int) -> dict[str, Any]:
    """One anonymous TCP listener; no packet/event logging plugins (they cost per packet)."""
    return {
        "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


__all__ = ["DurableBroker", "DurableHandler", "broker_config"]
