"""Embedded engine on an external broker: a shared QoS 1 subscription, acked after commit."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from embedded.committer import GroupCommitter
from sensors.mqtt_url import BrokerUrl
from sensors.topics import SUBSCRIPTION_FILTER

log = logging.getLogger(__name__)


class ExternalSubscriber:
    """Feeds an external broker's sensor messages to the group committer.

    The same contract as the Kafka bridge, with the database commit in place of Kafka's
    acknowledgement: manual acks, a persistent MQTT v5 session under a stable client id, and
    a shared subscription so several engines or bridges can split the load.
    """

    def __init__(
        self,
        url: str,
        committer: GroupCommitter,
        loop: asyncio.AbstractEventLoop,
        *,
        client_id: str,
        share_group: str,
        session_expiry_s: int,
        receive_maximum: int = 1000,
    ) -> None:
        self._endpoint = BrokerUrl.parse(url)
        self._committer = committer
        self._loop = loop
        self._topic = f"$share/{share_group}/{SUBSCRIPTION_FILTER}"
        self._props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        self._props.SessionExpiryInterval = session_expiry_s
        self._props.ReceiveMaximum = receive_maximum
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if self._endpoint.username:
            self._client.username_pw_set(self._endpoint.username, self._endpoint.password)
        if self._endpoint.tls:
            self._client.tls_set()
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(min_delay=1, max_delay=10)
        self._generation = 0

    def start(self) -> None:
        """Connect (retrying in the background) and start the network thread."""
        self._client.connect_async(
            self._endpoint.host,
            self._endpoint.port,
            keepalive=30,
            clean_start=False,
            properties=self._props,
        )
        self._client.loop_start()

    def stop(self) -> None:
        """Leave the broker; unacknowledged messages stay in the session for next time."""
        self._client.disconnect()
        self._client.loop_stop()

    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            log.error("external MQTT broker refused the connection: %s", reason)
            return
        self._generation += 1
        client.subscribe(self._topic, options=SubscribeOptions(qos=1))
        log.info(
            "subscribed to %s on %s:%d (session present: %s)",
            self._topic,
            self._endpoint.host,
            self._endpoint.port,
            flags.session_present,
        )

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        topic = bytes(msg._topic).decode("utf-8", "replace")  # .topic raises on bad UTF-8
        future = asyncio.run_coroutine_threadsafe(
            self._committer.submit(topic, bytes(msg.payload)), self._loop
        )
        generation, mid, qos = self._generation, msg.mid, msg.qos

        def acked(done: Future[None]) -> None:
            if done.cancelled() or done.exception() is not None:
                log.warning("message on %s not committed; left for redelivery", topic)
            elif qos > 0 and generation == self._generation:
                client.ack(mid, qos)

        future.add_done_callback(acked)
