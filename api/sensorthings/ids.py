"""Deterministic ``@iot.id``s: hashed natural keys, and reversible Observation ids.

Every entity but Observations: the first 52 bits of MD5(``"<prefix>:<natural key>"``) plus 1,
a positive integer below 2**53 (exact in JavaScript), the same in Python and in SQL.
Observations: ``ms << 22 | h``, with ``ms`` the milliseconds since 2000-01-01T00:00Z of the
reading's time and ``h`` 22 bits of MD5(``"<sensor_id>/<metric>"``): decoding gives a 1 ms time
window and the hash, an index range scan on ``readings (time)``. See docs/api.md.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Final

from psycopg import sql

EPOCH: Final = datetime(2000, 1, 1, tzinfo=UTC)
EPOCH_SECONDS: Final = 946_684_800
HASH_BITS: Final = 22
MAX_OBSERVATION_ID: Final = (1 << 63) - 1


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


def stream_hash(sensor_id: str, metric: str) -> int:
    """The 22-bit datastream hash carried in an Observation id."""
    return int(_md5(f"{sensor_id}/{metric}")[:6], 16) >> 2


def stream_hash_sql(sensor_id: sql.Composable, metric: sql.Composable) -> sql.Composed:
    return sql.SQL("((('x' || substr(md5({} || '/' || {}), 1, 6))::bit(24)::int) >> 2)").format(
        sensor_id, metric
    )


def observation_id(sensor_id: str, metric: str, time: datetime) -> int:
    """The id of the reading ``(sensor_id, metric, time)``."""
    ms = (time - EPOCH) // timedelta(milliseconds=1)
    return (ms << HASH_BITS) | stream_hash(sensor_id, metric)


def observation_id_sql(
    sensor_id: sql.Composable, metric: sql.Composable, time: sql.Composable
) -> sql.Composed:
    ms = sql.SQL("floor((extract(epoch FROM {}) - {}) * 1000)::bigint").format(
        time, sql.Literal(EPOCH_SECONDS)
    )
    return sql.SQL("(({} << {}) | {})").format(
        ms, sql.Literal(HASH_BITS), stream_hash_sql(sensor_id, metric)
    )


def decode_observation_id(oid: int) -> tuple[datetime, datetime, int] | None:
    """``(from, to, hash)``: the reading's time lies in [from, to); None if not an id."""
    if oid < 0 or oid > MAX_OBSERVATION_ID:
        return None
    start = EPOCH + timedelta(milliseconds=oid >> HASH_BITS)
    return start, start + timedelta(milliseconds=1), oid & ((1 << HASH_BITS) - 1)
