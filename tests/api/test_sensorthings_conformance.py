"""SensorThings API 1.1 (read-only) conformance against a real server on a seeded database.

Every expectation is computed from the seed rows (``api_seed``) in plain Python, ids with
hashlib straight from the documented scheme (docs/api.md), never from the API's own modules.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest

from tests.api.conftest import ApiSeed, ServerFactory

pytestmark = pytest.mark.integration

ROOT = "/v1.1"
SETS = [
    "Things",
    "Locations",
    "HistoricalLocations",
    "Sensors",
    "ObservedProperties",
    "Datastreams",
    "MultiDatastreams",
    "Observations",
    "FeaturesOfInterest",
]


def sid(prefix: str, key: str) -> int:
    """The documented id scheme, computed independently."""
    return int(hashlib.md5(f"{prefix}:{key}".encode()).hexdigest()[:13], 16) + 1


_NUMBERS: dict[tuple[str, str], int] = {}


def oid(sensor_id: str, metric: str, t: datetime) -> int:
    """The documented scheme: seconds since 2000 << 20 | the datastream's number (sql/041)."""
    seconds = (t - datetime(2000, 1, 1, tzinfo=UTC)) // timedelta(seconds=1)
    return seconds << 20 | _NUMBERS[(sensor_id, metric)]


@pytest.fixture(autouse=True, scope="module")
def _numbers(seeded_db: str) -> None:
    """Datastream numbers as the owner reads them (the table, not the API)."""
    with psycopg.connect(seeded_db) as conn:
        rows = conn.execute("SELECT sensor_id, metric, number FROM datastream_numbers").fetchall()
    _NUMBERS.update({(s, m): n for s, m, n in rows})


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def get(client: httpx.Client, url: str, status: int = 200, **params: Any) -> Any:
    r = client.get(url, params=params or None)
    assert r.status_code == status, r.text
    return (
        r.json()
        if r.headers.get("content-type", "").startswith(
            ("application/json", "application/geo+json")
        )
        else r.text
    )


def follow(client: httpx.Client, url: str, **params: Any) -> list[dict[str, Any]]:
    """Every entity of a collection, following ``@iot.nextLink`` to the end."""
    body = get(client, url, **params)
    out = list(body["value"])
    while "@iot.nextLink" in body:
        body = get(client, body["@iot.nextLink"])
        out += body["value"]
    return out


def test_seed_is_loaded(seeded_db: str, api_seed: ApiSeed) -> None:
    with psycopg.connect(seeded_db) as conn:
        row = conn.execute("SELECT count(*) FROM readings").fetchone()
    assert row is not None and row[0] == len(api_seed.readings)


def test_service_root_names_sets_and_read_only_conformance(
    api_client: httpx.Client, api_server: str
) -> None:
    body = get(api_client, ROOT)
    assert [v["name"] for v in body["value"]] == SETS
    assert [v["url"] for v in body["value"]] == [f"{api_server}/v1.1/{s}" for s in SETS]
    conformance = body["serverSettings"]["conformance"]
    assert "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel" in conformance
    assert "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data" in conformance
    assert not any("create-update-delete" in c or "mqtt" in c for c in conformance)
    assert "http://www.opengis.net/spec/iot_sensing/1.1/req/multi-datastream" in conformance
    assert body["serverSettings"]["maxTop"] == 10000


def test_links_use_the_public_url_exactly_even_with_a_path(
    api_server_factory: ServerFactory,
) -> None:
    base = api_server_factory(public_url="http://localhost:9/civic")
    with httpx.Client(base_url=base) as client:
        for prefix in ("/civic/v1.1", "/v1.1"):  # behind a proxy that keeps or strips the path
            body = get(client, prefix)
            assert body["value"][0]["url"] == "http://localhost:9/civic/v1.1/Things"
            thing = get(client, f"{prefix}/Things", **{"$top": "1"})["value"][0]
            assert thing["@iot.selfLink"].startswith("http://localhost:9/civic/v1.1/Things(")


