"""The one MQTT v5 subscriber setup: a persistent session on a shared QoS 1 subscription.

Used by the Kafka bridge and by the embedded engine's external mode, which ack a message
only once it is safe elsewhere (in Kafka, in the database). Both therefore want the same
client: MQTT v5, manual acks, a stable client id whose session outlives a disconnect
(``clean_start=False`` with a session expiry), a bounded in-flight window (Receive Maximum)
and ``$share/{group}/{filter}`` so several subscribers split the load.

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
from sensors.topics import SUBSCRIPTION_FILTER

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
    endpoint: BrokerUrl = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "endpoint", BrokerUrl.parse(self.url))

    @property
    def topic(self) -> str:
        """The shared subscription: ``$share/{share_group}/{SUBSCRIPTION_FILTER}``."""
        return shared_topic(self.share_group)


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
    """Subscribe to the shared topic at QoS 1 (call from ``on_connect``)."""
    return client.subscribe(config.topic, options=SubscribeOptions(qos=1))


def unsubscribe(client: mqtt.Client, config: SessionConfig) -> tuple[MQTTErrorCode, int | None]:
    """Leave the shared topic, so the broker routes nothing new to this session."""
    return client.unsubscribe(config.topic)
