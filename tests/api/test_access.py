"""Who sees what through the API: public, partner councils by API key, agreements, the access log.

The API reads through the same tenant views as SQL users (sql/040); expected sets come from
the seed rows, not from the API.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from storage import sharing_store
from storage.migrations import migrate
from tests.api.conftest import ApiSeed, load_api_seed
from tests.api.sharing_seed import register_and_open

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def private_db(database_url: str, api_seed: ApiSeed) -> Iterator[str]:
    """The API seed with its councils registered and nothing shared with anyone."""
    name = f"api_private_{uuid.uuid4().hex}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))
    try:
        migrate(url)
        load_api_seed(url, api_seed)
        register_and_open(url, api_seed.councils, open_data=False)
        yield url
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def server(private_db: str, api_server_factory: Callable[..., str]) -> str:
    return api_server_factory(database_url=private_db, public_rate_per_minute=100_000)


def things(base: str, key: str | None = None) -> set[str]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    r = httpx.get(f"{base}/v1.1/Things", params={"$top": 1000}, headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    return {t["name"] for t in r.json()["value"]}


def datastreams(base: str, key: str) -> set[str]:
    r = httpx.get(
        f"{base}/v1.1/Datastreams",
        params={
            "$top": 100,
            "$expand": "Thing($select=name;$top=1),ObservedProperty($select=name;$top=1)",
        },
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return {f"{d['Thing']['name']}/{d['ObservedProperty']['name']}" for d in r.json()["value"]}


def access_rows(url: str) -> list[tuple[str, int | None, list[int], str, int]]:
    with psycopg.connect(url) as conn:
        return conn.execute(  # type: ignore[return-value]
            "SELECT recipient, key_id, agreement_ids, what, rows FROM access_log ORDER BY id"
        ).fetchall()


def test_each_caller_sees_its_own_and_what_is_granted_and_nothing_after_revoke(
    private_db: str, server: str, api_seed: ApiSeed
) -> None:
    by_council = {
        c: {s.sensor_id for s in api_seed.sensors if s.council == c} for c in api_seed.councils
    }
    assert things(server) == set()
    r = httpx.get(f"{server}/api/v1/sensors.geojson", timeout=30)
    assert r.status_code == 200 and r.json()["features"] == []

    _, aberdeen_key = sharing_store.create_api_key(private_db, "aberdeen", "test")
    _, dundee_key = sharing_store.create_api_key(private_db, "dundee", "test")
    assert things(server, aberdeen_key) == by_council["aberdeen"]
    assert things(server, dundee_key) == by_council["dundee"]

    [agreement] = sharing_store.grant(
        private_db,
        [
            {
                "provider": "aberdeen",
                "recipient": "dundee",
                "metrics": ["no2"],
                "resolution": "raw",
                "purpose": "joint study",
                "legal_basis": "public_task",
            }
        ],
        datetime.now(UTC),
    )
    want = {
        f"{s.sensor_id}/{m}" for s in api_seed.sensors if s.council == "dundee" for m in s.metrics
    }
    want |= {
        f"{s.sensor_id}/no2"
        for s in api_seed.sensors
        if s.council == "aberdeen" and "no2" in s.metrics
    }
    assert datastreams(server, dundee_key) == want
    assert things(server) == set()  # the public still sees nothing

    sharing_store.revoke(private_db, agreement.id or 0)
    assert things(server, dundee_key) == by_council["dundee"]


def test_every_read_by_a_key_is_logged_once_with_its_agreements(
    private_db: str, server: str
) -> None:
    [agreement] = sharing_store.grant(
        private_db,
        [
            {
                "provider": "aberdeen",
                "recipient": "dundee",
                "resolution": "1h",
                "purpose": "audit test",
                "legal_basis": "public_task",
            }
        ],
        datetime.now(UTC),
    )
    key, plain = sharing_store.create_api_key(private_db, "dundee", "audit")
    before = len(access_rows(private_db))
    for path in ("/v1.1/Things", "/v1.1/Datastreams", "/api/v1/sensors.geojson"):
        r = httpx.get(server + path, headers={"X-API-Key": plain}, timeout=30)
        assert r.status_code == 200, r.text
    rows = access_rows(private_db)[before:]
    assert [(r[0], r[1], r[2]) for r in rows] == [("dundee", key.id, [agreement.id])] * 3
    assert [r[3].split("?")[0] for r in rows] == [
        "GET /v1.1/Things",
        "GET /v1.1/Datastreams",
        "GET /api/v1/sensors.geojson",
    ]
    assert all(r[4] > 0 for r in rows)
    sharing_store.revoke(private_db, agreement.id or 0)


@pytest.mark.parametrize("bad", ["cpk_1_wrong", "cpk_999999_x", "nonsense", "cpk__", "cpk_1"])
def test_a_bad_key_gets_the_same_one_line_401(server: str, bad: str) -> None:
    r = httpx.get(f"{server}/v1.1/Things", headers={"Authorization": f"Bearer {bad}"})
    assert r.status_code == 401
    assert r.json() == {
        "detail": "invalid or revoked API key (ask the council that issued it for a new one)"
    }


def test_a_revoked_key_is_refused_on_its_next_request(private_db: str, server: str) -> None:
    key, plain = sharing_store.create_api_key(private_db, "dundee", "soon revoked")
    assert httpx.get(f"{server}/v1.1/Things", headers={"X-API-Key": plain}).status_code == 200
    sharing_store.revoke_api_key(private_db, key.id)
    assert httpx.get(f"{server}/v1.1/Things", headers={"X-API-Key": plain}).status_code == 401


def test_rate_limit_answers_429_with_retry_after(private_db: str, server: str) -> None:
    _, plain = sharing_store.create_api_key(private_db, "dundee", "slow", rate_per_minute=3)
    codes = [httpx.get(f"{server}/v1.1/Things", headers={"X-API-Key": plain}) for _ in range(4)]
    assert [r.status_code for r in codes] == [200, 200, 200, 429]
    assert int(codes[3].headers["Retry-After"]) >= 1
    assert "rate limit of 3 requests a minute" in codes[3].json()["detail"]


def test_public_endpoints_allow_any_origin(server: str) -> None:
    r = httpx.get(f"{server}/v1.1", headers={"Origin": "https://example.org"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == "*"
