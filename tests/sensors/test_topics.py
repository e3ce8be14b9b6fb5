"""MQTT topic scheme: parse, build and reject."""

from __future__ import annotations

import zlib

import pytest

from sensors.errors import RejectedPayload, RejectReason
from sensors.topics import (
    SUBSCRIPTION_FILTER,
    TOPIC_PREFIX,
    SensorAddress,
    owns_topic,
    parse_partition,
    parse_topic,
    topic_for,
)


def test_constants() -> None:
    assert TOPIC_PREFIX == "civicpulse"
    # Everything under the prefix, so malformed topics reach parse_topic and are
    # dead-lettered as bad_topic rather than never being received (commit 7c3f666).
    assert SUBSCRIPTION_FILTER == "civicpulse/#"


def test_parse_topic() -> None:
    address = parse_topic("civicpulse/aberdeen/air_quality/sds011-5331")
    assert address == SensorAddress("aberdeen", "air_quality", "sds011-5331")


@pytest.mark.parametrize(
    "sensor_id", ["a", "A1.b_c:d-e", "urn:dev:ow:10e2073a01080063", "x" * 128, "0"]
)
def test_sensor_id_charset(sensor_id: str) -> None:
    address = SensorAddress("edinburgh", "waste_bin", sensor_id)
    assert parse_topic(topic_for(address)) == address


def test_council_boundary_length() -> None:
    assert parse_topic(f"civicpulse/{'c' * 64}/waste_bin/x").council == "c" * 64


def test_address_is_frozen() -> None:
    address = SensorAddress("a", "waste_bin", "b")
    with pytest.raises(AttributeError):
        address.council = "c"  # type: ignore[misc]


@pytest.mark.parametrize(
    "topic",
    [
        "",
        "civicpulse",
        "civicpulse/aberdeen/air_quality",
        "civicpulse/aberdeen/air_quality/s1/extra",
        "/civicpulse/aberdeen/air_quality/s1",
        "CivicPulse/aberdeen/air_quality/s1",
        "other/aberdeen/air_quality/s1",
        "civicpulse//air_quality/s1",
        "civicpulse/Aberdeen/air_quality/s1",
        "civicpulse/_aberdeen/air_quality/s1",
        "civicpulse/aber deen/air_quality/s1",
        f"civicpulse/{'c' * 65}/air_quality/s1",
        "civicpulse/aberdeen/air_quality/",
        "civicpulse/aberdeen/air_quality/-s1",
        "civicpulse/aberdeen/air_quality/s 1",
        "civicpulse/aberdeen/air_quality/+",
        "civicpulse/aberdeen/air_quality/#",
        "civicpulse/+/air_quality/s1",
        "civicpulse/aberdeen/Air_Quality/s1",
        f"civicpulse/aberdeen/air_quality/{'x' * 129}",
        "civicpulse/aberdeen/air_quality/s1\n",
    ],
)
def test_bad_topics(topic: str) -> None:
    with pytest.raises(RejectedPayload) as info:
        parse_topic(topic)
    assert info.value.reason is RejectReason.BAD_TOPIC
    assert "\n" not in info.value.detail


def test_unknown_kind() -> None:
    with pytest.raises(RejectedPayload) as info:
        parse_topic("civicpulse/aberdeen/street_light/lamp-1")
    assert info.value.reason is RejectReason.UNKNOWN_KIND
    assert "street_light" in info.value.detail


def test_long_topic_detail_is_capped() -> None:
    with pytest.raises(RejectedPayload) as info:
        parse_topic("civicpulse/" + "a/" * 10_000)
    assert len(info.value.detail) < 400


def test_topic_for() -> None:
    address = SensorAddress("camden", "energy_meter", "meter-17")
    assert topic_for(address) == "civicpulse/camden/energy_meter/meter-17"


@pytest.mark.parametrize(
    "address",
    [
        SensorAddress("camden/x", "energy_meter", "m"),
        SensorAddress("camden", "energy_meter", "m/1"),
        SensorAddress("Camden", "energy_meter", "m"),
        SensorAddress("camden", "no_such_kind", "m"),
    ],
)
def test_topic_for_refuses_unparseable_addresses(address: SensorAddress) -> None:
    with pytest.raises(ValueError, match="cannot build a topic"):
        topic_for(address)


@pytest.mark.parametrize(
    ("text", "expected"),
    [("", None), ("  ", None), ("0/1", (0, 1)), ("1/2", (1, 2)), (" 3/4 ", (3, 4))],
)
def test_parse_partition(text: str, expected: tuple[int, int] | None) -> None:
    assert parse_partition(text) == expected


@pytest.mark.parametrize("text", ["2/2", "-1/2", "0/0", "1", "a/b", "0/2/3", "/2", "1/"])
def test_parse_partition_refuses_what_is_not_i_of_n(text: str) -> None:
    with pytest.raises(ValueError, match="is not 'i/N' with 0 <= i < N"):
        parse_partition(text)


def test_every_topic_has_exactly_one_owner_and_the_split_is_even() -> None:
    topics = [f"civicpulse/c{i % 7}/air_quality/s-{i}".encode() for i in range(3000)]
    topics += [b"civicpulse/bad", b"civicpulse/x/\xff/y", b""]  # malformed ones have one owner too
    for n in (1, 2, 3):
        owners = [[i for i in range(n) if owns_topic(t, (i, n))] for t in topics]
        assert all(len(o) == 1 for o in owners)
        # the owner is CRC-32 mod N, computed here independently of the code
        assert all(o == [zlib.crc32(t) % n] for o, t in zip(owners, topics, strict=True))
        counts = [sum(1 for o in owners if o == [i]) for i in range(n)]
        assert max(counts) - min(counts) < 0.1 * len(topics) / n, counts
