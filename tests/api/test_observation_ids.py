"""Observation ids below 2**53, unique on the seed, round-tripping; datastream numbers (sql/041)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from sensors.reading import Reading
from storage.migrations import migrate
from storage.readings_store import ReadingStore
from tests.api.conftest import ApiSeed
from tests.api.sharing_seed import register_and_open

pytestmark = pytest.mark.integration

ROOT = "/v1.1"
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


def _numbers(url: str) -> dict[tuple[str, str], int]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT sensor_id, metric, number FROM datastream_numbers").fetchall()
    return {(s, m): n for s, m, n in rows}


def test_every_seed_observation_has_a_unique_js_safe_id_that_round_trips(
    api_client: httpx.Client, api_seed: ApiSeed, seeded_db: str
) -> None:
    numbers = _numbers(seeded_db)
    want = {
        ((r.time - EPOCH) // timedelta(seconds=1)) << 20 | numbers[(r.sensor_id, r.metric)]: r
        for r in api_seed.readings
    }
    assert len(want) == len(api_seed.readings)  # unique on the seed
    body = api_client.get(f"{ROOT}/Observations", params={"$top": "10000"}).json()
    got = {o["@iot.id"]: o for o in body["value"]}
    assert "@iot.nextLink" not in body and len(got) == len(body["value"]) == len(want)
    assert set(got) == set(want) and max(got) < 2**53
    for oid in sorted(want)[::53]:
        one = api_client.get(f"{ROOT}/Observations({oid})").json()
        assert one == got[oid] and one["result"] == want[oid].value
        found = api_client.get(f"{ROOT}/Observations", params={"$filter": f"id eq {oid}"}).json()
        assert found["value"] == [one]
    assert api_client.get(f"{ROOT}/Observations({min(want) - 1})").status_code == 404


def test_single_valued_expansions_do_not_multiply_in_the_size_guard(
    api_client: httpx.Client, api_seed: ApiSeed
) -> None:
    r = api_client.get(
        f"{ROOT}/Datastreams", params={"$top": "1000", "$expand": "Thing,ObservedProperty"}
    )
    assert r.status_code == 200, r.text
    streams = r.json()["value"]
    assert len(streams) == sum(len(s.metrics) for s in api_seed.sensors)
    assert all(d["Thing"]["name"] == d["name"].split()[0] for d in streams)
    big = api_client.get(
        f"{ROOT}/Things", params={"$top": "10000", "$expand": "Datastreams($top=1000)"}
    )
    assert big.status_code == 400 and "more than 100000 entities" in big.json()["message"]


def _reading(sensor: str, council: str, metric: str, t: datetime) -> Reading:
    return Reading(
        sensor_id=sensor,
        council=council,
        kind="air_quality",
        metric=metric,
        value=1.5,
        unit="ug/m3",
        time=t,
        received_at=t,
    )


def test_new_datastreams_are_numbered_once_by_the_write_path(fresh_db: str) -> None:
    migrate(fresh_db)
    register_and_open(fresh_db, ["aaa", "bbb"], open_data=False)
    t = datetime(2026, 3, 2, 12, tzinfo=UTC)
    store = ReadingStore(fresh_db)
    try:
        first = [_reading("a-1", "aaa", "no2", t), _reading("a-1", "aaa", "pm2_5", t)]
        store.write(first)
        before = _numbers(fresh_db)
        store.write(first)  # a replay: nothing new, no number burnt
        store.write([_reading("b-1", "bbb", "no2", t + timedelta(minutes=m)) for m in range(3)])
        store.write([_reading("a-1", "aaa", "no2", t + timedelta(minutes=5))])
    finally:
        store.close()
    after = _numbers(fresh_db)
    assert {k: after[k] for k in before} == before  # stable
    assert sorted(after.values()) == [1, 2, 3]  # one each, in order of first sight
    assert set(after) == {("a-1", "no2"), ("a-1", "pm2_5"), ("b-1", "no2")}
    with psycopg.connect(fresh_db) as conn:  # tenancy: bbb sees its own number only
        conn.execute("SET ROLE civicpulse_council_bbb")
        conn.execute("SET search_path = tenant, public, pg_catalog")
        rows = conn.execute("SELECT sensor_id FROM datastream_numbers").fetchall()
    assert rows == [("b-1",)]
