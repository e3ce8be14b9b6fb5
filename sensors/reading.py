"""The canonical reading: the one shape every hop after ingest trusts, and its wire codec."""

from __future__ import annotations

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


def encode_reading(reading: Reading) -> bytes:
    """Encode a reading for the Kafka ``readings`` topic (JSON, RFC 3339 times)."""
    return _encoder.encode(reading)


def decode_reading(data: bytes) -> Reading:
    """Decode a reading written by :func:`encode_reading`; times come back UTC-aware."""
    reading = _decoder.decode(data)
    if reading.time.tzinfo is None or reading.received_at.tzinfo is None:
        raise ValueError("canonical readings carry timezone-aware times")
    return reading


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
