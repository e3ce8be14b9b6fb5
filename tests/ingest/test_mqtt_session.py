"""The shared MQTT v5 subscriber setup, checked on the built paho objects (no broker)."""

from __future__ import annotations

import zlib
from unittest import mock

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes

from ingest import mqtt_session
from ingest.mqtt_session import SessionConfig


def test_session_builds_a_persistent_shared_v5_subscriber() -> None:
    config = SessionConfig(
        url="mqtt://ingest-user:s3cret@broker.example:1884",
        client_id="bridge-7",
        share_group="ingest-grp",
        session_expiry_s=3600,
        receive_maximum=250,
    )

    client = mqtt_session.make_client(config)
    assert client._client_id == b"bridge-7"
    assert client.callback_api_version == CallbackAPIVersion.VERSION2
    assert client.protocol == mqtt.MQTTv5 == 5
    assert client._manual_ack is True
    assert client.username == "ingest-user"
    assert client.password == "s3cret"
    assert (client._reconnect_min_delay, client._reconnect_max_delay) == (1, 10)
    assert client._ssl is False

    props = mqtt_session.connect_properties(config)
    assert props.packetType == PacketTypes.CONNECT
    assert props.SessionExpiryInterval == 3600
    assert props.ReceiveMaximum == 250

    assert config.topic == "$share/ingest-grp/civicpulse/#"

    mqtt_session.connect_async(client, config)  # only records where and how to connect
    assert (client.host, client.port, client.keepalive) == ("broker.example", 1884, 30)
    assert client._clean_start is False
    assert client._connect_properties.SessionExpiryInterval == 3600
    assert client._connect_properties.ReceiveMaximum == 250

    with mock.patch.object(client, "subscribe") as subscribe:
        mqtt_session.subscribe(client, config)
    (topic,), kwargs = subscribe.call_args
    assert topic == "$share/ingest-grp/civicpulse/#"
    assert kwargs["options"].QoS == 1

    bye = mqtt_session.end_session_properties()
    assert bye.packetType == PacketTypes.DISCONNECT
    assert bye.SessionExpiryInterval == 0


def test_mqtts_url_turns_on_tls_and_the_tls_port() -> None:
    config = SessionConfig("mqtts://broker.example", "engine-1", "g", 60)
    client = mqtt_session.make_client(config)
    assert client._ssl is True
    assert client.username is None
    assert (config.endpoint.host, config.endpoint.port) == ("broker.example", 8883)


def test_a_static_partition_subscribes_plainly_and_owns_its_share() -> None:
    config = SessionConfig("mqtt://broker.example", "bridge-2", "grp", 60, partition=(1, 2))
    assert config.topic == "civicpulse/#"  # Mosquitto keeps a plain subscription over a restart
    assert config.describe() == "civicpulse/# (partition 1/2)"
    owned = [t for t in (b"civicpulse/a/b/c", b"civicpulse/a/b/d") if config.owns(t)]
    other = SessionConfig("mqtt://broker.example", "bridge-1", "grp", 60, partition=(0, 2))
    assert [t for t in (b"civicpulse/a/b/c", b"civicpulse/a/b/d") if not other.owns(t)] == owned
    shared = SessionConfig("mqtt://broker.example", "bridge-3", "grp", 60)
    assert shared.owns(b"anything") and shared.describe() == "$share/grp/civicpulse/#"


def test_a_message_of_another_partition_is_acked_at_once_and_not_handled() -> None:
    config = SessionConfig("mqtt://broker.example", "bridge-2", "grp", 60, partition=(1, 2))
    client = mqtt_session.make_client(config)
    topics = [f"civicpulse/york/air_quality/aq-{i}".encode() for i in range(20)]
    with mock.patch.object(client, "ack") as ack:
        handled = []
        for mid, topic in enumerate(topics, start=1):
            msg = mqtt.MQTTMessage(mid=mid, topic=topic)
            msg.qos = 1
            if not mqtt_session.ack_if_elsewhere(client, config, msg):
                handled.append(topic)
    # ours: CRC-32 mod 2 == 1, computed here independently; the others acked, not handled
    assert handled == [t for t in topics if zlib.crc32(t) % 2 == 1]
    assert 0 < len(handled) < len(topics)
    elsewhere = [i for i, t in enumerate(topics, start=1) if t not in handled]
    assert [c.args for c in ack.call_args_list] == [(mid, 1) for mid in elsewhere]
