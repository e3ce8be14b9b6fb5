"""Pure batch preparation shared by every stream engine: decode, set poison aside, dedupe."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import msgspec

from sensors.reading import Reading, decode_reading


@dataclass(frozen=True, slots=True)
class PoisonRecord:
    """A record on the readings topic that is not a canonical reading (never written by us)."""

    raw: bytes
    reason: str


@dataclass(slots=True)
class PreparedBatch:
    """A batch ready for storage: unique readings in arrival order, plus what was set aside."""

    readings: list[Reading] = field(default_factory=list)
    poison: list[PoisonRecord] = field(default_factory=list)
    duplicates_in_batch: int = 0


def prepare_batch(values: Iterable[bytes | Reading]) -> PreparedBatch:
    """Decode Kafka record values into readings; the first of equal natural keys wins.

    A value may also be a :class:`Reading` already (an engine storing in the process that
    decoded it, see ``sensors.intake.route_in_process``): it is taken as it is.
    """
    batch = PreparedBatch()
    seen: set[tuple[str, str, object]] = set()
    for raw in values:
        if isinstance(raw, Reading):
            reading = raw
        else:
            try:
                reading = decode_reading(raw)
            except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
                batch.poison.append(PoisonRecord(bytes(raw), f"bad_canonical_record: {exc}"))
                continue
        key = reading.key
        if key in seen:
            batch.duplicates_in_batch += 1
            continue
        seen.add(key)
        batch.readings.append(reading)
    return batch