def test_things_match_the_seed(api_client: httpx.Client, api_seed: ApiSeed) -> None:
    things = follow(api_client, f"{ROOT}/Things")
    assert sorted(t["name"] for t in things) == sorted(s.sensor_id for s in api_seed.sensors)
    for t in things:
        s = api_seed.sensor(t["name"])
        assert t["@iot.id"] == sid("thing", s.sensor_id)
        assert t["properties"]["council"] == s.council and t["properties"]["site"] == s.site
        assert t["@iot.selfLink"].endswith(f"/v1.1/Things({t['@iot.id']})")
        assert t["Datastreams@iot.navigationLink"] == t["@iot.selfLink"] + "/Datastreams"


def test_every_set_counts_as_the_seed(api_client: httpx.Client, api_seed: ApiSeed) -> None:
    sites = {(s.council, s.site) for s in api_seed.sensors}
    expected = {
        "Things": len(api_seed.sensors),
        "Locations": len(sites),
        "FeaturesOfInterest": len(sites),
        "HistoricalLocations": len(api_seed.sensors),
        "Sensors": 3,  # the catalogue's kinds
        "Datastreams": sum(len(s.metrics) for s in api_seed.sensors),
        "Observations": len(api_seed.readings),
    }
    for name, n in expected.items():
        body = get(api_client, f"{ROOT}/{name}", **{"$count": "true", "$top": "1"})
        assert body["@iot.count"] == n, name
        assert ("@iot.nextLink" in body) == (n > 1)


def test_locations_are_geojson_points_of_the_sites(
    api_client: httpx.Client, api_seed: ApiSeed
) -> None:
    for loc in follow(api_client, f"{ROOT}/Locations"):
        council = loc["properties"]["council"]
        at = [s for s in api_seed.sensors if s.council == council and s.site == loc["name"]]
        assert loc["@iot.id"] == sid("location", f"{council}/{loc['name']}")
        assert loc["location"]["type"] == "Point"
        lon, lat = loc["location"]["coordinates"]
        assert math.isclose(lat, sum(s.latitude for s in at) / len(at))
        assert math.isclose(lon, sum(s.longitude for s in at) / len(at))


def test_entity_property_and_value_addressing(api_client: httpx.Client) -> None:
    tid = sid("thing", "abd-air-1")
    thing = get(api_client, f"{ROOT}/Things({tid})")
    assert thing["name"] == "abd-air-1"
    assert get(api_client, f"{ROOT}/Things({tid})/name") == {"name": "abd-air-1"}
    assert get(api_client, f"{ROOT}/Things({tid})/name/$value") == "abd-air-1"
    ds = get(api_client, f"{ROOT}/Things({tid})/Datastreams")["value"]
    assert sorted(d["name"] for d in ds) == [
        "abd-air-1 no2",
        "abd-air-1 pm2_5",
        "abd-air-1 temperature",
    ]
    locs = get(api_client, f"{ROOT}/Things({tid})/Locations")["value"]
    assert [loc["name"] for loc in locs] == ["Union Street"]


def test_datastream_units_and_navigation(api_client: httpx.Client, api_seed: ApiSeed) -> None:
    did = sid("datastream", "dnd-bin-1/fill_level")
    ds = get(api_client, f"{ROOT}/Datastreams({did})")
    assert ds["unitOfMeasurement"]["symbol"] == "%"
    readings = api_seed.of("dnd-bin-1", "fill_level")
    assert ds["phenomenonTime"] == f"{iso(readings[0].time)}/{iso(readings[-1].time)}"
    assert get(api_client, f"{ROOT}/Datastreams({did})/Thing")["name"] == "dnd-bin-1"
    assert get(api_client, f"{ROOT}/Datastreams({did})/ObservedProperty")["name"] == "fill_level"
    assert get(api_client, f"{ROOT}/Datastreams({did})/Sensor")["name"] == "waste_bin"


def test_observations_paged_to_the_end_equal_the_seed(
    api_client: httpx.Client, api_seed: ApiSeed
) -> None:
    did = sid("datastream", "abd-air-2/pm2_5")
    got = follow(api_client, f"{ROOT}/Datastreams({did})/Observations", **{"$top": "25"})
    want = api_seed.of("abd-air-2", "pm2_5")
    assert [(o["phenomenonTime"], o["result"]) for o in got] == [
        (iso(r.time), r.value) for r in want
    ]
    assert [o["@iot.id"] for o in got] == [oid(r.sensor_id, r.metric, r.time) for r in want]


