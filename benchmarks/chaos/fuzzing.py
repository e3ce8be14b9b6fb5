"""Front-door fuzzing: Hypothesis strategies for topics and payloads, and their properties."""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import strategies as st

from sensors.catalogue import KINDS
from sensors.codecs import civicpulse_json
from sensors.errors import RejectedPayload, RejectReason
from sensors.intake import route_message
from sensors.reading import Sample, decode_reading, encode_reading
from sensors.topics import SensorAddress, parse_topic, topic_for
from sensors.units import CONVERSIONS
from sensors.validation import Limits

RECEIVED_AT = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
LIMITS = Limits()
REASONS = frozenset(r.value for r in RejectReason) - {RejectReason.INTERNAL_ERROR.value}
TOPIC_REASONS = frozenset({RejectReason.BAD_TOPIC, RejectReason.UNKNOWN_KIND})

_METRICS = sorted({m for k in KINDS.values() for m in k.metrics})
_UNITS = sorted(CONVERSIONS)

# ------------------------------------------------------------------------ strategies

councils = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,12}", fullmatch=True)
sensor_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,20}", fullmatch=True)
kinds = st.sampled_from(sorted(KINDS)) | st.text(min_size=1, max_size=12)


@st.composite
def good_topics(draw: st.DrawFn) -> str:
    """A topic of the civicpulse scheme (the kind is sometimes not in the catalogue)."""
    return f"civicpulse/{draw(councils)}/{draw(kinds)}/{draw(sensor_ids)}"


@st.composite
def catalogue_topics(draw: st.DrawFn) -> str:
    """A valid topic of a catalogue kind."""
    return f"civicpulse/{draw(councils)}/{draw(st.sampled_from(sorted(KINDS)))}/{draw(sensor_ids)}"


any_topics = (
    good_topics()
    | st.text(max_size=80)
    | st.lists(st.text(max_size=12), min_size=0, max_size=6).map("/".join)
    | st.builds(
        lambda t, junk: t + junk, good_topics(), st.sampled_from(["/", "/x", "#", "+", "\x00"])
    )
)
raw_topics = any_topics | st.binary(max_size=60)  # MQTT topic names as bytes, maybe not UTF-8


def _iso(t: datetime, style: int) -> str:
    if style == 0:
        return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if style == 1:
        return t.isoformat()
    return t.strftime("%Y-%m-%dT%H:%M:%S")  # no offset: rejected


times = st.one_of(
    st.builds(
        _iso,
        st.timedeltas(min_value=timedelta(days=-9), max_value=timedelta(minutes=9)).map(
            lambda d: RECEIVED_AT + d
        ),
        st.integers(0, 2),
    ),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.just(RECEIVED_AT.timestamp()),
    st.text(max_size=30),
    st.none(),
    st.booleans(),
)
values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=-10, max_value=1000),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.booleans(),
    st.text(max_size=10),
    st.none(),
    st.lists(st.integers(), max_size=2),
)
metrics = st.sampled_from(_METRICS) | st.text(max_size=12)
units = (
    st.none() | st.sampled_from(_UNITS) | st.sampled_from(["%", "ppm", ""]) | st.text(max_size=6)
)


@st.composite
def reading_items(draw: st.DrawFn) -> dict[str, object]:
    item: dict[str, object] = {}
    for key, strat in (("metric", metrics), ("value", values), ("unit", units), ("time", times)):
        if draw(st.integers(0, 9)) > 0:  # a field is sometimes missing
            item[key] = draw(strat)
    if draw(st.booleans()):
        item[draw(st.text(max_size=6))] = draw(values)
    return item


@st.composite
def valid_items(draw: st.DrawFn, kind: str) -> dict[str, object]:
    """A reading the kind's catalogue accepts (value in range, canonical or no unit, fresh)."""
    metric = KINDS[kind].metrics[draw(st.sampled_from(sorted(KINDS[kind].metrics)))]
    if metric.is_flag:
        value: object = draw(st.booleans() | st.sampled_from([0, 1]))
    else:
        value = draw(st.floats(min_value=metric.low, max_value=metric.high) | st.integers(
            min_value=math.ceil(metric.low), max_value=math.floor(metric.high)))  # fmt: skip
    item: dict[str, object] = {"metric": metric.name, "value": value}
    if draw(st.booleans()):
        item["unit"] = metric.unit
    offset = draw(st.timedeltas(min_value=timedelta(days=-6), max_value=timedelta(minutes=4)))
    item["time"] = _iso(RECEIVED_AT + offset, draw(st.integers(0, 1)))
    return item


def items_for(kind: str) -> st.SearchStrategy[dict[str, object]]:
    """Mostly valid readings of ``kind``, some hostile ones."""
    if kind not in KINDS:
        return reading_items()
    return st.one_of(valid_items(kind), valid_items(kind), valid_items(kind), reading_items())


@st.composite
def civicpulse_objects(draw: st.DrawFn, sensor_id: str, kind: str = "") -> dict[str, object]:
    head: dict[str, object] = {}
    if draw(st.integers(0, 4)) > 0:
        head["v"] = draw(st.sampled_from([1, 1, 1, 1, 1, 2, "1", True, None]))
    if draw(st.integers(0, 3)) > 0:
        head["sensor_id"] = draw(st.sampled_from([sensor_id] * 6 + ["other", 7]))
    if draw(st.booleans()):
        return head | draw(items_for(kind))
    head["readings"] = draw(
        st.lists(items_for(kind) | st.sampled_from([1, "x", None, []]), max_size=8)
    )
    if draw(st.booleans()):
        head["time"] = draw(times)
    return head


