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

# One index probe (the readings primary key) per sensor and catalogue metric of its kind.
_SENSORS: Final = sql.SQL(
    """
SELECT d.council, d.sensor_id, d.kind, d.site, d.ward, d.latitude, d.longitude, d.last_seen,
       d.seconds_since_seen, d.stale, d.status, d.battery_pct, d.open_alerts, now(),
       (SELECT coalesce(jsonb_agg(jsonb_build_array(m.metric, l.value, m.unit,
                                  to_char(l.time AT TIME ZONE 'UTC',
                                          'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
                                  ORDER BY m.metric), '[]'::jsonb)
          FROM (VALUES {catalogue}) AS m (kind, metric, unit)
         CROSS JOIN LATERAL (
               SELECT r.value, r.time FROM readings r
                WHERE r.sensor_id = d.sensor_id AND r.metric = m.metric
                ORDER BY r.time DESC LIMIT 1) l
         WHERE m.kind = d.kind) AS latest
  FROM dash_sensor_status d
 ORDER BY d.council, d.sensor_id
"""
).format(catalogue=_CATALOGUE)


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _feature(row: tuple[Any, ...], daqi: dict[tuple[str, str], Any]) -> dict[str, Any]:
    (council, sensor_id, kind, site, ward, lat, lon, last_seen, age, stale, status, battery,
     open_alerts, _now, latest) = row  # fmt: skip
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
            metric: {"value": value, "unit": unit, "time": time}
            for metric, value, unit, time in latest
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
    return {
        "type": "FeatureCollection",
        "timeStamp": _iso(now),
        "numberReturned": len(rows),
        "features": [_feature(r, daqi) for r in rows],
    }
