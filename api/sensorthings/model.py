"""The SensorThings entity sets as SQL over the read contract: columns, properties, links."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Literal

from psycopg import sql

from api.sensorthings.aggregation import (
    AGGREGATE_GROUP,
    COMPLEX,
    COUNT_UNIT,
    DAQI_FUNCTIONS,
    DAQI_GROUP,
    DAQI_POLLUTANTS,
    DAQI_TYPES,
    DAQI_UNITS,
    DURATIONS,
    FUNCTION_TYPES,
    FUNCTIONS,
    WIDTHS,
    component_properties,
)
from api.sensorthings.ids import EPOCH, RESOLUTION_CODES, entity_id_sql, observation_id_sql
from sensors.catalogue import KINDS

PropType = Literal["int", "string", "float", "datetime", "json", "geo", "interval"]
Expr = Callable[[sql.Identifier], sql.Composable]

# Canonical catalogue units → UCUM codes (the catalogue's own vocabulary is near-UCUM).
UCUM: Final = {
    "ug/m3": ("microgram per cubic metre", "ug/m3"),
    "Cel": ("degree Celsius", "Cel"),
    "%RH": ("percent relative humidity", "%"),
    "%": ("percent", "%"),
    "kWh": ("kilowatt hour", "kW.h"),
    "W": ("watt", "W"),
    "bool": ("flag (1 true, 0 false)", "1"),
}
UCUM_DEFINITION: Final = "https://ucum.org/ucum"
OM: Final = "http://www.opengis.net/def/observationType/OGC-OM/2.0/"


def col(name: str) -> Expr:
    """A column of the entity's relation."""
    return lambda e: sql.SQL("{}.{}").format(e, sql.Identifier(name))


@dataclass(frozen=True, slots=True)
class Prop:
    """A property: its SQL over the entity alias, its type, and where it may be used."""

    name: str
    expr: Expr
    type: PropType
    filterable: bool = True
    lat: str | None = None  # geo: the latitude and longitude columns
    lon: str | None = None


@dataclass(frozen=True, slots=True)
class Nav:
    """A navigation property: the related set, to one or many, and the join.

    ``keys`` pairs a column of this entity with a column of the related entity (equality on
    all pairs); ``predicate``, when set, replaces the equality: it gets the related alias and
    the SQL values of this entity's ``keys`` columns (in order).
    """

    name: str
    target: str
    many: bool
    keys: tuple[tuple[str, str], ...]
    predicate: Callable[[sql.Identifier, list[sql.Composable]], sql.Composable] | None = None
    external: bool = False  # served outside SQL (a MultiDatastream's Observations)

    def join(self, alias: sql.Identifier, values: list[sql.Composable]) -> sql.Composable:
        """The condition on the related entity ``alias`` for a parent with key ``values``."""
        if self.predicate is not None:
            return self.predicate(alias, values)
        return sql.SQL(" AND ").join(
            sql.SQL("{}.{} = {}").format(alias, sql.Identifier(child), value)
            for (_, child), value in zip(self.keys, values, strict=True)
        )


@dataclass(frozen=True, slots=True)
class EntitySet:
    """One entity set: its relation (SQL), properties, navigation, and default order."""

    name: str
    singular: str
    source: sql.Composable
    props: dict[str, Prop]
    navs: dict[str, Nav]
    order: tuple[str, ...] = ("id",)  # columns: a total order (paging is stable)
    big: bool = False  # a hypertable: counts are bounded, never a full scan
    extra: tuple[str, ...] = field(default=())  # columns kept for links/expansion

    def key_columns(self) -> tuple[str, ...]:
        cols = [c for nav in self.navs.values() for c, _ in nav.keys]
        return tuple(dict.fromkeys(cols))


def constant(value: object) -> sql.Composable:
    """A literal of our own (never user input); ``%`` spelt chr(37): the text holds placeholders."""
    if isinstance(value, str) and "%" in value:
        parts = [sql.Literal(p) for p in value.split("%")]
        return sql.SQL("({})").format(sql.SQL(" || chr(37) || ").join(parts))
    return sql.Literal(value)


