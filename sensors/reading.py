"""The canonical reading: the one shape every hop after ingest trusts, and its wire codec."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec


class Reading(msgspec.Struct, frozen=True, kw_only=True):
    """One measurement of one metric by one sensor, units normalised, times UTC-aware.

    The natural key is ``(sensor_id, metric, time)``: stores upsert on it, so replays
    never duplicate a row.
    """

    sensor_id: str
    council: str
    kind: str
    metric: str
    value: float
    unit: str
    time: datetime
    received_at: datetime

    @property
    def key(self) -> tuple[str, str, datetime]:
        """The natural key used for idempotent storage."""
        return (self.sensor_id, self.metric, self.time)


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Reading)
_pack_decoder = msgspec.json.Decoder(list[Reading])


def encode_reading(reading: Reading) -> bytes:
    """Encode a reading for the Kafka ``readings`` topic (JSON, RFC 3339 times)."""
    return _encoder.encode(reading)


def decode_reading(data: bytes) -> Reading:
    """Decode a reading written by :func:`encode_reading`; times come back UTC-aware."""
    reading = _decoder.decode(data)
    if reading.time.tzinfo is None or reading.received_at.tzinfo is None:
        raise ValueError("canonical readings carry timezone-aware times")
    return reading


def pack_encoded(values: Sequence[bytes]) -> bytes:
    """One ``readings``-topic record for several encoded readings of one sensor: a JSON array.

    A record per MQTT message rather than per reading: the stream workers' cost is mostly
    per Kafka record, so a 6-reading message costs one record, not six."""
    return values[0] if len(values) == 1 else b"[" + b",".join(values) + b"]"


def decode_record(data: bytes) -> list[Reading]:
    """The readings of one ``readings``-topic record: one reading (an object) or a pack (an
    array, :func:`pack_encoded`); raises like :func:`decode_reading` if any is not canonical."""
    if data.lstrip()[:1] != b"[":
        return [decode_reading(data)]
    readings = _pack_decoder.decode(data)
    if not readings:
        raise ValueError("a readings pack holds at least one reading")
    for reading in readings:
        if reading.time.tzinfo is None or reading.received_at.tzinfo is None:
            raise ValueError("canonical readings carry timezone-aware times")
    return readings


def utc_from_epoch(seconds: float) -> datetime:
    """Unix seconds (float) to an aware UTC datetime rounded to the microsecond."""
    micros = round(seconds * 1_000_000)
    return datetime.fromtimestamp(micros // 1_000_000, tz=UTC).replace(
        microsecond=micros % 1_000_000
    )


class Sample(msgspec.Struct, frozen=True, kw_only=True):
    """What a device measured, before any codec: used by encoders and the simulator's truth.

    ``unit`` ``None`` means the catalogue's canonical unit.
    """

    metric: str
    value: float | bool
    time: datetime
    unit: str | None = None
