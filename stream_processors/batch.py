"""Pure batch preparation shared by every stream engine: decode, set poison aside, dedupe."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import msgspec

from sensors.reading import Reading, decode_record

# Most readings per database transaction. A batch's rollup and aggregate upkeep costs about
# the same whatever its size (it is per sensor and metric touched), so under load bigger
# batches cost less per reading: on the 2-core box, the pipeline alone stored the bench's
# 6-reading load at 10,036 readings/s in batches of 2,000 and 18,505/s in batches of 8,000.
# Light load still commits small batches at once (the engines' time limits).
DEFAULT_BATCH_READINGS = 10_000


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
    """Decode ``readings``-topic record values into readings; the first of equal natural keys
    wins. A record holds one reading or a pack of one sensor's (``sensors.reading``)."""
    return next(prepare_batches(values, max_readings=None))


def prepare_batches(
    values: Iterable[bytes | Reading], max_readings: int | None
) -> Iterator[PreparedBatch]:
    """:func:`prepare_batch` in batches of at most ``max_readings`` (a pack is never split,
    so a batch may exceed it by one pack's readings less one); always yields at least one.

    A value may also be a :class:`Reading` already (an engine storing in the process that
    decoded it, see ``sensors.intake.route_in_process``): it is taken as it is. A record that
    does not decode, or whose pack holds one non-canonical reading, is poison as a whole.
    """
    batch = PreparedBatch()
    seen: set[tuple[str, str, object]] = set()
    for raw in values:
        if isinstance(raw, Reading):
            readings = [raw]
        else:
            try:
                readings = decode_record(raw)
            except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
                batch.poison.append(PoisonRecord(bytes(raw), f"bad_canonical_record: {exc}"))
                continue
        if max_readings is not None and len(batch.readings) >= max_readings:
            yield batch
            batch, seen = PreparedBatch(), set()
        for reading in readings:
            key = reading.key
            if key in seen:
                batch.duplicates_in_batch += 1
                continue
            seen.add(key)
            batch.readings.append(reading)
    yield batch