def _values(rows: list[tuple[object, ...]], names: tuple[str, ...]) -> sql.Composable:
    """A constant relation from our own catalogue (no user input)."""
    body = sql.SQL(", ").join(
        sql.SQL("({})").format(sql.SQL(", ").join(constant(v) for v in row)) for row in rows
    )
    return sql.SQL("(VALUES {}) AS v({})").format(
        body, sql.SQL(", ").join(sql.Identifier(n) for n in names)
    )


def _metric_rows() -> list[tuple[object, ...]]:
    rows: list[tuple[object, ...]] = []
    for kind in KINDS.values():
        for m in kind.metrics.values():
            name, symbol = UCUM.get(m.unit, (m.unit, m.unit))
            obs = "OM_TruthObservation" if m.is_flag else "OM_Measurement"
            rows.append((kind.name, m.name, m.description, name, symbol, OM + obs))
    return rows


METRICS_SQL: Final = _values(
    _metric_rows(), ("kind", "metric", "description", "unit_name", "unit_symbol", "obs_type")
)
KINDS_SQL: Final = _values(
    [(k.name, k.description, k.expected_interval_s) for k in KINDS.values()],
    ("kind", "description", "interval_s"),
)


def _property_rows() -> list[tuple[object, ...]]:
    """Catalogue metrics (group NULL, order 0), then the aggregate and DAQI components."""
    by_name: dict[str, set[str]] = {}
    for k in KINDS.values():
        for m in k.metrics.values():
            by_name.setdefault(m.name, set()).add(m.description)
    rows: list[tuple[object, ...]] = [
        (name, name, "; ".join(sorted(d)), None, 0) for name, d in sorted(by_name.items())
    ]
    return rows + [tuple(r) for r in component_properties()]


PROPERTIES_SQL: Final = _values(
    _property_rows(), ("metric", "name", "description", "group_key", "ord")
)

# One row per sensor that has readings (the daily rollup is small: sensors x metrics x days).
_SENSORS = sql.SQL(
    "SELECT sensor_id, min(council) AS council, min(kind) AS kind"
    " FROM readings_1d GROUP BY sensor_id"
)
_STREAMS = sql.SQL(
    "SELECT sensor_id, metric, min(council) AS council, min(kind) AS kind"
    " FROM readings_1d GROUP BY sensor_id, metric"
)
_X = sql.Identifier("x")
_SITE_KEY = sql.SQL("x.council || '/' || x.site")

THINGS_SQL: Final = sql.SQL(
    "SELECT {id} AS id, x.* FROM ("
    " SELECT d.sensor_id, d.council, d.kind, coalesce(s.site, d.sensor_id) AS site, s.ward,"
    " coalesce(v.description, d.kind) AS kind_description"
    " FROM ({sensors}) d LEFT JOIN sensor_sites s ON s.sensor_id = d.sensor_id"
    " LEFT JOIN {kinds} ON v.kind = d.kind) x"
).format(id=entity_id_sql("thing", sql.SQL("x.sensor_id")), sensors=_SENSORS, kinds=KINDS_SQL)

_SITES = sql.SQL(
    "SELECT t.council, t.site, avg(l.latitude) AS lat, avg(l.longitude) AS lon,"
    " array_agg(t.sensor_id ORDER BY t.sensor_id) AS sensor_ids"
    " FROM ({things}) t JOIN sensor_locations l ON l.sensor_id = t.sensor_id"
    " GROUP BY t.council, t.site"
).format(things=THINGS_SQL)

