"""The embedded broker's auth and topic plugins, decision by decision (no broker, no network)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from amqtt.broker import Broker
from amqtt.contexts import Action, BaseContext
from amqtt.mqtt.constants import QOS_1
from amqtt.session import IncomingApplicationMessage, Session

from embedded import (
    DirectoryAuthPlugin,
    DirectoryRefresher,
    DirectoryTopicPlugin,
    DurableBroker,
    DurableHandler,
    Gate,
    broker_config,
)
from embedded.auth import LOGIN_KEY, Login, login_of
from trust import AuthMode, Device, Directory, ServiceAccount, StaticDirectory

AQ = Device("aq-0001", "camden", "air_quality")
OFF = Device("aq-0002", "camden", "air_quality", enabled=False)
BRIDGE = ServiceAccount("bridge-1", "ingest")
OWN = "civicpulse/camden/air_quality/aq-0001"
OTHER = "civicpulse/camden/air_quality/aq-0002"


def directory(*devices: Device) -> StaticDirectory:
    devices = devices or (AQ, OFF)
    return StaticDirectory(
        devices={d.sensor_id: d for d in devices},
        accounts={"bridge-1": BRIDGE},
        hashes={"aq-0001": "h:s3cret", "aq-0002": "h:other", "bridge-1": "h:svc"},
        verify=lambda stored, secret: stored == "h:" + secret,
    )


def gate(mode: AuthMode = AuthMode.REQUIRED, host: str = "127.0.0.1") -> Gate:
    return Gate(mode, [host], directory())


def session(username: str | None = None, password: str | None = None, **over: Any) -> Session:
    s = Session()
    s.client_id, s.username, s.password = f"c-{username}", username, password
    s.remote_address = "127.0.0.1"
    for key, value in over.items():
        setattr(s, key, value)
    return s


def plugins(g: Gate) -> tuple[DirectoryAuthPlugin, DirectoryTopicPlugin]:
    """Both plugins built the way amqtt's PluginManager builds them from a config section."""
    built = []
    for cls in (DirectoryAuthPlugin, DirectoryTopicPlugin):
        context = BaseContext()
        context.config = cls.Config(gate=g)
        built.append(cls(context))
    return built[0], built[1]


def connect(g: Gate, s: Session) -> bool:
    auth, _topic = plugins(g)
    return asyncio.run(auth.authenticate(session=s))


def allowed(g: Gate, s: Session, topic: str, action: Action) -> bool:
    _auth, check = plugins(g)
    return asyncio.run(check.topic_filtering(session=s, topic=topic, action=action))


def test_required_lets_in_only_enabled_principals_with_the_right_secret() -> None:
    g = gate(AuthMode.REQUIRED)
    assert not connect(g, session())  # no credentials
    assert not connect(g, session("aq-0001", "wrong"))
    assert not connect(g, session("aq-0001", ""))
    assert not connect(g, session("aq-0002", "other"))  # disabled
    assert not connect(g, session("nobody", "s3cret"))
    s = session("aq-0001", "s3cret")
    assert connect(g, s)
    assert login_of(s) == Login(AQ) and not s.is_anonymous
    bridge = session("bridge-1", "svc")
    assert connect(g, bridge) and login_of(bridge) == Login(BRIDGE)


@pytest.mark.parametrize(
    ("mode", "host", "anonymous"),
    [
        (AuthMode.AUTO, "127.0.0.1", True),
        (AuthMode.AUTO, "::1", True),
        (AuthMode.AUTO, "0.0.0.0", False),  # every interface: auto asks for credentials
        (AuthMode.REQUIRED, "127.0.0.1", False),
        (AuthMode.OFF, "0.0.0.0", True),
    ],
)
def test_anonymous_clients_only_where_the_mode_allows(
    mode: AuthMode, host: str, anonymous: bool
) -> None:
    g = gate(mode, host)
    s = session()
    assert connect(g, s) is anonymous
    if anonymous:
        assert login_of(s) == Login(None) and s.is_anonymous
    # a registered device still logs in as itself, except with auth off (nothing is checked)
    device = session("aq-0001", "s3cret")
    assert connect(g, device)
    assert login_of(device) == Login(None if mode is AuthMode.OFF else AQ)