def test_observation_by_id_and_its_links(api_client: httpx.Client, api_seed: ApiSeed) -> None:
    r = api_seed.of("dnd-air-1", "no2")[10]
    obs = get(api_client, f"{ROOT}/Observations({oid(r.sensor_id, r.metric, r.time)})")
    assert (obs["phenomenonTime"], obs["result"]) == (iso(r.time), r.value)
    assert get(api_client, obs["Datastream@iot.navigationLink"])["name"] == "dnd-air-1 no2"
    assert get(api_client, obs["FeatureOfInterest@iot.navigationLink"])["name"] == "Seagate"
    assert get(api_client, f"{ROOT}/Observations", **{"$filter": f"id eq {obs['@iot.id']}"})[
        "value"
    ] == [obs]


def test_filter_comparison_logic_and_time(api_client: httpx.Client, api_seed: ApiSeed) -> None:
    t0 = api_seed.start + timedelta(days=1)
    f = f"result gt 10 and phenomenonTime ge {iso(t0)} and not (result ge 40)"
    body = get(api_client, f"{ROOT}/Observations", **{"$filter": f, "$count": "true", "$top": "0"})
    assert body["@iot.count"] == sum(
        1 for r in api_seed.readings if 10 < r.value < 40 and r.time >= t0
    )


def test_filter_arithmetic_and_math(api_client: httpx.Client, api_seed: ApiSeed) -> None:
    did = sid("datastream", "abd-nrg-1/power")
    f = "result mul 2 sub 100 gt 3000 or round(result div 100) eq 15"
    got = follow(
        api_client, f"{ROOT}/Datastreams({did})/Observations", **{"$filter": f, "$top": "1000"}
    )
    want = [
        r
        for r in api_seed.of("abd-nrg-1", "power")
        if r.value * 2 - 100 > 3000 or round(r.value / 100) == 15
    ]
    assert len(got) == len(want) and want


def test_filter_string_functions(api_client: httpx.Client, api_seed: ApiSeed) -> None:
    cases = {
        "startswith(name, 'abd')": lambda n: n.startswith("abd"),
        "endswith(name, '-1')": lambda n: n.endswith("-1"),
        "substringof('air', name)": lambda n: "air" in n,
        "contains(toupper(name), 'BIN')": lambda n: "BIN" in n.upper(),
        "length(name) eq 9 and indexof(name, 'nrg') eq 4": lambda n: (
            len(n) == 9 and n.find("nrg") == 4
        ),
        "substring(name, 4, 3) eq 'air' and concat(trim(name), 'x') eq 'dnd-air-1x'": lambda n: (
            n == "dnd-air-1"
        ),
        "tolower(properties/council) eq 'dundee'": lambda n: n.startswith("dnd"),
    }
    for f, pred in cases.items():
        got = sorted(
            t["name"] for t in get(api_client, f"{ROOT}/Things", **{"$filter": f})["value"]
        )
        assert got == sorted(s.sensor_id for s in api_seed.sensors if pred(s.sensor_id)), f


def test_filter_temporal_functions(api_client: httpx.Client, api_seed: ApiSeed) -> None:
    did = sid("datastream", "abd-air-1/no2")
    f = (
        "hour(phenomenonTime) eq 5 or (day(phenomenonTime) eq 4"
        " and minute(phenomenonTime) eq 0 and second(phenomenonTime) eq 7)"
    )
    got = follow(api_client, f"{ROOT}/Datastreams({did})/Observations", **{"$filter": f})
    want = [
        r
        for r in api_seed.of("abd-air-1", "no2")
        if r.time.hour == 5 or (r.time.day == 4 and r.time.minute == 0 and r.time.second == 7)
    ]
    assert [o["phenomenonTime"] for o in got] == [iso(r.time) for r in want]
    f2 = (
        "year(phenomenonTime) eq 2026 and month(phenomenonTime) eq 3"
        " and date(phenomenonTime) eq date(2026-03-03T12:00:00Z) and phenomenonTime lt now()"
    )
    n = get(
        api_client,
        f"{ROOT}/Datastreams({did})/Observations",
        **{"$filter": f2, "$count": "true", "$top": "0"},
    )
    assert n["@iot.count"] == sum(1 for r in api_seed.of("abd-air-1", "no2") if r.time.day == 3)