LOCATIONS_SQL: Final = sql.SQL("SELECT {id} AS id, x.* FROM ({sites}) x").format(
    id=entity_id_sql("location", _SITE_KEY), sites=_SITES
)
FEATURES_SQL: Final = sql.SQL("SELECT {id} AS id, x.* FROM ({sites}) x").format(
    id=entity_id_sql("feature", _SITE_KEY), sites=_SITES
)
HISTORICAL_SQL: Final = sql.SQL(
    "SELECT {id} AS id, x.* FROM ("
    " SELECT t.sensor_id, t.council, t.site, l.updated_at AS time"
    " FROM ({things}) t JOIN sensor_locations l ON l.sensor_id = t.sensor_id) x"
).format(id=entity_id_sql("historicallocation", sql.SQL("x.sensor_id")), things=THINGS_SQL)
SENSORS_SQL: Final = sql.SQL("SELECT {id} AS id, v.* FROM {kinds}").format(
    id=entity_id_sql("sensor", sql.SQL("v.kind")), kinds=KINDS_SQL
)
OBSERVED_PROPERTIES_SQL: Final = sql.SQL("SELECT {id} AS id, v.* FROM {props}").format(
    id=entity_id_sql("observedproperty", sql.SQL("v.metric")), props=PROPERTIES_SQL
)
DATASTREAMS_SQL: Final = sql.SQL(
    "SELECT {id} AS id, x.* FROM ("
    " SELECT d.sensor_id, d.metric, d.council, d.kind,"
    " coalesce(v.description, d.metric) AS metric_description,"
    " coalesce(v.unit_name, d.metric) AS unit_name, coalesce(v.unit_symbol, '') AS unit_symbol,"
    " coalesce(v.obs_type, {om}) AS obs_type"
    " FROM ({streams}) d LEFT JOIN {metrics} ON v.kind = d.kind AND v.metric = d.metric) x"
).format(
    id=entity_id_sql("datastream", sql.SQL("x.sensor_id || '/' || x.metric")),
    om=sql.Literal(OM + "OM_Measurement"),
    streams=_STREAMS,
    metrics=METRICS_SQL,
)
# Readings of numbered datastreams (sql/041) since 2000, the range of Observation ids.
OBSERVATIONS_SQL: Final = sql.SQL(
    "SELECT r.time, r.sensor_id, r.metric, r.council, r.kind, r.value, n.number"
    " FROM readings r JOIN datastream_numbers n"
    " ON n.sensor_id = r.sensor_id AND n.metric = r.metric"
    " WHERE r.time >= {}"
).format(sql.Literal(EPOCH))


# MultiDatastreams: each Datastream's rollups at 15m, 1h and 1d (where the caller can see
# that rollup), and one DAQI series per air-quality site (its first sensor is the Thing).
_INTERVALS = sql.SQL("(VALUES {}) AS i(resolution, duration, seconds, code)").format(
    sql.SQL(", ").join(
        sql.SQL("({}, {}, {}, {})").format(
            sql.Literal(r),
            sql.Literal(DURATIONS[r]),
            sql.Literal(int(w.total_seconds())),
            sql.Literal(RESOLUTION_CODES[r]),
        )
        for r, w in WIDTHS.items()
    )
)
_HAS_ROLLUP = sql.SQL("CASE i.resolution {} END").format(
    sql.SQL(" ").join(
        sql.SQL(
            "WHEN {} THEN EXISTS (SELECT 1 FROM {} r"
            " WHERE r.sensor_id = d.sensor_id AND r.metric = d.metric)"
        ).format(sql.Literal(r), sql.Identifier(f"readings_{r}"))
        for r in WIDTHS
    )
)
_DAQI_POLLUTANTS = sql.Literal(list(DAQI_POLLUTANTS))
MULTIDATASTREAMS_SQL: Final = sql.SQL(
    "SELECT {id} AS id, x.* FROM ("
    " SELECT d.sensor_id, d.metric, d.council, d.kind, i.resolution, i.duration, i.seconds,"
    " i.code, NULL::text AS site, ARRAY[d.sensor_id] AS sensor_ids,"
    " d.sensor_id || '/' || d.metric || '/' || i.resolution AS mds_key,"
    " d.metric || {agg} AS ops_key, {ds_id} AS source_id,"
    " coalesce(v.description, d.metric) AS metric_description,"
    " coalesce(v.unit_name, d.metric) AS unit_name, coalesce(v.unit_symbol, '') AS unit_symbol"
    " FROM ({streams}) d CROSS JOIN {intervals}"
    " LEFT JOIN {metrics} ON v.kind = d.kind AND v.metric = d.metric"
    " WHERE {has_rollup}"
    " UNION ALL"
    " SELECT min(t.sensor_id), 'daqi', t.council, 'air_quality', '1h', 'PT1H', 3600, 3, t.site,"
    " array_agg(t.sensor_id ORDER BY t.sensor_id), 'daqi:' || t.council || '/' || t.site,"
    " {daqi_group}, NULL::bigint, 'Daily Air Quality Index', 'DAQI', ''"
    " FROM ({things}) t WHERE t.kind = 'air_quality' AND EXISTS (SELECT 1 FROM readings_1d r"
    " WHERE r.sensor_id = t.sensor_id AND r.metric = ANY({pollutants}))"
    " GROUP BY t.council, t.site) x"
).format(
    id=entity_id_sql("multidatastream", sql.SQL("x.mds_key")),
    agg=sql.Literal(AGGREGATE_GROUP),
    ds_id=entity_id_sql("datastream", sql.SQL("d.sensor_id || '/' || d.metric")),
    streams=_STREAMS,
    intervals=_INTERVALS,
    metrics=METRICS_SQL,
    has_rollup=_HAS_ROLLUP,
    daqi_group=sql.Literal(DAQI_GROUP),
    things=THINGS_SQL,
    pollutants=_DAQI_POLLUTANTS,
)


