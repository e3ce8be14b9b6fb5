"""/api/v1/aggregates and /api/v1/daqi on a real server: numpy and rules.daqi over the seed."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import numpy as np
import pytest

from rules.daqi import daqi_at
from sensors.catalogue import KINDS
from sensors.reading import Reading
from tests.api.opendata_fixtures import (  # noqa: F401  (fixtures)
    SPAN,
    OpenDataSeed,
    opendata_db,
    opendata_seed,
    opendata_server,
)

pytestmark = [pytest.mark.adapter, pytest.mark.integration]

ORIGIN = datetime(2000, 1, 3, tzinfo=UTC)  # time_bucket()'s origin
WIDTH = {"15m": timedelta(minutes=15), "1h": timedelta(hours=1), "1d": timedelta(days=1)}
FUNCTIONS = ["min", "max", "mean", "count"]
Key = tuple[Any, ...]


def _bucket(t: datetime, width: timedelta) -> datetime:
    return ORIGIN + ((t - ORIGIN) // width) * width


def _truth(
    readings: Iterable[Reading], key: Callable[[Reading], Key], width: timedelta
) -> dict[Key, tuple[float, float, float, int]]:
    groups: dict[Key, list[float]] = defaultdict(list)
    for r in readings:
        groups[(*key(r), _bucket(r.time, width))].append(r.value)
    return {
        k: (float(np.min(v)), float(np.max(v)), float(np.mean(np.array(v))), len(v))
        for k, v in groups.items()
    }


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _window(seed: OpenDataSeed) -> dict[str, str]:
    start = (seed.end - SPAN - timedelta(days=1)).replace(hour=0, minute=0, second=0)
    return {"from": _iso(start), "to": _iso(seed.end + timedelta(days=1))}


@pytest.fixture(scope="module")
def client(opendata_server: str) -> Iterable[httpx.Client]:  # noqa: F811
    with httpx.Client(base_url=opendata_server, timeout=60) as c:
        yield c


def _served(body: dict[str, Any], key: Callable[[dict[str, Any]], Key]) -> dict[Key, list[Any]]:
    out: dict[Key, list[Any]] = {}
    for s in body["series"]:
        for start, end, *values in s["rows"]:
            t0 = datetime.fromisoformat(start)
            assert datetime.fromisoformat(end) - t0 == WIDTH[body["resolution"]]
            out[(*key(s), t0)] = values
    return out


def _assert_equal(served: dict[Key, list[Any]], truth: dict[Key, tuple[Any, ...]]) -> None:
    assert served.keys() == truth.keys()
    for k, (lo, hi, mean, n) in truth.items():
        got = served[k]
        assert got[3] == n, k
        assert got[:3] == pytest.approx([lo, hi, mean], rel=1e-9, abs=1e-9), k


@pytest.mark.parametrize("resolution", ["15m", "1h", "1d"])
def test_sensor_aggregates_equal_numpy_over_the_stored_readings(
    client: httpx.Client,
    opendata_seed: OpenDataSeed,  # noqa: F811
    resolution: str,
) -> None:
    r = client.get(
        "/api/v1/aggregates", params={"resolution": resolution, **_window(opendata_seed)}
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["functions"] == FUNCTIONS
    assert body["columns"] == ["interval_start", "interval_end", *FUNCTIONS]
    for s in body["series"]:
        assert s["unit"] == KINDS[s["kind"]].metrics[s["metric"]].unit
        assert s["site"] == opendata_seed.sensor(s["sensor_id"]).site
    served = _served(body, lambda s: (s["sensor_id"], s["metric"]))
    truth = _truth(opendata_seed.readings, lambda r: (r.sensor_id, r.metric), WIDTH[resolution])
    _assert_equal(served, truth)
    assert body["numberReturned"] == len(truth)


def test_site_pooled_and_filtered_aggregates_equal_numpy(
    client: httpx.Client,
    opendata_seed: OpenDataSeed,  # noqa: F811
) -> None:
    params = {"council": "aberdeen", "kind": "air_quality", "metric": "pm2_5", "group": "site"}
    r = client.get("/api/v1/aggregates", params={**params, **_window(opendata_seed)})
    assert r.status_code == 200, r.text
    site_of = {s.sensor_id: s.site for s in opendata_seed.sensors}
    rows = [x for x in opendata_seed.readings if x.council == "aberdeen" and x.metric == "pm2_5"]
    truth = _truth(rows, lambda x: (site_of[x.sensor_id],), WIDTH["1h"])
    served = _served(r.json(), lambda s: (s["site"],))
    _assert_equal(served, truth)
    assert {k[0] for k in served} == {"Union Street", "Wellington Rd"}

    one = {"sensor": "od-aq-4", "metric": "no2", "resolution": "15m"}
    r = client.get("/api/v1/aggregates", params={**one, **_window(opendata_seed)})
    rows = [x for x in opendata_seed.readings if x.sensor_id == "od-aq-4" and x.metric == "no2"]
    _assert_equal(
        _served(r.json(), lambda s: (s["sensor_id"],)),
        _truth(rows, lambda x: (x.sensor_id,), WIDTH["15m"]),
    )

    site = {"site": "Union Street", "metric": "no2", "resolution": "1d"}
    r = client.get("/api/v1/aggregates", params={**site, **_window(opendata_seed)})
    sensors = {x["sensor_id"] for x in r.json()["series"]}
    assert sensors == {"od-aq-1", "od-aq-2"}


@pytest.mark.parametrize("resolution", ["15m", "1h", "1d"])
def test_council_aggregates_equal_numpy(
    client: httpx.Client,
    opendata_seed: OpenDataSeed,  # noqa: F811
    resolution: str,
) -> None:
    params = {"group": "council", "resolution": resolution, **_window(opendata_seed)}
    r = client.get("/api/v1/aggregates", params=params)
    assert r.status_code == 200, r.text
    served = _served(r.json(), lambda s: (s["council"], s["kind"], s["metric"]))
    registers = {"energy_import", "energy_export"}  # cumulative: no council rollup
    rows = [x for x in opendata_seed.readings if x.metric not in registers]
    truth = _truth(rows, lambda x: (x.council, x.kind, x.metric), WIDTH[resolution])
    _assert_equal(served, truth)


def test_csv_streams_every_row_with_header_and_exact_values(
    client: httpx.Client,
    opendata_seed: OpenDataSeed,  # noqa: F811
) -> None:
    params = {"resolution": "15m", "format": "csv", **_window(opendata_seed)}
    chunks = 0
    data = bytearray()
    with client.stream("GET", "/api/v1/aggregates", params=params) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
        assert "content-length" not in r.headers  # streamed, not built whole
        for chunk in r.iter_raw():
            chunks += 1
            data += chunk
    lines = list(csv.reader(io.StringIO(data.decode())))
    header, rows = lines[0], lines[1:]
    assert header == [
        "council",
        "kind",
        "metric",
        "unit",
        "site",
        "sensor_id",
        "interval_start",
        "interval_end",
        *FUNCTIONS,
    ]
    truth = _truth(opendata_seed.readings, lambda x: (x.sensor_id, x.metric), WIDTH["15m"])
    assert len(rows) == len(truth) == int(r.headers["x-row-count"])
    served: dict[Key, list[Any]] = {}
    for council, kind, metric, unit, site, sensor, start, end, lo, hi, mean, n in rows:
        seed_sensor = opendata_seed.sensor(sensor)
        assert (council, kind, site) == (seed_sensor.council, seed_sensor.kind, seed_sensor.site)
        assert unit == KINDS[kind].metrics[metric].unit
        t0 = datetime.fromisoformat(start)
        assert t0.tzinfo is not None and datetime.fromisoformat(end) - t0 == WIDTH["15m"]
        served[(sensor, metric, t0)] = [float(lo), float(hi), float(mean), int(n)]
    _assert_equal(served, truth)
    assert chunks >= 1


def test_size_guards_answer_400_naming_the_limit(
    client: httpx.Client,
    opendata_seed: OpenDataSeed,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from api.opendata import routes

    monkeypatch.setattr(routes, "MAX_JSON_ROWS", 10)
    monkeypatch.setattr(routes, "MAX_CSV_ROWS", 10)
    for fmt in ("json", "csv"):
        r = client.get("/api/v1/aggregates", params={"format": fmt, **_window(opendata_seed)})
        assert r.status_code == 400
        assert "more than 10 rows" in r.json()["message"]


def _pooled(seed: OpenDataSeed, council: str, site: str) -> dict[str, list[tuple[datetime, float]]]:
    ids = {s.sensor_id for s in seed.sensors if s.council == council and s.site == site}
    out: dict[str, list[tuple[datetime, float]]] = defaultdict(list)
    for r in seed.readings:
        if r.sensor_id in ids and r.metric in ("pm2_5", "pm10", "no2", "o3", "so2"):
            out[r.metric].append((r.time, r.value))
    return out


@pytest.mark.parametrize(
    ("council", "site"), [("aberdeen", "Union Street"), ("aberdeen", "Wellington Rd")]
)
def test_hourly_daqi_equals_rules_daqi_over_the_raw_samples(
    client: httpx.Client,
    opendata_seed: OpenDataSeed,  # noqa: F811
    council: str,
    site: str,
) -> None:
    params = {"council": council, "site": site, **_window(opendata_seed)}
    r = client.get("/api/v1/daqi", params=params)
    assert r.status_code == 200, r.text
    served = {datetime.fromisoformat(s): (i, b) for s, _e, i, b in r.json()["rows"]}
    samples = _pooled(opendata_seed, council, site)
    first = (opendata_seed.end - SPAN).replace(minute=0, second=0, microsecond=0)
    expected = {}
    for k in range(-2, 60):  # PM running means outlive the data by hours
        h = first + k * timedelta(hours=1)
        result = daqi_at(samples, h + timedelta(hours=1), 150)
        if result.site_index is not None:
            expected[h] = (result.site_index, result.band)
    assert served == expected
    assert len(expected) > 20


BAD = [
    ({"resolution": "5m"}, "resolution"),
    ({"from": "yesterday"}, "from"),
    ({"from": "2026-13-01T00:00:00Z"}, "from"),
    ({"to": "2026-03-02T00:00:00"}, "to"),  # no UTC offset
    ({"from": "2026-03-02T00:00:00Z", "to": "2026-03-02T00:00:00Z"}, "from"),
    ({"from": "2026-03-05T00:00:00Z", "to": "2026-03-01T00:00:00Z"}, "from"),
    ({"resolution": "15m", "from": "2026-01-01", "to": "2026-03-01"}, "to"),
    ({"metric": "co2"}, "metric"),
    ({"metric": "fill_level", "kind": "air_quality"}, "metric"),
    ({"kind": "boat"}, "kind"),
    ({"format": "xml"}, "format"),
    ({"group": "ward"}, "group"),
    ({"group": "council", "sensor": "od-aq-1"}, "group"),
    ({"group": "council", "metric": "energy_import"}, "metric"),
    ({"council": "x'; DROP TABLE readings;--"}, "council"),
    ({"sensor": "../etc/passwd"}, "sensor"),
    ({"metric": ""}, "metric"),
    ({"council_id": "aberdeen"}, "council_id"),
    ({"site": "a\nb"}, "site"),
]


@pytest.mark.parametrize(("params", "name"), BAD, ids=[b[1] + str(i) for i, b in enumerate(BAD)])
def test_bad_input_is_a_one_line_400_naming_the_parameter(
    client: httpx.Client, params: dict[str, str], name: str
) -> None:
    query = {"from": "2026-03-01T00:00:00Z", "to": "2026-03-02T00:00:00Z", **params}
    r = client.get("/api/v1/aggregates", params=query)
    assert r.status_code == 400, r.text
    message = r.json()["message"]
    assert message.startswith(name + ":"), message
    assert "\n" not in message and "Traceback" not in r.text and "psycopg" not in r.text


def test_bad_input_other_endpoints_and_repeats(client: httpx.Client) -> None:
    r = client.get("/api/v1/aggregates?metric=no2&metric=pm2_5&from=2026-03-01&to=2026-03-02")
    assert r.status_code == 400 and r.json()["message"].startswith("metric: given 2 times")
    r = client.get("/api/v1/aggregates", params={"to": "2026-03-02T00:00:00Z"})
    assert r.status_code == 400 and r.json()["message"].startswith("from: required")
    r = client.get("/api/v1/daqi", params={"council": "aberdeen", "from": "2026-03-01"})
    assert r.status_code == 400 and r.json()["message"] == "site: required"
    r = client.get("/api/v1/sensors.geojson", params={"bbox": "1,2,3,4"})
    assert r.status_code == 400 and r.json()["message"].startswith("bbox: unknown parameter")


def test_sql_looking_site_is_data_not_sql(
    client: httpx.Client,
    opendata_seed: OpenDataSeed,  # noqa: F811
) -> None:
    site = "x'; DROP TABLE readings; --"
    r = client.get("/api/v1/aggregates", params={"site": site, **_window(opendata_seed)})
    assert r.status_code == 200 and r.json()["series"] == []
    r = client.get("/api/v1/aggregates", params={"metric": "no2", **_window(opendata_seed)})
    assert r.json()["numberReturned"] > 0  # readings still there


def test_raw_readings_export_streams_exactly_the_stored_rows(
    opendata_server: str,  # noqa: F811
    opendata_seed: OpenDataSeed,  # noqa: F811
) -> None:
    """``/api/v1/readings.csv``: every seeded reading in the window, values as sent."""
    start = opendata_seed.end - timedelta(hours=6)
    params = {"from": start.isoformat(), "to": opendata_seed.end.isoformat(), "metric": "pm10"}
    with httpx.stream("GET", f"{opendata_server}/api/v1/readings.csv", params=params) as r:
        assert r.status_code == 200
        text = b"".join(r.iter_bytes()).decode()
    rows = list(csv.DictReader(io.StringIO(text)))
    want = sorted(
        (x.sensor_id, x.time, x.value)
        for x in opendata_seed.readings
        if x.metric == "pm10" and start <= x.time < opendata_seed.end
    )
    got = sorted(
        (
            r["sensor_id"],
            datetime.fromisoformat(r["time"].replace("Z", "+00:00")),
            float(r["value"]),
        )
        for r in rows
    )
    assert want and got == want
    bad = httpx.get(f"{opendata_server}/api/v1/readings.csv", params={"from": "2026-01-01"})
    assert bad.status_code == 400 and "to: required" in bad.text