senml_keys = st.sampled_from(["bn", "bt", "bu", "bv", "bver", "n", "u", "v", "vb", "vs", "vd",
                              "s", "t", "ut", "x_", "foo"])  # fmt: skip
senml_values = values | times | st.sampled_from(["urn:dev:ow:", "pm10", "ug/m3", "Cel", "/100"])


@st.composite
def senml_packs(draw: st.DrawFn, sensor_id: str) -> list[object]:
    records: list[object] = []
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.integers(0, 15)) == 0:
            records.append(draw(values))
            continue
        record = {k: draw(senml_values) for k in draw(st.lists(senml_keys, max_size=6))}
        if draw(st.booleans()):
            record["n"] = draw(st.sampled_from([*_METRICS, f"{sensor_id}:pm10", "x"]))
            record["v"] = draw(st.floats(min_value=-5, max_value=500))
            record["t"] = draw(st.sampled_from([0, -30, RECEIVED_AT.timestamp(), 1e12]))
        records.append(record)
    return records


def _dump(document: object, nan: bool) -> bytes:
    try:
        return json.dumps(document, allow_nan=nan).encode()
    except (ValueError, TypeError):
        return b"{}"


@st.composite
def messages(draw: st.DrawFn) -> tuple[str | bytes, bytes]:
    """(topic, payload): structured civicpulse JSON / SenML, raw bytes, or a damaged payload."""
    topic = draw(catalogue_topics()) if draw(st.integers(0, 4)) > 0 else draw(raw_topics)
    parts = topic.split("/") if isinstance(topic, str) else []
    sensor_id = parts[-1] if parts else "x"
    kind = parts[2] if len(parts) == 4 else ""
    shape = draw(st.integers(0, 9))
    if shape <= 4:
        payload = _dump(draw(civicpulse_objects(sensor_id, kind)), draw(st.integers(0, 5)) == 0)
    elif shape <= 7:
        payload = _dump(draw(senml_packs(sensor_id)), draw(st.integers(0, 5)) == 0)
    elif shape == 8:
        payload = draw(st.binary(max_size=300))
    else:
        base = _dump(draw(civicpulse_objects(sensor_id, kind)), False)
        cut = draw(st.integers(0, len(base)))
        payload = base[:cut] + draw(st.binary(max_size=4)) + base[cut:]
    return topic, payload


# ------------------------------------------------------------------------ properties


@dataclass
class Tally:
    """What the fuzzed messages became."""

    messages: int = 0
    accepted_readings: int = 0
    messages_with_readings: int = 0
    dead_letters: int = 0
    partial: int = 0
    reasons: Counter[str] = field(default_factory=Counter)
    topics: int = 0
    topics_parsed: int = 0


def check_message(topic: str | bytes, payload: bytes, tally: Tally | None = None) -> None:
    """route_message never raises, never hits a decoder bug, gives every reject a reason code,
    and every reading it accepts round-trips (wire codec, and re-sent as civicpulse JSON)."""
    routed = route_message(topic, payload, RECEIVED_AT, LIMITS)
    assert routed.readings or routed.deadletter is not None, "message silently dropped"
    letter = routed.deadletter
    if letter is not None:
        assert letter.reason in REASONS, f"reason {letter.reason!r}: {letter.detail}"
        assert letter.detail.strip(), "a reject without a detail"
        indexes = [p.index for p in letter.parts]
        assert len(set(indexes)) == len(indexes), f"a record rejected twice: {indexes}"
        for part in letter.parts:
            assert part.reason in REASONS, f"part reason {part.reason!r}: {part.detail}"
            assert part.index >= 0 and part.detail.strip()
    for key, value in routed.readings:
        reading = decode_reading(value)
        assert key == reading.sensor_id.encode()
        assert encode_reading(reading) == value
        assert math.isfinite(reading.value)
        assert reading.time.utcoffset() == timedelta(0)
        again = route_message(
            topic_for(SensorAddress(reading.council, reading.kind, reading.sensor_id)),
            civicpulse_json.encode(
                reading.sensor_id,
                [Sample(metric=reading.metric, value=reading.value, time=reading.time)],
            ),
            RECEIVED_AT,
            LIMITS,
        )
        assert again.deadletter is None, f"re-sent canonical reading rejected: {again.deadletter}"
        (_, back_value), *rest = again.readings
        back = decode_reading(back_value)
        assert not rest
        assert (back.sensor_id, back.metric, back.time, back.value, back.unit) == (
            reading.sensor_id, reading.metric, reading.time, reading.value, reading.unit,
        )  # fmt: skip
    if tally is not None:
        tally.messages += 1
        tally.accepted_readings += len(routed.readings)
        tally.messages_with_readings += bool(routed.readings)
        if letter is not None:
            tally.dead_letters += 1
            tally.partial += bool(letter.parts)
            tally.reasons[letter.reason] += 1


def check_topic(topic: str, tally: Tally | None = None) -> None:
    """parse_topic accepts exactly what topic_for gives back, else rejects with a topic reason."""
    try:
        address = parse_topic(topic)
    except RejectedPayload as exc:
        assert exc.reason in TOPIC_REASONS, exc.reason
        assert exc.detail.strip()
        parsed = False
    else:
        assert topic_for(address) == topic
        parsed = True
    if tally is not None:
        tally.topics += 1
        tally.topics_parsed += parsed
