"""Aggregates as SensorThings MultiDatastreams: served values equal numpy over the seed rows.

Expectations come from the seed readings (numpy) and the documented id layout (docs/api.md,
"Ids"), with datastream numbers read from ``datastream_numbers`` as the database owner.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import psycopg
import pytest

from rules.daqi import daqi_at
from tests.api.conftest import ApiSeed
from tests.api.opendata_fixtures import (  # noqa: F401  (fixtures)
    SPAN,
    OpenDataSeed,
    opendata_db,
    opendata_seed,
    opendata_server,
)

pytestmark = pytest.mark.integration

ROOT = "/v1.1"
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
WIDTH = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "1d": timedelta(days=1)}
DURATION = {"15m": "PT15M", "1h": "PT1H", "1d": "P1D"}
CODE = {"15m": 0, "1h": 1, "1d": 2}
FUNCTIONS = ["min", "max", "mean", "count"]


def sid(prefix: str, key: str) -> int:
    return int(hashlib.md5(f"{prefix}:{key}".encode()).hexdigest()[:13], 16) + 1


def agg_id(resolution: str, start: datetime, number: int) -> int:
    index = (start - EPOCH) // WIDTH[resolution]
    return 1 << 52 | CODE[resolution] << 50 | index << 20 | number


def daqi_id(council: str, site: str, start: datetime) -> int:
    h = int(hashlib.md5(f"site:{council}/{site}".encode()).hexdigest()[:8], 16) >> 3
    return 1 << 52 | 3 << 50 | ((start - EPOCH) // timedelta(hours=1)) << 29 | h


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def get(client: httpx.Client, url: str, status: int = 200, **params: Any) -> Any:
    r = client.get(url, params=params or None)
    assert r.status_code == status, r.text
    return r.json()


def follow(client: httpx.Client, url: str, **params: Any) -> list[dict[str, Any]]:
    body = get(client, url, **params)
    out = list(body["value"])
    while "@iot.nextLink" in body:
        body = get(client, body["@iot.nextLink"])
        out += body["value"]
    return out


def truth(
    values: Iterable[tuple[datetime, float]], width: timedelta
) -> dict[datetime, tuple[float, float, float, int]]:
    groups: dict[datetime, list[float]] = defaultdict(list)
    for t, v in values:
        groups[EPOCH + ((t - EPOCH) // width) * width].append(v)
    return {
        k: (float(np.min(v)), float(np.max(v)), float(np.mean(np.array(v))), len(v))
        for k, v in sorted(groups.items())
    }


@pytest.fixture(scope="module")
def numbers(seeded_db: str) -> dict[tuple[str, str], int]:
    with psycopg.connect(seeded_db) as conn:
        rows = conn.execute("SELECT sensor_id, metric, number FROM datastream_numbers").fetchall()
    return {(s, m): n for s, m, n in rows}


def test_root_advertises_multidatastreams_intervals_and_functions(api_client: httpx.Client) -> None:
    body = get(api_client, ROOT)
    assert "MultiDatastreams" in [v["name"] for v in body["value"]]
    settings = body["serverSettings"]
    assert (
        "http://www.opengis.net/spec/iot_sensing/1.1/req/multi-datastream"
        in settings["conformance"]
    )
    assert settings["aggregation"]["intervals"] == ["PT15M", "PT1H", "P1D"]
    assert settings["aggregation"]["functions"] == FUNCTIONS


def test_one_multidatastream_per_datastream_and_interval(
    api_client: httpx.Client, api_seed: ApiSeed
) -> None:
    mds = follow(api_client, f"{ROOT}/MultiDatastreams", **{"$filter": "properties/metric ne null"})
    want = {(s.sensor_id, m, r) for s in api_seed.sensors for m in s.metrics for r in WIDTH}
    got = {(m["properties"]["aggregateFor"], m["properties"]["resolution"]) for m in mds}
    assert got == {(f"/Datastreams({sid('datastream', f'{s}/{m}')})", r) for s, m, r in want}
    for m in mds:
        p = m["properties"]
        assert p["aggregateFunctions"] == FUNCTIONS
        assert p["aggregateInterval"] == DURATION[p["resolution"]]
        assert p["aggregateSource"] == api_client.base_url.join(f"{ROOT}{p['aggregateFor']}")
        assert len(m["multiObservationDataTypes"]) == len(m["unitOfMeasurements"]) == 4
        assert m["observationType"].endswith("OM_ComplexObservation")


def test_multidatastream_links_source_thing_and_component_properties(
    api_client: httpx.Client,
) -> None:
    did = sid("datastream", "abd-air-1/no2")
    mds = get(api_client, f"{ROOT}/Datastreams({did})/MultiDatastreams")["value"]
    assert sorted(m["properties"]["resolution"] for m in mds) == ["15m", "1d", "1h"]
    one = next(m for m in mds if m["properties"]["resolution"] == "1h")
    assert one["@iot.id"] == sid("multidatastream", "abd-air-1/no2/1h")
    source = get(api_client, one["properties"]["aggregateSource"])
    assert source["@iot.id"] == did
    assert get(api_client, one["Thing@iot.navigationLink"])["name"] == "abd-air-1"
    props = get(api_client, one["ObservedProperties@iot.navigationLink"])["value"]
    assert [p["name"] for p in props] == [f"no2 {f}" for f in FUNCTIONS]
    units = one["unitOfMeasurements"]
    assert [u["symbol"] for u in units] == ["ug/m3", "ug/m3", "ug/m3", "{readings}"]
    things = get(
        api_client,
        f"{ROOT}/Things({sid('thing', 'abd-air-1')})",
        **{"$expand": "MultiDatastreams($select=id)"},
    )
    assert len(things["MultiDatastreams"]) >= 9


@pytest.mark.parametrize("resolution", list(WIDTH))
@pytest.mark.parametrize(("sensor", "metric"), [("abd-air-2", "pm2_5"), ("dnd-nrg-1", "power")])
def test_aggregate_observations_equal_numpy_over_the_seed(
    api_client: httpx.Client,
    api_seed: ApiSeed,
    numbers: dict[tuple[str, str], int],
    sensor: str,
    metric: str,
    resolution: str,
) -> None:
    mid = sid("multidatastream", f"{sensor}/{metric}/{resolution}")
    got = follow(api_client, f"{ROOT}/MultiDatastreams({mid})/Observations", **{"$top": "7"})
    want = truth(((r.time, r.value) for r in api_seed.of(sensor, metric)), WIDTH[resolution])
    assert len(got) == len(want)
    for obs, (start, values) in zip(got, want.items(), strict=True):
        end = start + WIDTH[resolution]
        assert obs["phenomenonTime"] == f"{iso(start)}/{iso(end)}"
        assert obs["resultTime"] == iso(end)
        assert obs["@iot.id"] == agg_id(resolution, start, numbers[(sensor, metric)])
        assert obs["@iot.id"] < 2**53
        assert np.allclose(obs["result"][:3], values[:3], rtol=0, atol=1e-9)
        assert obs["result"][3] == values[3]
        assert obs["MultiDatastream@iot.navigationLink"].endswith(f"/MultiDatastreams({mid})")
    one = get(api_client, got[len(got) // 2]["@iot.selfLink"])
    assert one == got[len(got) // 2]


def test_filter_order_top_skip_count_on_aggregate_observations(
    api_client: httpx.Client, api_seed: ApiSeed
) -> None:
    mid = sid("multidatastream", "dnd-air-1/no2/1h")
    url = f"{ROOT}/MultiDatastreams({mid})/Observations"
    hourly = truth(((r.time, r.value) for r in api_seed.of("dnd-air-1", "no2")), WIDTH["1h"])
    starts = list(hourly)
    t0, t1 = starts[5], starts[20]
    flt = f"phenomenonTime ge {iso(t0)} and phenomenonTime lt {iso(t1 + timedelta(hours=1))}"
    body = get(api_client, url, **{"$filter": flt, "$count": "true", "$top": "4", "$skip": "2"})
    assert body["@iot.count"] == 16
    assert [o["phenomenonTime"][:20] for o in body["value"]] == [iso(t) for t in starts[7:11]]
    assert "%24skip=6" in body["@iot.nextLink"]
    desc = get(api_client, url, **{"$filter": flt, "$orderby": "phenomenonTime desc", "$top": "2"})
    assert [o["phenomenonTime"][:20] for o in desc["value"]] == [iso(starts[20]), iso(starts[19])]
    arr = get(api_client, url, **{"$resultFormat": "dataArray", "$select": "result", "$top": "3"})
    assert arr["value"][0]["components"] == ["result"]
    assert arr["value"][0]["dataArray"][0][0][3] == hourly[starts[0]][3]
    get(api_client, url, 501, **{"$filter": "result gt 3"})
    get(api_client, url, 501, **{"$expand": "MultiDatastream"})
    get(api_client, f"{ROOT}/MultiDatastreams", 501, **{"$expand": "Observations"})
    get(api_client, f"{ROOT}/MultiDatastreams(1)/Observations", 404)


def _pooled(seed: OpenDataSeed, council: str, site: str) -> dict[str, list[tuple[datetime, float]]]:
    ids = {s.sensor_id for s in seed.sensors if s.council == council and s.site == site}
    out: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for r in seed.readings:
        if r.sensor_id in ids and r.metric in ("pm2_5", "pm10", "no2", "o3", "so2"):
            out[r.metric].append((r.time, r.value))
    return out


def test_daqi_multidatastream_equals_rules_daqi_over_the_raw_samples(
    opendata_server: str,  # noqa: F811
    opendata_seed: OpenDataSeed,  # noqa: F811
) -> None:
    council, site = "aberdeen", "Union Street"
    with httpx.Client(base_url=opendata_server, timeout=30) as client:
        mid = sid("multidatastream", f"daqi:{council}/{site}")
        mds = get(client, f"{ROOT}/MultiDatastreams({mid})")
        assert mds["properties"]["aggregateFunctions"] == ["index", "band"]
        assert mds["properties"]["sensors"] == ["od-aq-1", "od-aq-2"]
        got = follow(client, f"{ROOT}/MultiDatastreams({mid})/Observations", **{"$top": "10"})
        one = get(client, got[3]["@iot.selfLink"])
    samples = _pooled(opendata_seed, council, site)
    first = (opendata_seed.end - SPAN).replace(minute=0, second=0, microsecond=0)
    expected = {}
    for k in range(-2, 60):
        h = first + k * timedelta(hours=1)
        result = daqi_at(samples, h + timedelta(hours=1), 150)
        if result.site_index is not None:
            expected[h] = [result.site_index, result.band]
    served = {datetime.fromisoformat(o["phenomenonTime"].split("/")[0]): o["result"] for o in got}
    assert served and all(expected[h] == v for h, v in served.items())
    assert len(served) > 20
    assert one == got[3] and one["@iot.id"] == daqi_id(
        council, site, datetime.fromisoformat(got[3]["phenomenonTime"].split("/")[0])
    )