def test_wrong_credentials_are_refused_even_where_anonymous_clients_are_let_in() -> None:
    assert not connect(gate(AuthMode.AUTO), session("aq-0001", "wrong"))  # like Mosquitto
    assert connect(gate(AuthMode.OFF), session("aq-0001", "wrong"))  # off checks nothing


def test_a_will_on_a_topic_the_device_may_not_publish_to_is_refused() -> None:
    g = gate(AuthMode.REQUIRED)
    assert not connect(g, session("aq-0001", "s3cret", will_flag=True, will_topic=OTHER))
    assert connect(g, session("aq-0001", "s3cret", will_flag=True, will_topic=OWN))


def test_a_device_publishes_only_to_its_own_topic_and_subscribes_nowhere() -> None:
    g = gate(AuthMode.REQUIRED)
    s = session("aq-0001", "s3cret")
    assert connect(g, s)
    assert allowed(g, s, OWN, Action.PUBLISH)
    assert not allowed(g, s, OTHER, Action.PUBLISH)
    assert not allowed(g, s, "civicpulse/fife/air_quality/aq-0001", Action.PUBLISH)
    assert not allowed(g, s, "elsewhere", Action.PUBLISH)
    assert not allowed(g, s, OWN, Action.SUBSCRIBE)
    assert not allowed(g, s, "civicpulse/#", Action.SUBSCRIBE)


def test_service_accounts_subscribe_to_sensor_topics_and_publish_nothing() -> None:
    g = gate(AuthMode.REQUIRED)
    s = session("bridge-1", "svc")
    assert connect(g, s)
    assert allowed(g, s, "civicpulse/#", Action.SUBSCRIBE)
    assert allowed(g, s, "$share/civicpulse-ingest/civicpulse/#", Action.SUBSCRIBE)
    assert not allowed(g, s, "#", Action.SUBSCRIBE)
    assert not allowed(g, s, OWN, Action.PUBLISH)
    assert allowed(g, s, OWN, Action.RECEIVE)  # delivery on an allowed subscription


def test_anonymous_clients_keep_todays_behaviour() -> None:
    for mode in (AuthMode.AUTO, AuthMode.OFF):
        g = gate(mode)
        s = session()
        assert connect(g, s)
        assert allowed(g, s, OTHER, Action.PUBLISH)
        assert allowed(g, s, "anything/at/all", Action.PUBLISH)
        assert allowed(g, s, "#", Action.SUBSCRIBE)


def test_a_session_that_never_logged_in_is_refused_unless_auth_is_off() -> None:
    stranger = session("aq-0001", "s3cret")  # credentials, but no login recorded
    assert not allowed(gate(AuthMode.REQUIRED), stranger, OWN, Action.PUBLISH)
    assert not allowed(gate(AuthMode.AUTO), stranger, "civicpulse/#", Action.SUBSCRIBE)
    assert allowed(gate(AuthMode.OFF), stranger, OWN, Action.PUBLISH)


def test_a_device_disabled_while_connected_is_refused_at_once_by_the_next_snapshot() -> None:
    g = gate(AuthMode.REQUIRED)
    s = session("aq-0001", "s3cret")
    assert connect(g, s)
    g.directory = directory(Device("aq-0001", "camden", "air_quality", enabled=False), OFF)
    assert not allowed(g, s, OWN, Action.PUBLISH)  # the same connection, next publish
    assert not connect(g, session("aq-0001", "s3cret"))  # and its next connection
    g.directory = directory(OFF)  # removed altogether
    assert not allowed(g, s, OWN, Action.PUBLISH)


