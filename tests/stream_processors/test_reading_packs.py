"""Readings-topic records: one reading or a sensor's pack, decoded back to the same readings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest

from ingest.record_batcher import pack_by_partition, partition_of
from sensors.intake import route_message
from sensors.reading import Reading, decode_record, encode_reading, pack_encoded
from sensors.validation import DEFAULT_LIMITS
from stream_processors.batch import prepare_batch, prepare_batches

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "payloads"
T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def _reading(sensor: str, metric: str, minute: int, value: float = 1.5) -> Reading:
    at = T0 + timedelta(minutes=minute)
    return Reading(
        sensor_id=sensor,
        council="aberdeen",
        kind="air_quality",
        metric=metric,
        value=value,
        unit="ug/m3",
        time=at,
        received_at=at + timedelta(seconds=2),
    )


def test_a_pack_decodes_to_its_readings_in_order() -> None:
    readings = [_reading("s1", m, 0, v) for m, v in (("pm10", 4.7), ("pm2_5", 1.97), ("no2", 0))]
    record = pack_encoded([encode_reading(r) for r in readings])
    assert record.startswith(b"[") and msgspec.json.decode(record)[1]["value"] == 1.97
    assert decode_record(record) == readings


def test_a_single_reading_record_stays_an_object_and_decodes() -> None:
    r = _reading("s1", "pm10", 0)
    record = pack_encoded([encode_reading(r)])
    assert record == encode_reading(r) and decode_record(record) == [r]


@pytest.mark.parametrize(
    "record",
    [b"[]", b"[{}]", b"[1, 2]", b'{"sensor_id": "s1"}', b"[not json"],
)
def test_a_broken_record_is_poison_as_a_whole(record: bytes) -> None:
    batch = prepare_batch([record])
    assert batch.readings == [] and [p.raw for p in batch.poison] == [record]


def test_a_pack_with_a_naive_time_is_poison() -> None:
    good = encode_reading(_reading("s1", "pm10", 0))
    naive = good.replace(b'Z"', b'"')  # both times lose their zone
    assert naive != good
    batch = prepare_batch([pack_encoded([good, naive])])
    assert batch.readings == [] and len(batch.poison) == 1
    assert "timezone-aware" in batch.poison[0].reason


@pytest.mark.adapter
def test_what_the_bridge_sends_for_a_senml_pack_is_one_record_the_engines_accept() -> None:
    payload = (FIXTURES / "senml-sds011-5331.json").read_bytes()  # captured 2018-02-01
    received = datetime(2018, 2, 1, 0, 5, tzinfo=UTC)
    routed = route_message(
        "civicpulse/aberdeen/air_quality/sds011-5331", payload, received, DEFAULT_LIMITS
    )
    assert len(routed.readings) > 1
    packs, touched = pack_by_partition([routed.readings], lambda key: partition_of(key, 6))
    assert len(packs) == 1 and touched == [set(packs)]
    batch = prepare_batch(list(map(pack_encoded, packs.values())))
    assert not batch.poison
    assert batch.readings == [msgspec.json.decode(v, type=Reading) for _k, v in routed.readings]


def test_packs_group_messages_by_partition_in_arrival_order() -> None:
    a1, b1, a2, c1 = (
        _reading(s, m, 0) for s, m in (("a", "pm10"), ("b", "pm10"), ("a", "no2"), ("c", "no2"))
    )
    part = {b"a": 0, b"b": 1, b"c": 0}
    messages = [
        [(r.sensor_id.encode(), encode_reading(r)) for r in m] for m in ([a1, b1], [a2], [c1])
    ]
    packs, touched = pack_by_partition(messages, part.__getitem__)
    assert [decode_record(pack_encoded(packs[p])) for p in (0, 1)] == [[a1, a2, c1], [b1]]
    assert touched == [{0, 1}, {0}, {0}]


def test_partition_is_kafkas_default_for_the_sensor_id() -> None:
    # the Java client's partitions for these keys among 1,000 (kafka-python's compatibility test)
    keys = (b"", b"a", b"ab", b"abc", b"123456789", b"\x00 ")
    assert [partition_of(k, 1000) for k in keys] == [681, 524, 434, 107, 566, 742]
    assert {partition_of(f"aq-{i:04d}".encode(), 6) for i in range(200)} == set(range(6))


def test_batches_split_between_packs_and_dedupe_within_each() -> None:
    packs = [
        pack_encoded([encode_reading(_reading(f"s{i}", m, 0)) for m in ("pm10", "pm2_5", "no2")])
        for i in range(10)
    ]
    twin = encode_reading(_reading("s0", "pm10", 0, value=99.0))  # same key as the first
    batches = list(prepare_batches([*packs, twin, b"junk"], max_readings=7))
    sizes = [len(b.readings) for b in batches]
    # a pack is never split: batches close at the first pack boundary at or past 7
    assert sizes == [9, 9, 9, 3 + 1]  # the last pack and the twin
    assert sum(len(b.poison) for b in batches) == 1
    # the twin falls in the last batch, where s0/pm10 is not: the store dedupes across batches
    assert batches[-1].readings[-1].value == 99.0
    whole = prepare_batch([*packs, twin])
    assert len(whole.readings) == 30 and whole.duplicates_in_batch == 1


def test_no_limit_gives_one_batch_even_when_empty() -> None:
    assert [b.readings for b in prepare_batches([], max_readings=None)] == [[]]
    assert [b.readings for b in prepare_batches([], max_readings=5)] == [[]]
