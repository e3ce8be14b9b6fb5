"""The sensors as GeoJSON: position, kind, council, status, latest value per metric, DAQI band."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from psycopg import AsyncConnection, sql

from api.opendata.daqi import KIND as AIR_QUALITY
from api.opendata.daqi import current_daqi, floor_hour
from sensors.catalogue import KINDS

# (kind, metric, unit) of the catalogue: which metrics to look up the latest value of.
_CATALOGUE: Final = sql.SQL(", ").join(
    sql.SQL("({}, {}, {})").format(sql.Literal(k.name), sql.Literal(m.name), sql.Literal(m.unit))
    for k in KINDS.values()
    for m in k.metrics.values()
)

# The sensors the session may see, with status and position.
_SENSORS: Final = sql.SQL(
    """
SELECT d.council, d.sensor_id, d.kind, d.site, d.ward, d.latitude, d.longitude, d.last_seen,
       d.seconds_since_seen, d.stale, d.status, d.battery_pct, d.open_alerts, now()
  FROM dash_sensor_status d
 ORDER BY d.council, d.sensor_id
"""
)

# The latest value of each sensor and catalogue metric: the `last` of its newest hourly
# rollup (set-based, one scan of recent buckets, instead of one probe per sensor and metric,
# which the tenant views cannot answer from an index in order). First the last two hours;
# then, for the sensors still missing, the last `_LOOKBACK`.
_LATEST: Final = sql.SQL(
    """
SELECT DISTINCT ON (h.sensor_id, h.metric) h.sensor_id, h.metric, h.last, h.last_time
  FROM readings_1h h
 WHERE h.bucket >= date_trunc('hour', now()) - %(back)s::interval
   AND (%(only)s::text[] IS NULL OR h.sensor_id = ANY (%(only)s::text[]))
   AND (h.kind, h.metric) IN (VALUES {catalogue})
 ORDER BY h.sensor_id, h.metric, h.bucket DESC
"""
).format(
    catalogue=sql.SQL(", ").join(
        sql.SQL("({}, {})").format(sql.Literal(k.name), sql.Literal(m.name))
        for k in KINDS.values()
        for m in k.metrics.values()
    )
)
_LOOKBACK: Final = "7 days"
_UNITS: Final = {(k.name, m.name): m.unit for k in KINDS.values() for m in k.metrics.values()}


async def _latest(
    conn: AsyncConnection[Any], sensors: list[str]
) -> dict[str, list[tuple[str, Any, str | None]]]:
    """sensor id → [(metric, value, time)] of its newest hourly rollups, by metric."""
    found: dict[str, dict[str, tuple[Any, datetime]]] = {}
    missing: list[str] | None = None
    for back in ("1 hour", _LOOKBACK):
        cur = await conn.execute(_LATEST, {"back": back, "only": missing})
        for sensor_id, metric, value, at in await cur.fetchall():
            found.setdefault(sensor_id, {})[metric] = (value, at)
        missing = [s for s in sensors if s not in found]
        if not missing:
            break
    return {
        s: [(metric, value, _iso_us(at)) for metric, (value, at) in sorted(m.items())]
        for s, m in found.items()
    }


def _iso_us(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _feature(
    row: tuple[Any, ...],
    daqi: dict[tuple[str, str], Any],
    latest: dict[str, list[tuple[str, Any, str | None]]],
) -> dict[str, Any]:
    (council, sensor_id, kind, site, ward, lat, lon, last_seen, age, stale, status, battery,
     open_alerts, _now) = row  # fmt: skip
    site_daqi = daqi.get((council, site)) if kind == AIR_QUALITY else None
    props: dict[str, Any] = {
        "sensor_id": sensor_id,
        "council": council,
        "kind": kind,
        "site": site,
        "ward": ward or None,
        "status": status,
        "stale": stale,
        "last_seen": _iso(last_seen),
        "seconds_since_seen": age,
        "battery_pct": battery,
        "open_alerts": open_alerts,
        "latest": {
            metric: {"value": value, "unit": _UNITS.get((kind, metric)), "time": time}
            for metric, value, time in latest.get(sensor_id, [])
        },
        "daqi": None if site_daqi is None else site_daqi.as_json(),
    }
    geometry = None if lat is None or lon is None else {"type": "Point", "coordinates": [lon, lat]}
    return {"type": "Feature", "id": sensor_id, "geometry": geometry, "properties": props}


async def sensors_feature_collection(conn: AsyncConnection[Any]) -> dict[str, Any]:
    """A FeatureCollection of every sensor the session may see, ordered by council and id.

    ``daqi`` (air-quality sensors) is the site's index at the start of the current UTC hour,
    i.e. from the latest complete periods; ``None`` when no pollutant has enough data.
    """
    cur = await conn.execute(_SENSORS)
    rows = await cur.fetchall()
    now: datetime = rows[0][13] if rows else datetime.now(UTC)
    at = floor_hour(now.astimezone(UTC))
    daqi = await current_daqi(conn, at) if any(r[2] == AIR_QUALITY for r in rows) else {}
    latest = await _latest(conn, [r[1] for r in rows]) if rows else {}
    return {
        "type": "FeatureCollection",
        "timeStamp": _iso(now),
        "numberReturned": len(rows),
        "features": [_feature(r, daqi, latest) for r in rows],
    }
