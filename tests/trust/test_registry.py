"""Who may publish and subscribe where, and when anonymous clients are let in (pure)."""

from __future__ import annotations

import pytest

from trust import (
    AuthMode,
    Device,
    RegistryError,
    ServiceAccount,
    anonymous_allowed,
    device_topic,
    may_publish,
    may_subscribe,
    refusal,
)

BIN = Device("bin-0042", "edinburgh", "waste_bin", site="Leith Walk 12")


def test_a_device_publishes_only_to_its_own_topic() -> None:
    assert device_topic(BIN) == "civicpulse/edinburgh/waste_bin/bin-0042"
    assert may_publish(BIN, "civicpulse/edinburgh/waste_bin/bin-0042")
    for other in (
        "civicpulse/edinburgh/waste_bin/bin-0043",  # another device
        "civicpulse/aberdeen/waste_bin/bin-0042",  # another council, same id
        "civicpulse/edinburgh/air_quality/bin-0042",  # another kind
        "civicpulse/edinburgh/waste_bin/bin-0042/x",
        "civicpulse/edinburgh/waste_bin/+",
        "civicpulse/#",
    ):
        assert not may_publish(BIN, other), other


def test_a_disabled_device_and_the_anonymous_publish_nothing() -> None:
    disabled = Device("bin-0042", "edinburgh", "waste_bin", enabled=False)
    assert not may_publish(disabled, "civicpulse/edinburgh/waste_bin/bin-0042")
    assert not may_publish(None, "civicpulse/edinburgh/waste_bin/bin-0042")
    assert not may_publish(ServiceAccount("bridge", "ingest"), "civicpulse/a/waste_bin/b")


def test_only_service_accounts_subscribe_and_only_to_sensor_topics() -> None:
    bridge = ServiceAccount("bridge-1", "ingest")
    assert may_subscribe(bridge, "civicpulse/#")
    assert may_subscribe(bridge, "$share/civicpulse-ingest/civicpulse/#")
    assert not may_subscribe(bridge, "#")
    assert not may_subscribe(bridge, "$share//civicpulse/#")
    assert not may_subscribe(bridge, "$SYS/#")
    assert not may_subscribe(BIN, "civicpulse/edinburgh/waste_bin/bin-0042")
    assert not may_subscribe(BIN, "civicpulse/#")
    assert not may_subscribe(None, "civicpulse/#")


def test_refusal_reasons_for_messages_that_reach_ingest_anyway() -> None:
    topic = "civicpulse/edinburgh/waste_bin/bin-0042"
    assert refusal(BIN, topic) is None
    assert refusal(None, topic) == "unknown_device"
    assert refusal(BIN, "civicpulse/aberdeen/waste_bin/bin-0042") == "unknown_device"
    off = Device("bin-0042", "edinburgh", "waste_bin", enabled=False)
    assert refusal(off, topic) == "device_disabled"
    assert refusal(None, "not/a/civicpulse/topic/at/all") is None  # the decoder says bad_topic


@pytest.mark.parametrize(
    ("council", "kind", "sensor"),
    [("Edinburgh", "waste_bin", "b1"), ("edinburgh", "toaster", "b1"), ("a", "waste_bin", "x/y")],
)
def test_devices_that_cannot_have_a_topic_are_refused_at_registration(
    council: str, kind: str, sensor: str
) -> None:
    with pytest.raises(RegistryError):
        Device(sensor, council, kind)


@pytest.mark.parametrize(
    ("hosts", "auto"),
    [
        (["127.0.0.1"], True),
        (["127.0.0.1", "::1"], True),
        (["localhost"], True),
        (["127.10.0.2"], True),  # all of 127.0.0.0/8 is loopback
        (["[::1]"], True),
        (["0.0.0.0"], False),  # every interface
        (["::"], False),
        (["127.0.0.1", "0.0.0.0"], False),
        (["192.168.1.20"], False),
        (["broker.example.org"], False),
        ([], False),
    ],
)
def test_auto_allows_anonymous_clients_only_on_loopback_listeners(
    hosts: list[str], auto: bool
) -> None:
    assert anonymous_allowed(AuthMode.AUTO, hosts) is auto
    assert anonymous_allowed(AuthMode.REQUIRED, hosts) is False
    assert anonymous_allowed(AuthMode.OFF, hosts) is True


def test_a_directory_snapshot_lets_in_only_enabled_principals_with_the_right_secret() -> None:
    from trust import StaticDirectory

    off = Device("bin-0043", "edinburgh", "waste_bin", enabled=False)
    bridge = ServiceAccount("bridge-1", "ingest")
    directory = StaticDirectory(
        devices={"bin-0042": BIN, "bin-0043": off},
        accounts={"bridge-1": bridge},
        hashes={"bin-0042": "h:s3cret", "bin-0043": "h:other", "bridge-1": "h:svc"},
        verify=lambda stored, secret: stored == f"h:{secret}",
    )
    assert directory.authenticate("bin-0042", "s3cret") == BIN
    assert directory.authenticate("bin-0042", "wrong") is None
    assert directory.authenticate("bin-0042", "") is None
    assert directory.authenticate("bin-0043", "other") is None  # disabled
    assert directory.authenticate("bridge-1", "svc") == bridge
    assert directory.authenticate("nobody", "s3cret") is None
    assert directory.device("bin-0043") == off
    assert directory.device("nobody") is None
