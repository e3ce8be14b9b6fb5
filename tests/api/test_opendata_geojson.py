"""/api/v1/sensors.geojson and the page's HTTP surface on a real server, against the seed."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime

import httpx
import pytest

from rules.daqi import POLLUTANTS, daqi_at
from sensors.catalogue import KINDS
from sensors.reading import Reading
from tests.api.opendata_fixtures import (  # noqa: F401  (fixtures)
    OpenDataSeed,
    opendata_db,
    opendata_seed,
    opendata_server,
)

pytestmark = [pytest.mark.adapter, pytest.mark.integration]


@pytest.fixture(scope="module")
def client(opendata_server: str) -> Iterable[httpx.Client]:  # noqa: F811
    with httpx.Client(base_url=opendata_server, timeout=60) as c:
        yield c


def _latest(seed: OpenDataSeed) -> dict[tuple[str, str], Reading]:
    out: dict[tuple[str, str], Reading] = {}
    for r in seed.readings:  # sorted by sensor, metric, time
        out[(r.sensor_id, r.metric)] = r
    return out


def test_every_seeded_sensor_with_position_latest_values_status_and_daqi(
    client: httpx.Client,
    opendata_seed: OpenDataSeed,  # noqa: F811
) -> None:
    r = client.get("/api/v1/sensors.geojson")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/geo+json"
    body = r.json()
    assert body["type"] == "FeatureCollection"
    features = {f["id"]: f for f in body["features"]}
    assert features.keys() == {s.sensor_id for s in opendata_seed.sensors}
    assert body["numberReturned"] == len(opendata_seed.sensors)
    latest = _latest(opendata_seed)
    at = datetime.fromisoformat(body["timeStamp"]).replace(minute=0, second=0, microsecond=0)
    for s in opendata_seed.sensors:
        f = features[s.sensor_id]
        p = f["properties"]
        if s.location is None:
            assert f["geometry"] is None
        else:
            assert f["geometry"] == {"type": "Point", "coordinates": [s.location[1], s.location[0]]}
        assert (p["sensor_id"], p["council"], p["kind"], p["site"]) == (
            s.sensor_id,
            s.council,
            s.kind,
            s.site,
        )
        assert p["status"] == "ok" and p["stale"] is False
        assert p["latest"].keys() == set(KINDS[s.kind].metrics)
        for metric, got in p["latest"].items():
            want = latest[(s.sensor_id, metric)]
            assert got["value"] == want.value
            assert got["unit"] == want.unit
            assert datetime.fromisoformat(got["time"]) == want.time
        last_seen = max(x.time for (sid, _m), x in latest.items() if sid == s.sensor_id)
        assert datetime.fromisoformat(p["last_seen"]) == last_seen
        if s.kind != "air_quality":
            assert p["daqi"] is None
            continue
        samples: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
        site_ids = {
            x.sensor_id for x in opendata_seed.sensors if (x.council, x.site) == (s.council, s.site)
        }
        for x in opendata_seed.readings:
            if x.sensor_id in site_ids and x.metric in POLLUTANTS:
                samples[x.metric].append((x.time, x.value))
        want_daqi = daqi_at(samples, at, 150)
        assert p["daqi"]["at"] == at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        assert (p["daqi"]["index"], p["daqi"]["band"]) == (want_daqi.site_index, want_daqi.band)
        assert p["daqi"]["pollutants"] == {k: v[1] for k, v in want_daqi.per_pollutant.items()}
        assert want_daqi.site_index is not None
    bands = {features[i]["properties"]["daqi"]["band"] for i in ("od-aq-1", "od-aq-4")}
    assert len(bands) == 2  # the seed gives Leeds dirtier air than Aberdeen


def test_page_and_vendored_leaflet_are_served_from_the_package(client: httpx.Client) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    csp = r.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp
    page = r.text
    assert "://" not in page  # nothing external: no CDN, no tile server by default
    for href in ("api/v1/sensors.geojson", "v1.1", "docs", "api/v1/aggregates?"):
        assert f'href="{href}' in page  # relative: works under a public URL path prefix
    js = client.get("/opendata/static/vendor/leaflet/leaflet.js")
    assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
    assert "Leaflet 1.9.4" in js.text[:300]
    assert client.get("/opendata/static/vendor/leaflet/leaflet.css").status_code == 200
    licence = client.get("/opendata/static/vendor/leaflet/LICENSE")
    assert licence.status_code == 200 and "BSD 2-Clause" in licence.text
    assert client.get("/opendata/static/vendor/leaflet/images/layers.png").status_code == 200
    for path in ("/opendata/static/..%2f..%2fapp.py", "/opendata/static/nope.js"):
        assert client.get(path).status_code == 404
