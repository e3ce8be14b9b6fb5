"""Deterministic ``@iot.id``s below 2**53: hashed natural keys, and numbered Observation ids.

Every entity but Observations: the first 52 bits of MD5(``"<prefix>:<natural key>"``) plus 1,
the same in Python and in SQL. Observations carry the datastream's small number
(``datastream_numbers``, sql/041) and the reading's second since 2000-01-01T00:00Z:
``s << 20 | n``; an aggregate (a MultiDatastream's Observation) sets bit 52 and carries its
resolution, interval index and number. Decoding gives an index probe. See docs/api.md.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from psycopg import sql

EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)
EPOCH_SECONDS: Final = 946_684_800
NUMBER_BITS: Final = 20  # datastream numbers 1 … 2**20 - 1 (sql/041)
MAX_NUMBER: Final = (1 << NUMBER_BITS) - 1
SECOND_BITS: Final = 32  # seconds since 2000: until 2136-02-07
AGGREGATE_FLAG: Final = 1 << 52
INDEX_BITS: Final = 30  # interval index of an aggregate since 2000
SITE_BITS: Final = 29  # DAQI: the site's hash (see docs/api.md: hashed, not numbered)
HOUR_BITS: Final = 21  # DAQI: hours since 2000 (until 2239)
#: Resolution codes of aggregate ids (3 is the DAQI series).
RESOLUTION_CODES: Final = {"15m": 0, "1h": 1, "1d": 2}
DAQI_CODE: Final = 3
MAX_ID: Final = (1 << 53) - 1


def _md5(text: str) -> str:
    """MD5 as a naming hash (not security): PostgreSQL's md5() gives the same digits."""
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def entity_id(prefix: str, key: str) -> int:
    """The id of the entity whose natural key is ``key`` (``prefix`` names its set)."""
    return int(_md5(f"{prefix}:{key}")[:13], 16) + 1


def entity_id_sql(prefix: str, key: sql.Composable) -> sql.Composed:
    """The same id computed by PostgreSQL from the SQL expression ``key`` (text)."""
    return sql.SQL("(('x' || substr(md5({} || {}), 1, 13))::bit(52)::bigint + 1)").format(
        sql.Literal(f"{prefix}:"), key
    )


def observation_id(number: int, time: datetime) -> int:
    """The id of the reading at ``time`` of the datastream numbered ``number``."""
    return ((time - EPOCH) // timedelta(seconds=1)) << NUMBER_BITS | number


def observation_id_sql(number: sql.Composable, time: sql.Composable) -> sql.Composed:
    seconds = sql.SQL("floor(extract(epoch FROM {}) - {})::bigint").format(
        time, sql.Literal(EPOCH_SECONDS)
    )
    return sql.SQL("(({} << {}) | {})").format(seconds, sql.Literal(NUMBER_BITS), number)


def decode_observation_id(oid: int) -> tuple[datetime, datetime, int] | None:
    """``(from, to, number)`` of a reading's id: its time lies in [from, to); else None."""
    if oid < 0 or oid >= AGGREGATE_FLAG or not oid & MAX_NUMBER:
        return None
    start = EPOCH + timedelta(seconds=oid >> NUMBER_BITS)
    return start, start + timedelta(seconds=1), oid & MAX_NUMBER


def site_hash(council: str, site: str) -> int:
    """The 29-bit hash of a DAQI site carried in its Observations' ids."""
    return int(_md5(f"site:{council}/{site}")[:8], 16) >> (32 - SITE_BITS)


@dataclass(frozen=True, slots=True)
class AggregateId:
    """A decoded aggregate Observation id: resolution code, interval index, number or hash."""

    code: int
    index: int
    key: int  # datastream number (code 0-2) or site hash (DAQI)


def aggregate_id(code: int, index: int, key: int) -> int:
    """The id of interval ``index`` (since 2000, in the resolution's width) of a series."""
    if code == DAQI_CODE:
        return AGGREGATE_FLAG | code << 50 | index << SITE_BITS | key
    return AGGREGATE_FLAG | code << 50 | index << NUMBER_BITS | key


def decode_aggregate_id(oid: int) -> AggregateId | None:
    """The parts of an aggregate Observation id, or None if ``oid`` is not one."""
    if not AGGREGATE_FLAG <= oid <= MAX_ID:
        return None
    code = (oid >> 50) & 3
    if code == DAQI_CODE:
        hours = (oid >> SITE_BITS) & ((1 << HOUR_BITS) - 1)
        return AggregateId(code, hours, oid & ((1 << SITE_BITS) - 1))
    return AggregateId(code, (oid >> NUMBER_BITS) & ((1 << INDEX_BITS) - 1), oid & MAX_NUMBER)