def test_filter_through_navigation(api_client: httpx.Client, api_seed: ApiSeed) -> None:
    f = (
        "Datastream/Thing/properties/council eq 'dundee'"
        " and Datastream/ObservedProperty/name eq 'pm2_5'"
    )
    body = get(api_client, f"{ROOT}/Observations", **{"$filter": f, "$count": "true", "$top": "1"})
    assert body["@iot.count"] == sum(
        1 for r in api_seed.readings if r.council == "dundee" and r.metric == "pm2_5"
    )
    things = get(
        api_client,
        f"{ROOT}/Things",
        **{"$filter": "Datastreams/ObservedProperty/name eq 'fill_level'"},
    )
    assert sorted(t["name"] for t in things["value"]) == ["abd-bin-1", "dnd-bin-1"]


def test_geo_functions(api_client: httpx.Client, api_seed: ApiSeed) -> None:
    x, y = -2.1, 57.15
    f = f"geo.distance(location, geography'POINT({x} {y})') lt 0.02"
    got = sorted(
        loc["name"] for loc in get(api_client, f"{ROOT}/Locations", **{"$filter": f})["value"]
    )
    want = sorted(
        {s.site for s in api_seed.sensors if math.hypot(s.longitude - x, s.latitude - y) < 0.02}
    )
    assert got == want and want
    box = "POLYGON((-3 56.4, -2.9 56.4, -2.9 56.5, -3 56.5, -3 56.4))"
    got = sorted(
        f["name"]
        for f in get(
            api_client,
            f"{ROOT}/FeaturesOfInterest",
            **{"$filter": f"st_within(feature, geography'{box}')"},
        )["value"]
    )
    assert got == sorted({s.site for s in api_seed.sensors if s.council == "dundee"})


def test_orderby_top_skip_select(api_client: httpx.Client, api_seed: ApiSeed) -> None:
    body = get(
        api_client,
        f"{ROOT}/Observations",
        **{
            "$orderby": "result desc,phenomenonTime",
            "$top": "5",
            "$skip": "3",
            "$select": "result,phenomenonTime",
        },
    )
    want = sorted(api_seed.readings, key=lambda r: (-r.value, r.time))[3:8]
    assert [o["result"] for o in body["value"]] == [r.value for r in want]
    assert all(set(o) == {"result", "phenomenonTime"} for o in body["value"])
    names = get(
        api_client,
        f"{ROOT}/Things",
        **{"$orderby": "properties/council desc,name", "$select": "name"},
    )
    assert [t["name"] for t in names["value"]] == [
        s.sensor_id
        for s in sorted(api_seed.sensors, key=lambda s: (s.council != "dundee", s.sensor_id))
    ]


def test_nested_expand_with_options(api_client: httpx.Client, api_seed: ApiSeed) -> None:
    expand = (
        "Datastreams($filter=ObservedProperty/name eq 'pm2_5';"
        "$expand=Observations($top=2;$orderby=result desc;$count=true)),Locations($select=name)"
    )
    body = get(
        api_client,
        f"{ROOT}/Things",
        **{"$filter": "properties/kind eq 'air_quality'", "$expand": expand},
    )
    assert len(body["value"]) == 3
    for thing in body["value"]:
        (ds,) = thing["Datastreams"]
        obs = ds["Observations"]
        want = sorted(api_seed.of(thing["name"], "pm2_5"), key=lambda r: -r.value)[:2]
        assert [o["result"] for o in obs] == [r.value for r in want]
        assert ds["Observations@iot.count"] == len(api_seed.of(thing["name"], "pm2_5"))
        assert "Observations@iot.nextLink" in ds
        assert thing["Locations"] == [{"name": api_seed.sensor(thing["name"]).site}]


