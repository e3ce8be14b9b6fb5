"""Tenancy (sql/040): every read-contract relation, as each council's role sees it.

The expected rows come from the base relations read as their owner, filtered by the pure rule
in trust/agreements.py (``covers`` / ``covers_metadata``), never from the tenant views.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from psycopg import sql

from storage.migrations import migrate
from storage.rollups import refresh_range
from trust.agreements import (
    PUBLIC,
    Agreement,
    Resolution,
    Scope,
    SharedRow,
    covers,
    covers_metadata,
)

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
START = NOW - timedelta(days=2)
FAKE_HASH = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"

# sensor id → (council, kind, site, personal_data)
SENSORS: dict[str, tuple[str, str, str, bool]] = {
    "aaa-aq-1": ("aaa", "air_quality", "s1", False),
    "aaa-aq-2": ("aaa", "air_quality", "s2", False),
    "aaa-bin-1": ("aaa", "waste_bin", "s1", False),
    "aaa-meter-s1": ("aaa", "energy_meter", "s1", False),
    **{f"aaa-home-{i}": ("aaa", "energy_meter", f"h{i}", True) for i in range(1, 7)},
    "bbb-aq-1": ("bbb", "air_quality", "b1", False),
    "bbb-bin-1": ("bbb", "waste_bin", "b1", False),
    "ccc-aq-1": ("ccc", "air_quality", "c1", False),
}
METRICS = {
    "air_quality": ("no2", "pm10"),
    "waste_bin": ("fill_level",),
    "energy_meter": ("power",),
}
RESOLUTION = {
    "readings": Resolution.RAW,
    "readings_1m": Resolution.RAW,
    "readings_15m": Resolution.M15,
    "readings_1h": Resolution.H1,
    "readings_1d": Resolution.D1,
    "readings_council_1h": Resolution.H1,
    "readings_council_1d": Resolution.D1,
}
PER_SENSOR = ("readings", "readings_1m", "readings_15m", "readings_1h", "readings_1d")
PER_COUNCIL = ("readings_council_1h", "readings_council_1d")
METADATA = ("sensor_sites", "sensor_locations", "dash_sensor_status")
FORECASTS = ("bin_forecasts", "bin_forecasts_latest")
OWN = ("alerts", "alert_notifications", "dead_letters")
CONTRACT = PER_SENSOR + PER_COUNCIL + METADATA + FORECASTS + OWN


def _seed(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        "INSERT INTO councils (slug, name) VALUES ('aaa', 'A'), ('bbb', 'B'), ('ccc', 'C')"
    )
    for sid, (council, kind, site, personal) in SENSORS.items():
        conn.execute(
            "INSERT INTO devices (sensor_id, council, kind, site, personal_data, secret_hash)"
            " VALUES (%s, %s, %s, %s, %s, %s)",
            (sid, council, kind, site, personal, FAKE_HASH),
        )
        conn.execute(
            "INSERT INTO sensor_sites (sensor_id, council, site) VALUES (%s, %s, %s)",
            (sid, council, site),
        )
        conn.execute(
            "INSERT INTO sensor_locations (sensor_id, latitude, longitude) VALUES (%s, 57.1, -2.1)",
            (sid,),
        )
        rows = [
            (START + timedelta(minutes=20 * i), council, sid, kind, metric, float(i % 37), "u", NOW)
            for i in range(6 * 24 * 2 // 2)
            for metric in METRICS[kind]
        ]
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO readings (time, council, sensor_id, kind, metric, value, unit,"
                " received_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                rows,
            )
        if kind == "waste_bin":
            conn.execute(
                "INSERT INTO bin_forecasts (sensor_id, as_of, council, fill_pct, threshold_pct,"
                " method, cycle_start) VALUES (%s, %s, %s, 40, 80, 'none', %s)",
                (sid, NOW - timedelta(hours=1), council, START),
            )
    conn.execute(
        "INSERT INTO readings_1m (bucket, council, sensor_id, kind, metric, n, min, max, mean,"
        " last, last_time) SELECT date_trunc('minute', time), council, sensor_id, kind, metric,"
        " count(*), min(value), max(value), avg(value), max(value), max(time) FROM readings"
        " GROUP BY 1, 2, 3, 4, 5"
    )
    for council in ("aaa", "bbb"):
        alert_id = conn.execute(
            "INSERT INTO alert_events (council, sensor_id, site, kind, rule, opened_at, severity,"
            " state, last_seen_at, count) VALUES (%s, %s, 's', 'air_quality', 'flatline', %s,"
            " 'warning', 'open', %s, 1) RETURNING id",
            (council, f"{council}-aq-1", NOW, NOW),
        ).fetchone()[0]  # type: ignore[index]
        conn.execute(
            "INSERT INTO alert_notifications (alert_id, event, payload)"
            " VALUES (%s, 'opened', '{}')",
            (alert_id,),
        )
        conn.execute(
            "INSERT INTO dead_letters (received_at, stage, reason, detail, mqtt_topic, payload,"
            " payload_size)"
            " VALUES (now(), 'validate', 'bad_json', 'x', %s, 'x', 1)",
            (f"civicpulse/{council}/air_quality/{council}-aq-1",),
        )
    conn.execute(
        "INSERT INTO dead_letters (received_at, stage, reason, detail, mqtt_topic, payload,"
        " payload_size)"
        " VALUES (now(), 'decode', 'bad_topic', 'x', 'weird/topic', 'x', 1)"
    )


def _build(url: str) -> None:
    migrate(url)
    with psycopg.connect(url) as conn:
        _seed(conn)
    with psycopg.connect(url, autocommit=True) as conn:
        refresh_range(conn, START - timedelta(days=1), NOW + timedelta(days=1))


@pytest.fixture(scope="module", params=["postgresql", "timescaledb"])
def tenant_db(request: pytest.FixtureRequest, database_url: str) -> Iterator[str]:
    """The seeded database on PostgreSQL, and on TimescaleDB (WASM), where rollups are caggs."""
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    from tools import devstack

    if request.param == "timescaledb":
        stack = request.getfixturevalue("_devstack")
        try:
            svc = devstack.start_pglite(stack.workdir)
        except devstack.ServiceError as e:
            pytest.fail(f"could not start the WASM TimescaleDB: {e}", pytrace=False)
        try:
            _build(svc.url)
            yield svc.url
        finally:
            svc.stop()
        return
    name = f"tenancy_{uuid.uuid4().hex}"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))
    try:
        _build(url)
        yield url
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@dataclass
class Db:
    url: str

    def rows_as_owner(self, rel: str) -> list[dict[str, Any]]:
        with psycopg.connect(self.url) as conn, conn.cursor(row_factory=_dict_rows) as cur:
            return cur.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(rel))).fetchall()

    def rows_as(self, role: str, rel: str) -> list[dict[str, Any]]:
        with psycopg.connect(self.url) as conn, conn.cursor(row_factory=_dict_rows) as cur:
            cur.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
            cur.execute("SET search_path = tenant, public, pg_catalog")
            return cur.execute(sql.SQL("SELECT * FROM {}").format(sql.Identifier(rel))).fetchall()

    def grant(self, a: Agreement) -> int:
        s = a.scope
        with psycopg.connect(self.url) as conn:
            row = conn.execute(
                "INSERT INTO agreements (provider, recipient, kinds, metrics, sites, sensors,"
                " resolution, purpose, legal_basis, legal_basis_text, min_contributors,"
                " starts_at, expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, 'test',"
                " 'public_task', 'x', %s, %s, %s) RETURNING id",
                (
                    a.provider,
                    a.recipient,
                    sorted(s.kinds),
                    sorted(s.metrics),
                    sorted(s.sites),
                    sorted(s.sensors),
                    a.resolution.value,
                    a.min_contributors,
                    a.starts_at,
                    a.expires_at,
                ),
            ).fetchone()
            assert row is not None
            return int(row[0])

    def clear_agreements(self) -> None:
        with psycopg.connect(self.url) as conn:
            conn.execute("DELETE FROM agreements")


def _dict_rows(cursor: Any) -> Callable[[tuple[Any, ...]], dict[str, Any]]:
    names = [c.name for c in cursor.description or ()]
    return lambda values: dict(zip(names, values, strict=True))


def _owner(rel: str, row: dict[str, Any], alert_council: dict[int, str]) -> str | None:
    if rel == "sensor_locations":
        return SENSORS[row["sensor_id"]][0]
    if rel == "alert_notifications":
        return alert_council[row["alert_id"]]
    if rel == "dead_letters":
        parts = (row["mqtt_topic"] or "").split("/")
        return parts[1] if len(parts) == 4 and parts[0] == "civicpulse" else None
    return row["council"]


def expected(
    db: Db, rel: str, viewer: str, agreements: list[Agreement], now: datetime
) -> list[dict[str, Any]]:
    """The rows of ``rel`` that ``viewer`` should see, by the pure rule over the base rows."""
    alert_council = {r["id"]: r["council"] for r in db.rows_as_owner("alerts")}
    personal_kinds = {(c, k) for c, k, _site, personal in SENSORS.values() if personal}
    out = []
    for row in db.rows_as_owner(rel):
        owner = _owner(rel, row, alert_council)
        if owner == viewer:
            out.append(row)
            continue
        if owner is None or rel in OWN:
            continue
        sid = row.get("sensor_id", "")
        _c, kind, site, personal = SENSORS.get(sid, (owner, row.get("kind", ""), "", False))
        if rel in PER_SENSOR:
            shared = SharedRow(owner, kind, row["metric"], site, sid, RESOLUTION[rel], personal)
            ok = any(covers(a, shared, now) for a in agreements)
        elif rel in PER_COUNCIL:
            shared = SharedRow(
                owner,
                row["kind"],
                row["metric"],
                "",
                "",
                RESOLUTION[rel],
                (owner, row["kind"]) in personal_kinds,
                row["sensors"],
            )
            ok = any(covers(a, shared, now) for a in agreements)
        elif rel in FORECASTS:
            shared = SharedRow(owner, "waste_bin", "fill_level", site, sid, Resolution.H1, personal)
            ok = any(covers(a, shared, now) for a in agreements)
        else:
            shared = SharedRow(owner, kind, "", site, sid, Resolution.RAW, personal)
            ok = any(covers_metadata(a, shared, now) for a in agreements)
        if ok:
            out.append(row)
    return out


# dash_sensor_status follows the wall clock (seconds since seen, and what it decides): two
# reads a moment apart differ there, so those columns are left out of the comparison.
WALL_CLOCK = {"seconds_since_seen", "stale", "status", "status_level"}


def _key(row: dict[str, Any]) -> str:
    return repr(sorted((k, v) for k, v in row.items() if k not in WALL_CLOCK))


def _agreement(
    recipient: str = "bbb", resolution: str = "raw", k: int = 5, **scope: Any
) -> Agreement:
    return Agreement(
        provider="aaa",
        recipient=recipient,
        scope=Scope(**{name: frozenset(v) for name, v in scope.items()}),
        resolution=Resolution(resolution),
        purpose="test",
        legal_basis="public_task",
        legal_basis_text="x",
        starts_at=NOW - timedelta(days=1),
        min_contributors=k,
    )


SCENARIOS: dict[str, list[Agreement]] = {
    "no agreement": [],
    "everything raw": [_agreement()],
    "everything raw, k=1": [_agreement(k=1)],
    "everything raw, k=10": [_agreement(k=10)],
    "no2 at s1, hourly": [_agreement(resolution="1h", metrics={"no2"}, sites={"s1"})],
    "air quality 15m": [_agreement(resolution="15m", kinds={"air_quality"})],
    "one sensor, daily": [_agreement(resolution="1d", sensors={"aaa-aq-2"})],
    "bins and meters raw": [_agreement(kinds={"waste_bin", "energy_meter"})],
    "two agreements": [
        _agreement(resolution="1d", kinds={"energy_meter"}),
        _agreement(resolution="raw", sensors={"aaa-aq-1"}, metrics={"pm10"}),
    ],
    "open data, daily air": [_agreement(recipient=PUBLIC, resolution="1d", kinds={"air_quality"})],
}


@pytest.fixture(scope="module")
def db(tenant_db: str) -> Db:
    return Db(tenant_db)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_each_relation_shows_exactly_own_rows_plus_the_granted_scope(db: Db, scenario: str) -> None:
    agreements = SCENARIOS[scenario]
    db.clear_agreements()
    for a in agreements:
        db.grant(a)
    mismatches = []
    for viewer, role in (
        ("bbb", "civicpulse_council_bbb"),
        ("ccc", "civicpulse_council_ccc"),
        (PUBLIC, "civicpulse_public"),
    ):
        granted = [a for a in agreements if a.recipient in (viewer, PUBLIC)]
        for rel in CONTRACT:
            want = sorted(map(_key, expected(db, rel, viewer, granted, NOW)))
            got = sorted(map(_key, db.rows_as(role, rel)))
            if want != got:
                mismatches.append(f"{viewer} {rel}: want {len(want)} rows, got {len(got)}")
    assert not mismatches, "\n".join(mismatches)


def test_the_seed_exercises_each_relation(db: Db) -> None:
    """Guard: every relation has rows of the provider, so 'sees zero' means something."""
    for rel in CONTRACT:
        alert_council = {r["id"]: r["council"] for r in db.rows_as_owner("alerts")}
        owners = {_owner(rel, r, alert_council) for r in db.rows_as_owner(rel)}
        assert "aaa" in owners, rel


def test_a_scenario_shares_something_in_every_shared_relation(db: Db) -> None:
    db.clear_agreements()
    db.grant(_agreement(k=1))
    for rel in PER_SENSOR + PER_COUNCIL + METADATA + FORECASTS:
        rows = db.rows_as("civicpulse_council_bbb", rel)
        assert any(_owner(rel, r, {}) == "aaa" for r in rows if rel != "alert_notifications"), rel


def test_revocation_and_expiry_act_at_once(db: Db) -> None:
    db.clear_agreements()
    agreement_id = db.grant(_agreement())
    assert any(r["council"] == "aaa" for r in db.rows_as("civicpulse_council_bbb", "readings"))
    with psycopg.connect(db.url) as conn:
        conn.execute(
            "UPDATE agreements SET status = 'withdrawn', withdrawn_at = now() WHERE id = %s",
            (agreement_id,),
        )
    for rel in CONTRACT:
        rows = db.rows_as("civicpulse_council_bbb", rel)
        assert all(r.get("council", "bbb") == "bbb" for r in rows), rel
    db.clear_agreements()
    expired = _agreement()
    ended = datetime.now(UTC) - timedelta(seconds=1)
    db.grant(
        Agreement(**{**_asdict(expired), "starts_at": NOW - timedelta(days=3), "expires_at": ended})
    )
    assert all(r["council"] == "bbb" for r in db.rows_as("civicpulse_council_bbb", "readings"))


def _base(conn: psycopg.Connection[Any], rel: str) -> sql.Composable:
    """The base relation, qualified (public on PostgreSQL, pg_catalog on the WASM build)."""
    row = conn.execute(
        "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.relname = %s AND n.nspname <> 'tenant'",
        (rel,),
    ).fetchone()
    assert row is not None, rel
    return sql.Identifier(row[0], rel)


def _asdict(a: Agreement) -> dict[str, Any]:
    return {f: getattr(a, f) for f in a.__dataclass_fields__}


def test_a_role_that_is_no_council_sees_nothing(db: Db) -> None:
    db.clear_agreements()
    db.grant(_agreement(recipient=PUBLIC))
    with psycopg.connect(db.url) as conn:
        conn.execute("SET ROLE civicpulse_tenant")
        conn.execute("SET search_path = tenant, public, pg_catalog")
        for rel in CONTRACT:
            n = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(rel)))
            assert n.fetchone() == (0,), rel


@pytest.mark.parametrize("role", ["civicpulse_council_bbb", "civicpulse_public", "civicpulse_api"])
def test_council_and_api_roles_cannot_reach_base_tables_or_registry(db: Db, role: str) -> None:
    for rel in ("readings", "agreements", "devices", "api_keys", "access_log", "alert_events"):
        with psycopg.connect(db.url) as conn:
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(sql.SQL("SELECT 1 FROM {} LIMIT 1").format(_base(conn, rel)))


def test_access_log_is_stamped_by_the_database_and_append_only(db: Db) -> None:
    db.clear_agreements()
    agreement_id = db.grant(_agreement())
    with psycopg.connect(db.url) as conn:
        conn.execute("SET ROLE civicpulse_council_bbb")
        conn.execute("SET search_path = tenant, public, pg_catalog")
        conn.execute(
            "INSERT INTO access_log_entries (what, rows, providers) VALUES ('GET /x', 7, '{aaa}')"
        )
        row = conn.execute(
            "SELECT recipient, agreement_ids, providers, rows FROM access_log ORDER BY id DESC"
        ).fetchone()
        assert row == ("bbb", [agreement_id], ["aaa"], 7)
    with psycopg.connect(db.url) as conn:  # the provider sees who used its data
        conn.execute("SET ROLE civicpulse_council_aaa")
        conn.execute("SET search_path = tenant, public, pg_catalog")
        seen = conn.execute("SELECT recipient, what FROM access_log").fetchall()
        assert ("bbb", "GET /x") in seen
    with psycopg.connect(db.url) as conn:  # a third council does not
        conn.execute("SET ROLE civicpulse_council_ccc")
        conn.execute("SET search_path = tenant, public, pg_catalog")
        assert conn.execute("SELECT count(*) FROM access_log").fetchone() == (0,)
    for role in ("civicpulse_council_bbb", "civicpulse_api", None):
        for statement in (
            "UPDATE access_log SET rows = 0",
            "DELETE FROM access_log",
            "TRUNCATE access_log",
        ):
            with psycopg.connect(db.url) as conn:
                if role:
                    conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(
                        sql.SQL(statement.replace("access_log", "{}")).format(
                            _base(conn, "access_log")
                        )
                    )
    with psycopg.connect(db.url) as conn:
        assert conn.execute("SELECT min(rows) FROM access_log").fetchone() == (7,)
