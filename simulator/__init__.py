"""Fleet simulator: deterministic sensor messages, bad messages, recordings, MQTT publisher."""

from __future__ import annotations

from sensors.mqtt_url import BrokerUrl
from simulator.air import AirParams
from simulator.bad import BAD_KINDS, BadMessage, bad_messages
from simulator.bins import BinParams
from simulator.energy import MeterParams
from simulator.fleet import Emission, Fleet, PayloadFormat, SensorSpec, encode_samples
from simulator.publisher import PublishError, PublishStats, TokenBucket, publish
from simulator.recording import RecordedMessage, read_recording, write_recording

__all__ = [
    "BAD_KINDS",
    "AirParams",
    "BadMessage",
    "BinParams",
    "BrokerUrl",
    "Emission",
    "Fleet",
    "MeterParams",
    "PayloadFormat",
    "PublishError",
    "PublishStats",
    "RecordedMessage",
    "SensorSpec",
    "TokenBucket",
    "bad_messages",
    "encode_samples",
    "publish",
    "read_recording",
    "write_recording",
]
