"""The bridge's Kafka producer: settings that decide its cost per record."""

from __future__ import annotations

from kafka.record import util


def test_kafka_python_checksums_record_batches_in_c() -> None:
    # Without the crc32c package kafka-python falls back to a pure-Python CRC-32C that cost
    # ~0.9 ms per 11 KB record on the 2-core box: the bridge's largest cost on 50-reading packs.
    assert util.crc32c_c is not None, "install the crc32c package (a civicpulse dependency)"
    assert util.calc_crc32c(memoryview(b"123456789")) == 0xE3069283  # the CRC-32C check value
