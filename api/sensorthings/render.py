"""Rows to SensorThings JSON, dataArray, CSV and GeoJSON (pure)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from psycopg.types.range import Range

from api.sensorthings.ids import entity_id
from api.sensorthings.model import EntitySet

DATA_ARRAY_COMPONENTS = ("id", "phenomenonTime", "resultTime", "result")


def jsonable(value: Any) -> Any:
    """Times as ISO 8601 in UTC with ``Z``; intervals as ``start/end``."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, Range):
        if value.isempty or value.lower is None:
            return None
        return f"{jsonable(value.lower)}/{jsonable(value.upper)}"
    return value


def props_of(es: EntitySet, select: Sequence[str] | None) -> list[str]:
    """The properties to output (``$select`` or all), in the model's order."""
    if select is None:
        return list(es.props)
    return [p for p in es.props if p in select]


def entity(
    es: EntitySet,
    row: Mapping[str, Any],
    root: str,
    select: Sequence[str] | None,
    expanded: Mapping[str, Any],
) -> dict[str, Any]:
    """One entity's JSON: ``@iot.id``, ``@iot.selfLink``, properties, links, expansions."""
    out: dict[str, Any] = {}
    self_link = f"{root}/{es.name}({row['p:id']})"
    if select is None or "id" in select:
        out["@iot.id"] = row["p:id"]
        out["@iot.selfLink"] = self_link
    for name in props_of(es, select):
        if name != "id":
            out[name] = jsonable(row[f"p:{name}"])
    for nav in es.navs:
        if nav in expanded:
            out.update(expanded[nav])
        elif select is None or nav in select:
            out[f"{nav}@iot.navigationLink"] = f"{self_link}/{nav}"
    return out


def data_array(
    rows: Sequence[Mapping[str, Any]], root: str, select: Sequence[str] | None
) -> list[dict[str, Any]]:
    """§13.1: Observations grouped per Datastream, each a list of component values."""
    components = [c for c in (select or DATA_ARRAY_COMPONENTS) if c in DATA_ARRAY_COMPONENTS]
    if not components:
        components = list(DATA_ARRAY_COMPONENTS)
    groups: dict[int, list[list[Any]]] = {}
    for row in rows:
        ds = entity_id("datastream", f"{row['k:sensor_id']}/{row['k:metric']}")
        groups.setdefault(ds, []).append([jsonable(row[f"p:{c}"]) for c in components])
    return [
        {
            "Datastream@iot.navigationLink": f"{root}/Datastreams({ds})",
            "components": components,
            "dataArray@iot.count": len(values),
            "dataArray": values,
        }
        for ds, values in groups.items()
    ]


def _cell(value: Any) -> str:
    value = jsonable(value)
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def csv_text(es: EntitySet, rows: Sequence[Mapping[str, Any]], select: Sequence[str] | None) -> str:
    """One line per entity, one column per selected property (objects as JSON)."""
    names = props_of(es, select)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(["@iot.id" if n == "id" else n for n in names])
    for row in rows:
        writer.writerow([_cell(row[f"p:{n}"]) for n in names])
    return buf.getvalue()


def _geometry(value: Mapping[str, Any]) -> Any:
    for v in value.values():
        if isinstance(v, dict) and v.get("type") == "Point" and "coordinates" in v:
            return v
    for v in value.values():
        items = v if isinstance(v, list) else [v] if isinstance(v, dict) else []
        for item in items:
            if isinstance(item, dict):
                found = _geometry(item)
                if found is not None:
                    return found
    return None


def feature_collection(entities: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """GeoJSON: a Feature per entity, its geometry its own or its first expanded entity's."""
    features = []
    for ent in entities:
        geometry = _geometry(ent)
        props = {
            k: v
            for k, v in ent.items()
            if not (isinstance(v, dict) and v is geometry) and not isinstance(v, list)
        }
        features.append(
            {"type": "Feature", "id": ent.get("@iot.id"), "geometry": geometry, "properties": props}
        )
    return {"type": "FeatureCollection", "features": features}