def _mds_time(e: sql.Identifier) -> sql.Composable:
    """First interval start / last interval end of the series (index probes)."""
    probes = [
        sql.SQL(
            "WHEN {r} THEN (SELECT tstzrange(min(a.bucket), max(a.bucket) + {w}, '[)')"
            " FROM {rel} a WHERE a.sensor_id = {e}.sensor_id AND a.metric = {e}.metric)"
        ).format(r=sql.Literal(r), w=sql.Literal(w), rel=sql.Identifier(f"readings_{r}"), e=e)
        for r, w in WIDTHS.items()
    ]
    daqi = sql.SQL(
        "(SELECT tstzrange(min(a.bucket), max(a.bucket) + interval '1 hour', '[)')"
        " FROM readings_1h a WHERE a.sensor_id = ANY({e}.sensor_ids)"
        " AND a.metric = ANY({p}))"
    ).format(e=e, p=_DAQI_POLLUTANTS)
    return sql.SQL("CASE WHEN {}.code = 3 THEN {} ELSE CASE {}.resolution {} END END").format(
        e, daqi, e, sql.SQL(" ").join(probes)
    )


def _mds_units(e: sql.Identifier) -> sql.Composable:
    unit = sql.SQL(
        "jsonb_build_object('name', {e}.unit_name, 'symbol', {e}.unit_symbol, 'definition', {d})"
    ).format(e=e, d=sql.Literal(UCUM_DEFINITION))
    count = sql.Literal(json.dumps(dict(COUNT_UNIT, definition=UCUM_DEFINITION)))
    daqi = sql.Literal(json.dumps([dict(u, definition=UCUM_DEFINITION) for u in DAQI_UNITS]))
    return sql.SQL(
        "CASE WHEN {e}.code = 3 THEN {daqi}::jsonb"
        " ELSE jsonb_build_array({u}, {u}, {u}, {count}::jsonb) END"
    ).format(e=e, daqi=daqi, u=unit, count=count)


def _mds_types(e: sql.Identifier) -> sql.Composable:
    return sql.SQL("CASE WHEN {}.code = 3 THEN {}::jsonb ELSE {}::jsonb END").format(
        e,
        sql.Literal(json.dumps(list(DAQI_TYPES))),
        sql.Literal(json.dumps([FUNCTION_TYPES[f] for f in FUNCTIONS])),
    )