def test_the_refresher_swaps_snapshots_and_keeps_the_last_one_when_a_load_fails() -> None:
    g = gate(AuthMode.REQUIRED)
    snapshots: list[Directory | Exception] = [directory(OFF), RuntimeError("database down")]

    def load() -> Directory:
        item = snapshots.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    refresher = DirectoryRefresher(g, load, interval_s=60)
    assert refresher.refresh()
    assert g.directory.device("aq-0001") is None
    assert not refresher.refresh()
    assert g.directory.device("aq-0002") == OFF  # the last good snapshot stays


def test_ingest_refusal_reasons_follow_the_current_snapshot() -> None:
    g = gate(AuthMode.REQUIRED)
    assert g.refusal(OWN) is None
    assert g.refusal(OTHER) == "device_disabled"
    assert g.refusal("civicpulse/camden/air_quality/aq-9999") == "unknown_device"
    assert g.refusal("civicpulse/fife/air_quality/aq-0001") == "unknown_device"
    assert g.refusal("not/a/sensor/topic/at/all") is None  # the decoder says bad_topic


def test_amqtt_hands_the_plugins_the_engines_gate_itself() -> None:
    g = gate(AuthMode.REQUIRED)

    async def build() -> Broker:
        return Broker(broker_config("127.0.0.1", 1, g))  # built, never started: no socket

    manager = asyncio.run(build()).plugins_manager
    for name in ("DirectoryAuthPlugin", "DirectoryTopicPlugin"):
        plugin = manager.get_plugin(name)
        assert plugin is not None and plugin.gate is g, name
    assert manager.is_topic_filtering_enabled()


class RecordingCommitter:
    def __init__(self) -> None:
        self.submitted: list[str] = []

    async def submit(self, topic: str, payload: bytes) -> None:
        self.submitted.append(topic)


def test_a_refused_publish_is_neither_committed_nor_acknowledged_and_the_client_dropped() -> None:
    g = gate(AuthMode.REQUIRED)

    async def main() -> tuple[list[str], bool]:
        committer = RecordingCommitter()
        broker = DurableBroker(broker_config("127.0.0.1", 1, g), committer, gate=g)  # type: ignore[arg-type]
        s = session("aq-0001", "s3cret")
        s.attributes[LOGIN_KEY] = Login(AQ)
        handler = DurableHandler(broker.plugins_manager, s)
        handler.committer = committer  # type: ignore[assignment]
        handler.broker = broker
        closed = asyncio.get_running_loop().create_future()
        handler._disconnect_waiter = closed
        message = IncomingApplicationMessage(7, OTHER, QOS_1, b"{}", False)
        await handler._handle_message_flow(message)  # no stream: a PUBACK would raise here
        return committer.submitted, closed.done() and closed.result() is None

    submitted, dropped = asyncio.run(main())
    assert submitted == []
    assert dropped


def test_the_brokers_direct_gate_check_answers_as_amqtts_plugin_path() -> None:
    g = gate(AuthMode.REQUIRED)
    device = session("aq-0001", "s3cret")
    device.attributes[LOGIN_KEY] = Login(AQ)
    never_logged_in = session("nobody", "x")
    asks = [
        (who, topic, action)
        for who in (device, never_logged_in)
        for topic in (f"civicpulse/camden/air_quality/{AQ.sensor_id}", OTHER, "civicpulse/#")
        for action in (Action.PUBLISH, Action.SUBSCRIBE, Action.RECEIVE)
    ]

    async def answers() -> tuple[list[bool], list[bool]]:
        direct = DurableBroker(broker_config("127.0.0.1", 1, g), None, gate=g)  # type: ignore[arg-type]
        plugins = Broker(broker_config("127.0.0.1", 1, g))
        return (
            [await direct._topic_filtering(*ask) for ask in asks],
            [await plugins._topic_filtering(*ask) for ask in asks],
        )

    direct, via_plugins = asyncio.run(answers())
    assert direct == via_plugins
    assert True in direct and False in direct  # the asks tell allowed from refused
