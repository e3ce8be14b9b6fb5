"""The one MQTT v5 subscriber setup: a persistent session on a QoS 1 subscription.

Used by the Kafka bridge and by the embedded engine's external mode, which ack a message
only once it is safe elsewhere (in Kafka, in the database). Both therefore want the same
client: MQTT v5, manual acks, a stable client id whose session outlives a disconnect
(``clean_start=False`` with a session expiry), a bounded in-flight window (Receive Maximum)
and a way for several subscribers to split the load: either ``$share/{group}/{filter}``
(elastic: add or remove subscribers at will) or a static partition ``i/N``, where each
subscriber holds a plain subscription to every sensor topic and handles the topics whose
CRC-32 falls in its share (acking the rest at once). Mosquitto 2.0.11 keeps plain
subscriptions over a broker restart but not shared ones, so only static partitions lose
nothing a device publishes between a broker restart and the subscribers' return.

Only paho and ``sensors`` are imported here: ``embedded`` imports this module, so it must
never pull in Kafka, ``embedded`` or ``stream_processors``. Callers get paho's own objects
back and set their callbacks on the client themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from sensors.mqtt_url import BrokerUrl
from sensors.topics import SUBSCRIPTION_FILTER, owns_topic

KEEPALIVE_S: Final = 30
RECONNECT_MIN_DELAY_S: Final = 1
RECONNECT_MAX_DELAY_S: Final = 10


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """Who subscribes where: broker URL, client id, share group and session limits.

    The URL is parsed on construction (``ValueError`` for anything but ``mqtt://``,
    ``tcp://`` or ``mqtts://``) into :attr:`endpoint`.
    """

    url: str
    client_id: str
    share_group: str
    session_expiry_s: int
    receive_maximum: int = 1000
    partition: tuple[int, int] | None = None  # (i, N): a static share instead of the group
    endpoint: BrokerUrl = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "endpoint", BrokerUrl.parse(self.url))

    @property
    def topic(self) -> str:
        """``$share/{share_group}/civicpulse/#``, or ``civicpulse/#`` for a static partition."""
        if self.partition is not None:
            return SUBSCRIPTION_FILTER
        return shared_topic(self.share_group)

    def owns(self, raw_topic: bytes) -> bool:
        """Whether this subscriber handles a message on ``raw_topic`` (always, when shared)."""
        return self.partition is None or owns_topic(raw_topic, self.partition)

    def describe(self) -> str:
        """The subscription for a log line, with the partition when there is one."""
        if self.partition is None:
            return self.topic
        index, count = self.partition
        return f"{self.topic} (partition {index}/{count})"


def shared_topic(share_group: str) -> str:
    """``$share/{share_group}/civicpulse/#``: every sensor topic, split across the group."""
    return f"$share/{share_group}/{SUBSCRIPTION_FILTER}"


def make_client(config: SessionConfig) -> mqtt.Client:
    """A paho v5 client with manual acks, credentials and TLS from the URL; no callbacks."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=config.client_id,
        protocol=mqtt.MQTTv5,
        manual_ack=True,
    )
    endpoint = config.endpoint
    if endpoint.username:
        client.username_pw_set(endpoint.username, endpoint.password)
    if endpoint.tls:
        client.tls_set()
    client.reconnect_delay_set(min_delay=RECONNECT_MIN_DELAY_S, max_delay=RECONNECT_MAX_DELAY_S)
    return client


def connect_properties(config: SessionConfig) -> Properties:
    """CONNECT properties: keep the session ``session_expiry_s``, bound the in-flight window."""
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = config.session_expiry_s
    props.ReceiveMaximum = config.receive_maximum
    return props


def end_session_properties() -> Properties:
    """DISCONNECT properties that have the broker delete the session (expiry 0)."""
    bye = Properties(PacketTypes.DISCONNECT)  # type: ignore[no-untyped-call]
    bye.SessionExpiryInterval = 0
    return bye


def connect(client: mqtt.Client, config: SessionConfig) -> MQTTErrorCode:
    """Connect now (blocking), resuming the persistent session (``clean_start=False``)."""
    return client.connect(
        config.endpoint.host,
        config.endpoint.port,
        keepalive=KEEPALIVE_S,
        clean_start=False,
        properties=connect_properties(config),
    )


def connect_async(client: mqtt.Client, config: SessionConfig) -> None:
    """Like :func:`connect`, but the network loop connects (and retries) in the background."""
    client.connect_async(
        config.endpoint.host,
        config.endpoint.port,
        keepalive=KEEPALIVE_S,
        clean_start=False,
        properties=connect_properties(config),
    )


def subscribe(client: mqtt.Client, config: SessionConfig) -> tuple[MQTTErrorCode, int | None]:
    """Subscribe to :attr:`SessionConfig.topic` at QoS 1 (call from ``on_connect``)."""
    return client.subscribe(config.topic, options=SubscribeOptions(qos=1))


def ack_if_elsewhere(client: mqtt.Client, config: SessionConfig, msg: mqtt.MQTTMessage) -> bool:
    """Ack at once a message another static partition handles (its session has its own copy).

    True when it was one: the caller does nothing else with it.
    """
    if config.owns(bytes(msg._topic)):
        return False
    if msg.qos > 0:
        client.ack(msg.mid, msg.qos)
    return True


def unsubscribe(client: mqtt.Client, config: SessionConfig) -> tuple[MQTTErrorCode, int | None]:
    """Leave :attr:`SessionConfig.topic`, so the broker routes nothing new to this session."""
    return client.unsubscribe(config.topic)