def test_data_array(api_client: httpx.Client, api_seed: ApiSeed) -> None:
    did = sid("datastream", "dnd-nrg-1/power")
    body = get(
        api_client,
        f"{ROOT}/Datastreams({did})/Observations",
        **{"$resultFormat": "dataArray", "$select": "result,phenomenonTime", "$top": "1000"},
    )
    (group,) = body["value"]
    assert group["Datastream@iot.navigationLink"].endswith(f"/Datastreams({did})")
    assert group["components"] == ["result", "phenomenonTime"]  # in $select's order
    assert group["dataArray"] == [[r.value, iso(r.time)] for r in api_seed.of("dnd-nrg-1", "power")]
    assert group["dataArray@iot.count"] == len(group["dataArray"])


def test_csv_and_geojson(api_client: httpx.Client, api_seed: ApiSeed) -> None:
    text = get(api_client, f"{ROOT}/Things", **{"$resultFormat": "CSV", "$select": "id,name"})
    rows = list(csv.DictReader(io.StringIO(text)))
    assert sorted(r["name"] for r in rows) == sorted(s.sensor_id for s in api_seed.sensors)
    assert all(int(r["@iot.id"]) == sid("thing", r["name"]) for r in rows)
    geo = get(api_client, f"{ROOT}/Things", **{"$resultFormat": "GeoJSON", "$expand": "Locations"})
    assert geo["type"] == "FeatureCollection" and len(geo["features"]) == len(api_seed.sensors)
    for feat in geo["features"]:
        s = api_seed.sensor(feat["properties"]["name"])
        assert feat["geometry"]["type"] == "Point"
        assert feat["geometry"]["coordinates"] == pytest.approx([s.longitude, s.latitude])


def test_huge_top_is_served_up_to_max_top(api_client: httpx.Client, api_seed: ApiSeed) -> None:
    # the seed is smaller than maxTop: all of it, no next link (the cap: test_sensorthings_query)
    body = get(api_client, f"{ROOT}/Observations", **{"$top": "99999999", "$select": "result"})
    assert len(body["value"]) == len(api_seed.readings) and "@iot.nextLink" not in body
    get(api_client, f"{ROOT}/Observations", 400, **{"$top": "99999999999999999999999"})


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        (f"{ROOT}/Things", {"$filter": "name eq"}, 400),
        (f"{ROOT}/Things", {"$filter": "name eq 'a' and"}, 400),
        (f"{ROOT}/Things", {"$filter": "nosuch eq 1"}, 400),
        (f"{ROOT}/Observations", {"$filter": "phenomenonTime gt 2026-02-30T00:00:00Z"}, 400),
        (f"{ROOT}/Observations", {"$filter": "phenomenonTime gt 'yesterday'"}, 400),
        (f"{ROOT}/Observations", {"$filter": "result div 0 gt 1"}, 400),
        (f"{ROOT}/Things", {"$top": "-1"}, 400),
        (f"{ROOT}/Things", {"$expand": "Nope"}, 400),
        (f"{ROOT}/Things", {"$search": "x"}, 501),
        (f"{ROOT}/Things(1)/Datastreams/$ref", {}, 501),
        (f"{ROOT}/Things", {"$filter": "st_intersects(location, geography'POINT(1 2)')"}, 501),
        (f"{ROOT}/Nothings", {}, 404),
        (f"{ROOT}/Things(1)", {}, 404),
        (f"{ROOT}/Things(1)/Datastreams", {}, 404),
        (f"{ROOT}/Observations(123)", {}, 404),
        (f"{ROOT}/Things({sid('thing', 'abd-air-1')})/nosuch", {}, 404),
    ],
)
def test_errors_are_the_standards(
    api_client: httpx.Client, path: str, params: dict[str, str], status: int
) -> None:
    r = api_client.get(path, params=params)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["code"] == status and body["type"] == "error"
    assert "\n" not in body["message"] and "Traceback" not in body["message"]


def test_sql_looking_strings_are_only_values(
    api_client: httpx.Client, seeded_db: str, api_seed: ApiSeed
) -> None:
    for text in ["x' or 1=1 --", "'; DROP TABLE readings; --", "abd-air-1' --"]:
        escaped = text.replace("'", "''")
        body = get(api_client, f"{ROOT}/Things", **{"$filter": f"name eq '{escaped}'"})
        assert body["value"] == []
    with psycopg.connect(seeded_db) as conn:
        row = conn.execute("SELECT count(*) FROM readings").fetchone()
    assert row is not None and row[0] == len(api_seed.readings)