def _mds_properties(e: sql.Identifier) -> sql.Composable:
    """The aggregation properties: source Datastream (FROST's ``aggregateFor`` as well),
    interval and functions; the absolute ``aggregateSource`` is added when rendered."""
    return sql.SQL(
        "jsonb_strip_nulls(jsonb_build_object("
        "'aggregateFor', CASE WHEN {e}.code <> 3 THEN '/Datastreams(' || {e}.source_id || ')' END,"
        " 'aggregateInterval', {e}.duration,"
        " 'aggregateFunctions', CASE WHEN {e}.code = 3 THEN {daqi}::jsonb ELSE {fns}::jsonb END,"
        " 'resolution', {e}.resolution, 'council', {e}.council,"
        " 'metric', CASE WHEN {e}.code <> 3 THEN {e}.metric END, 'site', {e}.site,"
        " 'sensors', CASE WHEN {e}.code = 3 THEN to_jsonb({e}.sensor_ids) END))"
    ).format(
        e=e,
        daqi=sql.Literal(json.dumps(list(DAQI_FUNCTIONS))),
        fns=sql.Literal(json.dumps(list(FUNCTIONS))),
    )


def _json(*pairs: tuple[str, Expr]) -> Expr:
    def build(e: sql.Identifier) -> sql.Composable:
        items = sql.SQL(", ").join(sql.SQL("{}, {}").format(sql.Literal(k), v(e)) for k, v in pairs)
        return sql.SQL("jsonb_strip_nulls(jsonb_build_object({}))").format(items)

    return build


def _point(lat: str, lon: str) -> Expr:
    return lambda e: sql.SQL(
        "jsonb_build_object('type', 'Point', 'coordinates', jsonb_build_array({}.{}, {}.{}))"
    ).format(e, sql.Identifier(lon), e, sql.Identifier(lat))


def _const(value: str) -> Expr:
    return lambda e: constant(value)


def _sql(template: str, *cols: str) -> Expr:
    return lambda e: sql.SQL(template).format(
        *(sql.SQL("{}.{}").format(e, sql.Identifier(c)) for c in cols)
    )


def _props(*props: Prop) -> dict[str, Prop]:
    return {p.name: p for p in props}


_ID = Prop("id", col("id"), "int")


def _stream_time(fn: str) -> Expr:
    return lambda e: sql.SQL(
        "(SELECT {}(r.time) FROM readings r WHERE r.sensor_id = {}.sensor_id"
        " AND r.metric = {}.metric)"
    ).format(sql.SQL(fn), e, e)


def _site_feature_sensors(alias: sql.Identifier, values: list[sql.Composable]) -> sql.Composable:
    return sql.SQL("{}.council = {} AND {} = ANY({}.sensor_ids)").format(
        alias, values[0], values[1], alias
    )


def _feature_observations(alias: sql.Identifier, values: list[sql.Composable]) -> sql.Composable:
    return sql.SQL("{}.council = {} AND {}.sensor_id = ANY({})").format(
        alias, values[0], alias, values[1]
    )


_SITE_DESCRIPTION = _sql("'Site ' || {} || ' (' || {} || ')'", "site", "council")
_SITE_PROPS = _json(("council", col("council")), ("sensors", col("sensor_ids")))

