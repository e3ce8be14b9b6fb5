"""Deliberately bad MQTT messages, each labelled with the reject reason ingest must give it."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sensors.errors import RejectReason
from sensors.reading import Sample
from sensors.topics import SensorAddress, topic_for
from simulator.fleet import KIND_PREFIX, PayloadFormat, encode_samples

# Over CIVICPULSE_MAX_PAYLOAD_BYTES (256 KiB: dead-lettered as payload_too_large) and under the
# brokers' packet limit (1 MiB: the connection would be closed, the message never seen).
OVERSIZE = 512 * 1024
_SENTINEL = 12.345678  # a value that appears exactly once in a payload, then is mutated
_SENTINEL_METRIC = {"air_quality": "pm10", "waste_bin": "battery", "energy_meter": "power"}
_IMPOSSIBLE = {
    "air_quality": ("pm2_5", 50000.0),
    "waste_bin": ("fill_level", 250.0),
    "energy_meter": ("power", 5e7),
}
_TEXT_FORMATS = (PayloadFormat.CIVICPULSE_JSON, PayloadFormat.SENML)
_NOT_JSON = (b"pm10=12.3;no2=40.1", b"<reading pm10='12.3'/>", b"OK", b"{pm10: 12.3}")


@dataclass(frozen=True, slots=True)
class BadMessage:
    """A message ingest must dead-letter with ``expected_reason``; ``label`` names the fault."""

    topic: str
    payload: bytes
    expected_reason: RejectReason
    label: str


@dataclass(slots=True)
class _Ctx:
    rng: random.Random
    start: datetime
    pool: Sequence[SensorAddress]
    round: int  # how many times the cycle of faults has come round

    def address(self) -> SensorAddress:
        return self.pool[self.rng.randrange(len(self.pool))]

    def fmt(self) -> PayloadFormat:
        return _TEXT_FORMATS[self.round % len(_TEXT_FORMATS)]

    def time(self) -> datetime:
        return self.start - timedelta(seconds=self.rng.uniform(0.0, 60.0))

    def sample(self, metric: str, value: float, time: datetime | None = None) -> Sample:
        return Sample(metric=metric, value=value, time=time or self.time())


def _encode(a: SensorAddress, fmt: PayloadFormat, *samples: Sample) -> bytes:
    return encode_samples(fmt, a.sensor_id, samples)


def _sentinel_payload(c: _Ctx, fmt: PayloadFormat) -> tuple[SensorAddress, bytes, str]:
    a = c.address()
    metric = _SENTINEL_METRIC[a.kind]
    payload = _encode(a, fmt, c.sample(metric, _SENTINEL))
    if payload.count(repr(_SENTINEL).encode()) != 1 or payload.count(f'"{metric}"'.encode()) != 1:
        raise RuntimeError(f"cannot locate the value to corrupt in {payload!r}")
    return a, payload, metric


def _replace_value(
    new: bytes, fmt: PayloadFormat | None = None
) -> Callable[[_Ctx], tuple[str, bytes]]:
    def make(c: _Ctx) -> tuple[str, bytes]:
        a, payload, _ = _sentinel_payload(c, fmt or c.fmt())
        return topic_for(a), payload.replace(repr(_SENTINEL).encode(), new)

    return make


def _valid(c: _Ctx) -> tuple[SensorAddress, bytes]:
    a, payload, _ = _sentinel_payload(c, c.fmt())
    return a, payload


def _not_json(c: _Ctx) -> tuple[str, bytes]:
    return topic_for(c.address()), _NOT_JSON[c.round % len(_NOT_JSON)]


def _truncated(c: _Ctx) -> tuple[str, bytes]:
    a, payload = _valid(c)
    return topic_for(a), payload[: c.rng.randrange(1, len(payload) - 1)]


def _unknown_kind(c: _Ctx) -> tuple[str, bytes]:
    a, payload = _valid(c)
    return f"civicpulse/{a.council}/toaster/{a.sensor_id}", payload


def _unknown_metric(c: _Ctx) -> tuple[str, bytes]:
    a, payload, metric = _sentinel_payload(c, c.fmt())
    return topic_for(a), payload.replace(f'"{metric}"'.encode(), b'"radon"')


def _impossible(c: _Ctx) -> tuple[str, bytes]:
    a = c.address()
    metric, value = _IMPOSSIBLE[a.kind]
    return topic_for(a), _encode(a, c.fmt(), c.sample(metric, value))


def _at(delta: timedelta) -> Callable[[_Ctx], tuple[str, bytes]]:
    def make(c: _Ctx) -> tuple[str, bytes]:
        a = c.address()
        when = c.start + delta
        return topic_for(a), _encode(a, c.fmt(), c.sample(_SENTINEL_METRIC[a.kind], 10.0, when))

    return make


def _oversize(c: _Ctx) -> tuple[str, bytes]:
    a, payload = _valid(c)
    return topic_for(a), payload + b" " * OVERSIZE  # still valid JSON, just too big


def _must_understand(c: _Ctx) -> tuple[str, bytes]:
    a, payload, _ = _sentinel_payload(c, PayloadFormat.SENML)
    pack = json.loads(payload)
    pack[-1]["calibrated_"] = True  # RFC 8428 section 4.4: unknown labels ending in '_' must fail
    return topic_for(a), json.dumps(pack, separators=(",", ":")).encode()


def _invalid_utf8(c: _Ctx) -> tuple[str, bytes]:
    a, payload, metric = _sentinel_payload(c, c.fmt())
    return topic_for(a), payload.replace(metric.encode(), metric.encode()[:2] + b"\xff\xfe")


def _bad_topic(c: _Ctx) -> tuple[str, bytes]:
    a, payload = _valid(c)
    topics = (
        f"civicpulse/{a.council}/{a.kind}",
        f"civicpulse/{a.council}/{a.kind}/{a.sensor_id}/extra",
        f"civicpulse/{a.council.upper()}/{a.kind}/{a.sensor_id}",
        f"civicpulse/{a.council}/{a.kind}/bad id",
        f"civicpulse//{a.kind}/{a.sensor_id}",
    )
    return topics[c.round % len(topics)], payload


# (label, expected reason, builder) in the order bad_messages cycles through them.
BAD_KINDS: tuple[tuple[str, RejectReason, Callable[[_Ctx], tuple[str, bytes]]], ...] = (
    ("not_json", RejectReason.MALFORMED_JSON, _not_json),
    ("truncated_json", RejectReason.MALFORMED_JSON, _truncated),
    (
        "value_as_string",
        RejectReason.WRONG_TYPE,
        _replace_value(b'"12.345678"', PayloadFormat.CIVICPULSE_JSON),
    ),
    (
        "value_as_object",
        RejectReason.WRONG_TYPE,
        _replace_value(b'{"v":12.3}', PayloadFormat.CIVICPULSE_JSON),
    ),
    ("nan_literal", RejectReason.NON_FINITE_VALUE, _replace_value(b"NaN")),
    ("infinity_literal", RejectReason.NON_FINITE_VALUE, _replace_value(b"Infinity")),
    ("unknown_kind", RejectReason.UNKNOWN_KIND, _unknown_kind),
    ("unknown_metric", RejectReason.UNKNOWN_METRIC, _unknown_metric),
    ("impossible_value", RejectReason.OUT_OF_RANGE, _impossible),
    ("time_future", RejectReason.TIME_OUT_OF_RANGE, _at(timedelta(days=2))),
    ("time_past", RejectReason.TIME_OUT_OF_RANGE, _at(timedelta(days=-60))),
    ("payload_512kib", RejectReason.PAYLOAD_TOO_LARGE, _oversize),
    ("senml_must_understand", RejectReason.SENML_MUST_UNDERSTAND, _must_understand),
    ("invalid_utf8", RejectReason.INVALID_UTF8, _invalid_utf8),
    ("bad_topic", RejectReason.BAD_TOPIC, _bad_topic),
)


def bad_messages(
    seed: int, n: int, start: datetime, address_pool: Sequence[SensorAddress]
) -> Iterator[BadMessage]:
    """``n`` bad messages cycling through :data:`BAD_KINDS`, deterministic for ``seed``.

    Times are near ``start`` (within the minute before it) except the time faults, which are
    2 days after and 60 days before it: pass the wall-clock receive time as ``start``.
    An empty ``address_pool`` uses one made-up sensor of each kind in Aberdeen.
    """
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("start must be timezone-aware")
    pool = list(address_pool) or [
        SensorAddress("aberdeen", kind, f"{prefix}-0000") for kind, prefix in KIND_PREFIX.items()
    ]
    ctx = _Ctx(random.Random(f"civicpulse-bad/{seed}"), start, pool, 0)
    for i in range(n):
        ctx.round = i // len(BAD_KINDS)
        label, reason, build = BAD_KINDS[i % len(BAD_KINDS)]
        topic, payload = build(ctx)
        yield BadMessage(topic, payload, reason, label)
