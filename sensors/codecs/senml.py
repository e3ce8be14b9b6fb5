"""SenML JSON (RFC 8428): resolve packs (section 4.6), map records to readings, encode packs."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Final

import orjson

from sensors.catalogue import KINDS, Metric
from sensors.errors import RejectedPayload, RejectedRecord, RejectReason
from sensors.reading import Reading, Sample
from sensors.topics import SENSOR_ID_PATTERN, SensorAddress
from sensors.units import conversion_for
from sensors.validation import (
    DEFAULT_LIMITS,
    Limits,
    make_reading,
    shown,
    time_from_epoch,
    type_name,
)

# RFC 8428 section 4.5.3: resolved times below 2**28 are relative to "now".
RELATIVE_TIME_LIMIT: Final = 2**28
# RFC 8428 section 4.5.1: the concatenated name's character set.
NAME_PATTERN: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9\-:./_]*")
# RFC 9100: bver is a feature bitmap. Bits 0-3 are always 0b1010 (= version 10); feature
# code 4 is "Secondary Units" (RFC 8798), so the smallest version allowing them is 26.
BASE_VERSION: Final = 10
SECONDARY_UNITS_FEATURE: Final = 1 << 4
SECONDARY_UNITS_VERSION: Final = BASE_VERSION | SECONDARY_UNITS_FEATURE
_UNDERSTOOD_FEATURES: Final = 0b11111
# RFC 8798 table 2: secondary unit names (usable only with the Secondary Units feature).
SECONDARY_UNITS: Final = frozenset(
    {
        "ms", "min", "h", "MHz", "kW", "kVA", "kvar", "Ah", "Wh", "kWh", "varh", "kvarh",
        "kVAh", "Wh/km", "KiB", "kB", "Mbit/s", "B/s", "MB/s", "mV", "mA", "dBm", "ug/m3",
        "mm/h", "m/h", "ppm", "/100", "/1000", "hPa", "mm", "cm", "km", "km/h",
    }
)  # fmt: skip
# SenML unit -> the name in sensors.units: SenML "%" and "/" are 0..1 ratios (RFC 8428
# section 12.1), "/100" is percent (RFC 8798). Anything else is not a unit we convert.
_UNITS: Final = {
    "%": "ratio", "/": "ratio", "/100": "/100", "%EL": "%EL", "%RH": "%RH", "Cel": "Cel",
    "K": "K", "W": "W", "kW": "kW", "J": "J", "Wh": "Wh", "kWh": "kWh", "kg/m3": "kg/m3",
    "ug/m3": "ug/m3",
}  # fmt: skip
METRIC_ALIASES: Final = {
    "pm25": "pm2_5", "PM2.5": "pm2_5", "P2": "pm2_5", "P1": "pm10",
    "relativeHumidity": "humidity",
}  # fmt: skip
_BASE64URL: Final = re.compile(r"[A-Za-z0-9_-]*")
_VALUE_LABELS: Final = ("v", "vs", "vb", "vd")


@dataclass(frozen=True, slots=True, kw_only=True)
class ResolvedRecord:
    """A SenML record with every base field applied and an absolute time (RFC 8428 4.6)."""

    name: str
    unit: str | None = None
    value: float | None = None
    string_value: str | None = None
    bool_value: bool | None = None
    data_value: str | None = None
    sum: float | None = None
    time: float
    update_time: float | None = None
    version: int | None = None  # present only when the pack's version is not 10
    index: int = field(default=0, compare=False)  # position in the pack as sent


def _invalid(index: int, detail: str) -> RejectedPayload:
    return RejectedPayload(RejectReason.SENML_INVALID, f"record {index}: {detail}")


def _number(record: dict[str, object], label: str, index: int) -> float:
    raw = record[label]
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise _invalid(index, f"{label!r} must be a number, got {type_name(raw)}")
    try:
        number = float(raw)
    except OverflowError as exc:
        raise _invalid(index, f"{label!r} {shown(raw)} is too large") from exc
    if not math.isfinite(number):
        raise RejectedPayload(
            RejectReason.NON_FINITE_VALUE, f"record {index}: {label!r} is {number!r}"
        )
    return number


def _string(record: dict[str, object], label: str, index: int) -> str:
    raw = record[label]
    if not isinstance(raw, str):
        raise _invalid(index, f"{label!r} must be a string, got {type_name(raw)}")
    return raw


def _version(record: dict[str, object], index: int) -> int:
    raw = _number(record, "bver", index)
    if not raw.is_integer() or raw < 1:
        raise _invalid(index, f"'bver' must be a positive integer, got {raw!r}")
    version = int(raw)
    if version > BASE_VERSION and (
        version & ~_UNDERSTOOD_FEATURES or version & 0b1111 != BASE_VERSION
    ):
        raise _invalid(index, f"SenML version {version} uses features civicpulse does not know")
    return version


def _secondary_allowed(version: int | None) -> bool:
    return (
        version is not None and version > BASE_VERSION and bool(version & SECONDARY_UNITS_FEATURE)
    )


def resolve(pack: object, now: float) -> list[ResolvedRecord]:
    """Resolve a decoded SenML JSON pack; relative times count from ``now`` (Unix seconds).

    Records come back in chronological order (stable), as RFC 8428 section 4.6 requires.
    Raises ``RejectedPayload`` for the first record that cannot be resolved.
    """
    resolved, rejected = resolve_each(pack, now)
    if rejected:
        first = rejected[0]
        raise RejectedPayload(RejectReason(first.reason), first.detail)
    return resolved


def _pack_level(pack: object) -> list[object]:
    """The pack as a list; a pack that is no array, or uses must-understand labels, is refused
    whole (RFC 8428 section 4.4: such a pack cannot be processed correctly)."""
    if not isinstance(pack, list):
        raise RejectedPayload(
            RejectReason.SENML_INVALID, f"a SenML pack is an array, got {type_name(pack)}"
        )
    for index, record in enumerate(pack):
        if isinstance(record, dict):
            must_understand = [label for label in record if label.endswith("_")]
            if must_understand:
                raise RejectedPayload(
                    RejectReason.SENML_MUST_UNDERSTAND,
                    f"record {index}: must-understand label {shown(must_understand[0])} is not "
                    "supported",
                )
    return pack


def resolve_each(pack: object, now: float) -> tuple[list[ResolvedRecord], list[RejectedRecord]]:
    """Resolve a pack record by record: the resolved records (chronological) and the rejected.

    Base fields (``bn``, ``bt``, ``bu``, ``bv``, ``bs``, ``bver``) apply to every later record
    (RFC 8428 section 4), so a bad one rejects the whole pack (``RejectedPayload``); a record
    whose own fields are bad is rejected alone, with its index in the pack as sent.
    """
    records = _pack_level(pack)
    base_name, base_time, base_unit = "", 0.0, None
    base_value: float | None = None
    base_sum: float | None = None
    version: int | None = None
    resolved: list[ResolvedRecord] = []
    rejected: list[RejectedRecord] = []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            error = _invalid(index, f"a record is an object, got {type_name(record)}")
            rejected.append(RejectedRecord.of(index, error, _record_bytes(record)))
            continue
        if "bver" in record:
            version = _version(record, index)
        if "bn" in record:
            base_name = _string(record, "bn", index)
        if "bt" in record:
            base_time = _number(record, "bt", index)
        if "bu" in record:
            base_unit = _string(record, "bu", index)
        if "bv" in record:
            base_value = _number(record, "bv", index)
        if "bs" in record:
            base_sum = _number(record, "bs", index)
        base = _Base(base_name, base_time, base_unit, base_value, base_sum, version)
        try:
            resolved.append(_resolve_record(record, index, base, now))
        except RejectedPayload as exc:
            rejected.append(RejectedRecord.of(index, exc, _record_bytes(record)))
    resolved.sort(key=lambda r: r.time)
    return resolved, rejected


@dataclass(frozen=True, slots=True)
class _Base:
    name: str
    time: float
    unit: str | None
    value: float | None
    sum: float | None
    version: int | None


def _record_bytes(record: object) -> bytes:
    """A record as JSON, as it stood in the pack (before base fields were applied)."""
    try:
        return orjson.dumps(record)
    except (TypeError, orjson.JSONEncodeError):
        return repr(record).encode("utf-8", "replace")


def _resolve_record(
    record: dict[str, object], index: int, base: _Base, now: float
) -> ResolvedRecord:
    """One record with the base fields in force applied; raises for its own bad fields."""
    name = base.name + (_string(record, "n", index) if "n" in record else "")
    if NAME_PATTERN.fullmatch(name) is None:
        raise _invalid(index, f"name {shown(name)} is empty or has characters SenML forbids")
    unit = _string(record, "u", index) if "u" in record else base.unit
    if unit in SECONDARY_UNITS and not _secondary_allowed(base.version):
        raise _invalid(
            index,
            f"secondary unit {unit!r} needs a pack declaring the Secondary Units feature "
            f'("bver": {SECONDARY_UNITS_VERSION}, RFC 9100), got bver {base.version}',
        )
    present = [label for label in _VALUE_LABELS if label in record]
    if len(present) > 1 or (not present and "s" not in record):
        raise _invalid(index, f"needs exactly one of v, vs, vb, vd (or a sum), has {present}")
    value: float | None = None
    if "v" in record:
        value = (base.value or 0.0) + _number(record, "v", index)
    string_value = _string(record, "vs", index) if "vs" in record else None
    bool_value = record.get("vb")
    if bool_value is not None and not isinstance(bool_value, bool):
        raise _invalid(index, f"'vb' must be a boolean, got {type_name(bool_value)}")
    data_value = _string(record, "vd", index) if "vd" in record else None
    if data_value is not None and _BASE64URL.fullmatch(data_value) is None:
        raise _invalid(index, "'vd' must be unpadded base64url")
    total: float | None = None
    if "s" in record or base.sum is not None:
        total = (base.sum or 0.0) + (_number(record, "s", index) if "s" in record else 0.0)
    time = base.time + (_number(record, "t", index) if "t" in record else 0.0)
    if time < RELATIVE_TIME_LIMIT:
        time += now
    return ResolvedRecord(
        name=name,
        unit=unit,
        value=value,
        string_value=string_value,
        bool_value=bool_value,
        data_value=data_value,
        sum=total,
        time=time,
        update_time=_number(record, "ut", index) if "ut" in record else None,
        version=base.version if base.version not in (None, BASE_VERSION) else None,
        index=index,
    )


def _metric_and_prefix(name: str) -> tuple[str, str]:
    cut = max(name.rfind(":"), name.rfind("/")) + 1
    return name[cut:], name[:cut]


def _names_sensor(prefix: str, sensor_id: str) -> bool:
    """Whether a name prefix ends with the whole segment ``sensor_id`` and a separator."""
    head = prefix[:-1]
    return head == sensor_id or (head.endswith(sensor_id) and head[-len(sensor_id) - 1] in ":/")


def _reading(
    record: ResolvedRecord, address: SensorAddress, received_at: datetime, limits: Limits
) -> Reading:
    metric, prefix = _metric_and_prefix(record.name)
    if prefix and not _names_sensor(prefix, address.sensor_id):
        raise RejectedPayload(
            RejectReason.SENSOR_MISMATCH,
            f"name {shown(record.name)} does not name sensor {address.sensor_id!r} from the topic",
        )
    if not metric:
        raise RejectedPayload(
            RejectReason.MISSING_FIELD, f"name {shown(record.name)} has no metric after the prefix"
        )
    metric = METRIC_ALIASES.get(metric, metric)
    unit: str | None = None
    value: object
    if record.bool_value is not None:
        value = record.bool_value  # a flag: any (base) unit is meaningless here
    elif record.value is not None:
        value = record.value
        if record.unit is not None:
            unit = _UNITS.get(record.unit)
            if unit is None:
                raise RejectedPayload(
                    RejectReason.UNKNOWN_UNIT,
                    f"{metric}: SenML unit {shown(record.unit)} is not one civicpulse converts "
                    f"({', '.join(_UNITS)})",
                )
    elif record.string_value is not None or record.data_value is not None:
        label = "vs" if record.string_value is not None else "vd"
        raise RejectedPayload(
            RejectReason.WRONG_TYPE, f"{metric}: takes v or vb, got a {label} value"
        )
    else:
        raise RejectedPayload(
            RejectReason.MISSING_FIELD, f"{metric}: has only a sum; civicpulse needs v or vb"
        )
    time = time_from_epoch(record.time)
    return make_reading(address, metric, value, unit, time, received_at, limits)


def decode(
    obj: object,
    address: SensorAddress,
    received_at: datetime,
    limits: Limits = DEFAULT_LIMITS,
) -> list[Reading]:
    """Decode a parsed SenML JSON pack into canonical readings; raise ``RejectedPayload``."""
    readings, rejected = decode_each(obj, address, received_at, limits)
    if rejected:
        first = min(rejected, key=lambda r: r.index)
        raise RejectedPayload(RejectReason(first.reason), first.detail)
    return readings


def decode_each(
    obj: object,
    address: SensorAddress,
    received_at: datetime,
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[list[Reading], list[RejectedRecord]]:
    """Decode a pack record by record: the readings, and each rejected record with its index.

    Raises ``RejectedPayload`` only for what spoils the whole pack (see :func:`resolve_each`).
    """
    records, rejected = resolve_each(obj, received_at.timestamp())
    raw = obj if isinstance(obj, list) else []
    readings = []
    for record in records:
        try:
            readings.append(_reading(record, address, received_at, limits))
        except RejectedPayload as exc:
            where = f"record {record.index}: "
            error = RejectedPayload(
                exc.reason, exc.detail if exc.detail.startswith(where) else where + exc.detail
            )
            rejected.append(
                RejectedRecord.of(record.index, error, _record_bytes(raw[record.index]))
            )
    rejected.sort(key=lambda r: r.index)
    return readings, rejected


def _canonical_metric(name: str) -> Metric:
    for kind in KINDS.values():
        metric = kind.metric(name)
        if metric is not None:
            return metric
    raise ValueError(f"no kind in the catalogue measures {name!r}")


# canonical unit -> (secondary unit form, primary unit form), each (SenML unit, scale).
_SENML_FORMS: Final = {
    "ug/m3": (("ug/m3", 1.0), ("kg/m3", 1e-9)),
    "kWh": (("kWh", 1.0), ("J", 3.6e6)),
    "%": (("/100", 1.0), ("/", 0.01)),
    "Cel": (("Cel", 1.0), ("Cel", 1.0)),
    "%RH": (("%RH", 1.0), ("%RH", 1.0)),
    "W": (("W", 1.0), ("W", 1.0)),
}


def encode_pack(
    sensor_id: str, samples: Sequence[Sample], *, secondary_units: bool = True
) -> bytes:
    """Encode samples as a SenML JSON pack named ``urn:dev:civicpulse:{sensor_id}:``.

    With ``secondary_units`` the pack uses RFC 8798 units (``ug/m3``, ``kWh``, ``/100``) and
    declares ``"bver": 26``; without, values are converted to primary units (kg/m3, J, /).
    """
    if SENSOR_ID_PATTERN.fullmatch(sensor_id) is None:
        raise ValueError(f"invalid sensor id {sensor_id!r}")
    if not samples:
        raise ValueError("a SenML pack needs at least one sample")
    start = samples[0].time
    records: list[dict[str, object]] = []
    uses_secondary = False
    for sample in samples:
        metric = _canonical_metric(sample.metric)
        record: dict[str, object] = {"n": metric.name}
        offset = (sample.time - start).total_seconds()
        if offset:
            record["t"] = offset
        if metric.is_flag:
            if sample.value not in (True, False):
                raise ValueError(f"flag {metric.name} needs a boolean or 0/1, got {sample.value}")
            record["vb"] = bool(sample.value)
        else:
            value = float(sample.value)
            if sample.unit is not None:
                conversion = conversion_for(sample.unit, metric.unit)
                if conversion is None:
                    raise ValueError(f"cannot convert {sample.unit!r} to {metric.unit!r}")
                value = conversion.apply(value)
            secondary, primary = _SENML_FORMS[metric.unit]
            unit, scale = secondary if secondary_units else primary
            uses_secondary = uses_secondary or unit in SECONDARY_UNITS
            record["u"] = unit
            record["v"] = value * scale if scale != 1.0 else value
        records.append(record)
    head: dict[str, object] = {"bn": f"urn:dev:civicpulse:{sensor_id}:", "bt": start.timestamp()}
    if uses_secondary:
        head["bver"] = SECONDARY_UNITS_VERSION
    records[0] = head | records[0]
    return orjson.dumps(records)
