"""``/api/v1/agreements``: each caller sees the agreements it is party to, in the STAplus shape."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest

from storage import sharing_store
from storage.migrations import migrate
from tests.api.sharing_seed import register_and_open

pytestmark = pytest.mark.integration

COUNCILS = ("aberdeen", "dundee", "fife")


@pytest.fixture(scope="module")
def db(database_url: str) -> Iterator[str]:
    name = f"api_agreements_{uuid.uuid4().hex}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))
    try:
        migrate(url)
        register_and_open(url, COUNCILS, open_data=False)
        yield url
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _doc(provider: str, recipient: str, **extra: Any) -> dict[str, Any]:
    return {
        "provider": provider,
        "recipient": recipient,
        "resolution": "1h",
        "purpose": f"{provider} to {recipient}",
        "legal_basis": "public_task",
        **extra,
    }


def _listed(base: str, key: str | None) -> dict[int, dict[str, Any]]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    r = httpx.get(f"{base}/api/v1/agreements", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["@iot.count"] == len(body["value"])
    return {a["@iot.id"]: a for a in body["value"]}


def test_agreements_listed_per_party_in_the_staplus_shape(
    db: str, api_server_factory: Callable[..., str]
) -> None:
    now = datetime.now(UTC)
    a_to_d, d_to_f, a_public = (
        sharing_store.grant(db, [doc], now)[0]
        for doc in (
            _doc("aberdeen", "dundee", metrics=["no2"]),
            _doc("dundee", "fife", expires_at=(now + timedelta(days=30)).isoformat()),
            _doc("aberdeen", "public", resolution="1d", legal_basis="not_personal_data"),
        )
    )
    ids = {a.id for a in (a_to_d, d_to_f, a_public)}
    assert None not in ids
    base = api_server_factory(database_url=db, public_rate_per_minute=100_000)
    keys = {c: sharing_store.create_api_key(db, c, "test")[1] for c in COUNCILS}
    public = {a_public.id}
    expected = {
        None: public,
        "aberdeen": {a_to_d.id, a_public.id},
        "dundee": {a_to_d.id, d_to_f.id} | public,
        "fife": {d_to_f.id} | public,
    }
    for council, want in expected.items():
        got = _listed(base, keys[council] if council else None)
        assert set(got) == want, council
    one = _listed(base, keys["dundee"])[a_to_d.id]
    assert one["purpose"] == "aberdeen to dundee" and one["status"] == "active"
    assert one["legalBasis"]["code"] == "public_task"
    assert one["coveredProperties"] == ["no2"] and one["permittedOperations"] == ["read"]
    assert one["properties"]["provider"] == "aberdeen" and one["properties"]["resolution"] == "1h"
    assert one["effectiveTime"].endswith("/..")
    assert one["@iot.selfLink"] == f"{base}/api/v1/agreements/{a_to_d.id}"
    got = httpx.get(one["@iot.selfLink"], headers={"X-API-Key": keys["dundee"]}, timeout=30)
    assert got.json() == one
    hidden = httpx.get(one["@iot.selfLink"], headers={"X-API-Key": keys["fife"]}, timeout=30)
    assert hidden.status_code == 404  # fife is no party: as if it did not exist
    assert httpx.get(f"{base}/api/v1/agreements/x1", timeout=30).status_code == 400

    sharing_store.revoke(db, a_to_d.id or 0)
    after = _listed(base, keys["aberdeen"])[a_to_d.id]
    assert after["status"] == "withdrawn"
    with psycopg.connect(db) as conn:  # each read left an access-log row, stamped by the DB
        rows = conn.execute(
            "SELECT recipient, rows FROM access_log WHERE what LIKE '%/api/v1/agreements%'"
            " ORDER BY id"
        ).fetchall()
    assert ("fife", 2) in rows and ("public", 1) in rows
