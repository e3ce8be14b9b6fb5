"""Embedded engine on an external broker: a shared QoS 1 subscription, acked after commit."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future
from typing import Any

import paho.mqtt.client as mqtt

from embedded.committer import GroupCommitter
from ingest import mqtt_session  # the one arrow from embedded to ingest: MQTT setup only
from ingest.mqtt_session import SessionConfig

log = logging.getLogger(__name__)


class ExternalSubscriber:
    """Feeds an external broker's sensor messages to the group committer.

    The same contract as the Kafka bridge, with the database commit in place of Kafka's
    acknowledgement: manual acks, a persistent MQTT v5 session under a stable client id, and
    a shared subscription (or static partitions) so several engines or bridges can split the
    load.
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
        partition: tuple[int, int] | None = None,
    ) -> None:
        self._session = SessionConfig(
            url=url,
            client_id=client_id,
            share_group=share_group,
            session_expiry_s=session_expiry_s,
            receive_maximum=receive_maximum,
            partition=partition,
        )
        self._endpoint = self._session.endpoint
        self._committer = committer
        self._loop = loop
        self._client = mqtt_session.make_client(self._session)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._generation = 0

    def start(self) -> None:
        """Connect (retrying in the background) and start the network thread."""
        mqtt_session.connect_async(self._client, self._session)
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
        mqtt_session.subscribe(client, self._session)
        log.info(
            "subscribed to %s on %s:%d (session present: %s)",
            self._session.describe(),
            self._endpoint.host,
            self._endpoint.port,
            flags.session_present,
        )

    def _on_message(self, client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if mqtt_session.ack_if_elsewhere(client, self._session, msg):
            return
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