ENTITY_SETS: Final[dict[str, EntitySet]] = {
    s.name: s
    for s in (
        EntitySet(
            "Things",
            "Thing",
            THINGS_SQL,
            _props(
                _ID,
                Prop("name", col("sensor_id"), "string"),
                Prop(
                    "description",
                    _sql("{} || ' ' || {}", "kind_description", "sensor_id"),
                    "string",
                ),
                Prop(
                    "properties",
                    _json(
                        ("council", col("council")),
                        ("kind", col("kind")),
                        ("site", col("site")),
                        ("ward", col("ward")),
                    ),
                    "json",
                ),
            ),
            {
                "Locations": Nav(
                    "Locations", "Locations", True, (("council", "council"), ("site", "site"))
                ),
                "HistoricalLocations": Nav(
                    "HistoricalLocations",
                    "HistoricalLocations",
                    True,
                    (("sensor_id", "sensor_id"),),
                ),
                "Datastreams": Nav(
                    "Datastreams", "Datastreams", True, (("sensor_id", "sensor_id"),)
                ),
                "MultiDatastreams": Nav(
                    "MultiDatastreams", "MultiDatastreams", True, (("sensor_id", "sensor_id"),)
                ),
            },
        ),
        EntitySet(
            "Locations",
            "Location",
            LOCATIONS_SQL,
            _props(
                _ID,
                Prop("name", col("site"), "string"),
                Prop("description", _SITE_DESCRIPTION, "string"),
                Prop("encodingType", _const("application/geo+json"), "string"),
                Prop("location", _point("lat", "lon"), "geo", lat="lat", lon="lon"),
                Prop("properties", _SITE_PROPS, "json"),
            ),
            {
                "Things": Nav("Things", "Things", True, (("council", "council"), ("site", "site"))),
                "HistoricalLocations": Nav(
                    "HistoricalLocations",
                    "HistoricalLocations",
                    True,
                    (("council", "council"), ("site", "site")),
                ),
            },
        ),
        EntitySet(
            "HistoricalLocations",
            "HistoricalLocation",
            HISTORICAL_SQL,
            _props(_ID, Prop("time", col("time"), "datetime")),
            {
                "Thing": Nav("Thing", "Things", False, (("sensor_id", "sensor_id"),)),
                "Locations": Nav(
                    "Locations", "Locations", True, (("council", "council"), ("site", "site"))
                ),
            },
        ),
        EntitySet(
            "Sensors",
            "Sensor",
            SENSORS_SQL,
            _props(
                _ID,
                Prop("name", col("kind"), "string"),
                Prop("description", col("description"), "string"),
                Prop("encodingType", _const("text/plain"), "string"),
                Prop("metadata", col("description"), "string"),
                Prop("properties", _json(("expectedIntervalSeconds", col("interval_s"))), "json"),
            ),
            {
                "Datastreams": Nav("Datastreams", "Datastreams", True, (("kind", "kind"),)),
                "MultiDatastreams": Nav(
                    "MultiDatastreams", "MultiDatastreams", True, (("kind", "kind"),)
                ),
            },
        ),
        EntitySet(
            "ObservedProperties",
            "ObservedProperty",
            OBSERVED_PROPERTIES_SQL,
            _props(
                _ID,
                Prop("name", col("name"), "string"),
                Prop("definition", _sql("'urn:civicpulse:metric:' || {}", "metric"), "string"),
                Prop("description", col("description"), "string"),
            ),
            {
                "Datastreams": Nav("Datastreams", "Datastreams", True, (("metric", "metric"),)),
                "MultiDatastreams": Nav(
                    "MultiDatastreams", "MultiDatastreams", True, (("group_key", "ops_key"),)
                ),
            },
            order=("ord", "id"),
        ),
        EntitySet(
            "Datastreams",
            "Datastream",
            DATASTREAMS_SQL,
            _props(
                _ID,
                Prop("name", _sql("{} || ' ' || {}", "sensor_id", "metric"), "string"),
                Prop(
                    "description",
                    _sql("{} || ' at ' || {}", "metric_description", "sensor_id"),
                    "string",
                ),
                Prop(
                    "unitOfMeasurement",
                    _json(
                        ("name", col("unit_name")),
                        ("symbol", col("unit_symbol")),
                        ("definition", _const(UCUM_DEFINITION)),
                    ),
                    "json",
                ),
                Prop("observationType", col("obs_type"), "string"),
                Prop(
                    "phenomenonTime",
                    lambda e: sql.SQL("tstzrange({}, {}, '[]')").format(
                        _stream_time("min")(e), _stream_time("max")(e)
                    ),
                    "interval",
                    filterable=False,
                ),
                Prop(
                    "properties",
                    _json(("council", col("council")), ("metric", col("metric"))),
                    "json",
                ),
            ),
            {
                "Thing": Nav("Thing", "Things", False, (("sensor_id", "sensor_id"),)),
                "Sensor": Nav("Sensor", "Sensors", False, (("kind", "kind"),)),
                "ObservedProperty": Nav(
                    "ObservedProperty", "ObservedProperties", False, (("metric", "metric"),)
                ),
                "Observations": Nav(
                    "Observations",
                    "Observations",
                    True,
                    (("sensor_id", "sensor_id"), ("metric", "metric")),
                ),
                "MultiDatastreams": Nav(
                    "MultiDatastreams",
                    "MultiDatastreams",
                    True,
                    (("sensor_id", "sensor_id"), ("metric", "metric")),
                ),
            },
        ),
        EntitySet(
            "MultiDatastreams",
            "MultiDatastream",
            MULTIDATASTREAMS_SQL,
            _props(
                _ID,
                Prop(
                    "name",
                    _sql(
                        "CASE WHEN {} = 3 THEN 'DAQI ' || {} || ' (' || {} || ')'"
                        " ELSE {} || ' ' || {} || ' [' || {} || ']' END",
                        "code",
                        "site",
                        "council",
                        "sensor_id",
                        "metric",
                        "duration",
                    ),
                    "string",
                ),
                Prop(
                    "description",
                    _sql(
                        "CASE WHEN {} = 3 THEN 'Hourly Daily Air Quality Index of site '"
                        " || {} || ' (' || {} || ')'"
                        " ELSE {} || ' at ' || {} || ', min, max, mean and count per ' || {} END",
                        "code",
                        "site",
                        "council",
                        "metric_description",
                        "sensor_id",
                        "duration",
                    ),
                    "string",
                ),
                Prop("unitOfMeasurements", _mds_units, "json", filterable=False),
                Prop("observationType", _const(COMPLEX), "string"),
                Prop("multiObservationDataTypes", _mds_types, "json", filterable=False),
                Prop("phenomenonTime", _mds_time, "interval", filterable=False),
                Prop("properties", _mds_properties, "json"),
            ),
            {
                "Thing": Nav("Thing", "Things", False, (("sensor_id", "sensor_id"),)),
                "Sensor": Nav("Sensor", "Sensors", False, (("kind", "kind"),)),
                "ObservedProperties": Nav(
                    "ObservedProperties", "ObservedProperties", True, (("ops_key", "group_key"),)
                ),
                "Observations": Nav(
                    "Observations", "Observations", True, (("mds_key", "mds_key"),), external=True
                ),
            },
        ),
        EntitySet(
            "Observations",
            "Observation",
            OBSERVATIONS_SQL,
            _props(
                Prop(
                    "id",
                    lambda e: observation_id_sql(
                        sql.SQL("{}.number").format(e), sql.SQL("{}.time").format(e)
                    ),
                    "int",
                ),
                Prop("phenomenonTime", col("time"), "datetime"),
                Prop("resultTime", col("time"), "datetime"),
                Prop("result", col("value"), "float"),
            ),
            {
                "Datastream": Nav(
                    "Datastream",
                    "Datastreams",
                    False,
                    (("sensor_id", "sensor_id"), ("metric", "metric")),
                ),
                "FeatureOfInterest": Nav(
                    "FeatureOfInterest",
                    "FeaturesOfInterest",
                    False,
                    (("council", "council"), ("sensor_id", "sensor_ids")),
                    predicate=_site_feature_sensors,
                ),
            },
            order=("time", "sensor_id", "metric"),
            big=True,
        ),
        EntitySet(
            "FeaturesOfInterest",
            "FeatureOfInterest",
            FEATURES_SQL,
            _props(
                _ID,
                Prop("name", col("site"), "string"),
                Prop("description", _SITE_DESCRIPTION, "string"),
                Prop("encodingType", _const("application/geo+json"), "string"),
                Prop("feature", _point("lat", "lon"), "geo", lat="lat", lon="lon"),
                Prop("properties", _SITE_PROPS, "json"),
            ),
            {
                "Observations": Nav(
                    "Observations",
                    "Observations",
                    True,
                    (("council", "council"), ("sensor_ids", "sensor_id")),
                    predicate=_feature_observations,
                )
            },
        ),
    )
}
