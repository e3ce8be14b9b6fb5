"""`civicpulse share` and `civicpulse api-keys` against a real database and its tenant views."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from click.testing import Result
from typer.testing import CliRunner

from civicpulse.cli import app
from storage import migrate, sharing_store

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def db(fresh_db: str) -> list[str]:
    migrate(fresh_db)
    for slug in ("aberdeen", "dundee"):
        assert cli("councils", "add", slug, "--name", slug.title(), "--database-url", fresh_db)
    with psycopg.connect(fresh_db) as conn, conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO readings (time, council, sensor_id, kind, metric, value, unit,"
            " received_at) VALUES (%s, %s, %s, 'air_quality', %s, %s, 'ug/m3', now())",
            [
                (NOW - timedelta(minutes=i), council, f"{council}-aq-1", metric, float(i))
                for i in range(10)
                for council in ("aberdeen", "dundee")
                for metric in ("no2", "pm10")
            ],
        )
    return ["--database-url", fresh_db]


def seen_by(url: str, council: str) -> set[tuple[str, str]]:
    """(council, metric) of the readings ``council``'s role sees."""
    with psycopg.connect(url) as conn:
        conn.execute(f"SET ROLE civicpulse_council_{council}")
        conn.execute("SET search_path = tenant, public, pg_catalog")
        rows = conn.execute("SELECT DISTINCT council, metric FROM readings").fetchall()
    return set(rows)


def count_agreements(url: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM agreements").fetchone()
    assert row is not None
    return int(row[0])


def test_grant_list_revoke_change_what_the_recipient_sees_at_once(db: list[str]) -> None:
    url = db[1]
    assert seen_by(url, "dundee") == {("dundee", "no2"), ("dundee", "pm10")}
    r = cli("share", "grant", "--provider", "aberdeen", "--recipient", "dundee",
            "--metrics", "no2", "--resolution", "raw", "--purpose", "joint AQ study",
            "--legal-basis", "public_task", "--json", *db)  # fmt: skip
    assert r.exit_code == 0, r.output
    granted = json.loads(r.stdout)
    assert len(granted) == 1 and granted[0]["metrics"] == ["no2"] and granted[0]["in_force"]
    assert seen_by(url, "dundee") == {("dundee", "no2"), ("dundee", "pm10"), ("aberdeen", "no2")}
    assert seen_by(url, "aberdeen") == {("aberdeen", "no2"), ("aberdeen", "pm10")}

    r = cli("share", "list", "--council", "aberdeen", "--json", *db)
    assert [a["id"] for a in json.loads(r.stdout)] == [granted[0]["id"]]
    r = cli("share", "list", *db)
    assert r.exit_code == 0 and "aberdeen → dundee" in r.stdout

    r = cli("share", "revoke", str(granted[0]["id"]), *db)
    assert r.exit_code == 0, r.output
    assert seen_by(url, "dundee") == {("dundee", "no2"), ("dundee", "pm10")}
    r = cli("share", "revoke", str(granted[0]["id"]), *db)
    assert r.exit_code == 1
    assert r.output.strip() == f"error: agreement {granted[0]['id']} is already withdrawn"
    r = cli("share", "revoke", "999", *db)
    assert r.output.strip() == "error: no agreement 999 (civicpulse share list)"


def test_expiry_ends_an_agreement_without_anyone_acting(db: list[str]) -> None:
    url = db[1]
    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    r = cli("share", "grant", "--provider", "aberdeen", "--recipient", "dundee",
            "--resolution", "raw", "--purpose", "p", "--legal-basis", "public_task",
            "--expires", soon, *db)  # fmt: skip
    assert r.exit_code == 0, r.output
    assert ("aberdeen", "pm10") in seen_by(url, "dundee")
    import time

    time.sleep(2.5)
    assert seen_by(url, "dundee") == {("dundee", "no2"), ("dundee", "pm10")}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--provider", "glasgow", "--recipient", "dundee"],
         "error: provider: no council 'glasgow' is registered"),
        (["--provider", "aberdeen", "--recipient", "nowhere"],
         "error: recipient: no council 'nowhere' is registered"),
        (["--provider", "aberdeen", "--recipient", "dundee", "--starts", "2027-01-02T00:00:00Z",
          "--expires", "2027-01-01T00:00:00Z"], "error: expires_at: must be after starts_at"),
        (["--provider", "aberdeen", "--recipient", "dundee", "--resolution", "5m"],
         "error: resolution: one of raw, 15m, 1h, 1d"),
        (["--provider", "aberdeen", "--recipient", "dundee", "--kinds", "volcano"],
         "error: kinds: volcano not in the catalogue"),
        (["--provider", "aberdeen", "--recipient", "aberdeen"],
         "error: recipient: a council needs no agreement with itself"),
        (["--provider", "aberdeen", "--recipient", "dundee", "--expires", "tomorrow"],
         "error: expires_at: 'tomorrow' is not an ISO 8601 time"),
    ],
)  # fmt: skip
def test_bad_agreements_are_one_line_and_write_nothing(
    db: list[str], args: list[str], message: str
) -> None:
    full = {"--purpose": "p", "--legal-basis": "public_task"}
    extra = [x for k, v in full.items() if k not in args for x in (k, v)]
    r = cli("share", "grant", *args, *extra, *db)
    assert r.exit_code == 1
    assert r.output.strip() == message
    assert count_agreements(db[1]) == 0


def test_a_file_of_agreements_is_granted_whole_or_not_at_all(db: list[str], tmp_path: Path) -> None:
    good = {
        "provider": "aberdeen",
        "recipient": "public",
        "kinds": ["air_quality"],
        "resolution": "1d",
        "purpose": "open data",
        "legal_basis": "not_personal_data",
    }
    bad = {**good, "recipient": "dundee", "min_contributors": 0}
    path = tmp_path / "agreements.json"
    path.write_text(json.dumps([good, bad]))
    r = cli("share", "grant", "--file", str(path), *db)
    assert r.exit_code == 1
    assert r.output.strip() == (
        "error: agreement 2: min_contributors: a whole number of devices, at least 1;"
        " nothing was granted"
    )
    assert count_agreements(db[1]) == 0
    for text, message in (
        ("{not json", "not valid json"),
        ("[1, 2]", "expected an agreement (an object) or a list of them"),
        ("[" * 100_000, "not valid json"),
    ):
        path.write_text(text)
        r = cli("share", "grant", "--file", str(path), *db)
        assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1, r.output
        assert message in r.output
    yaml_path = tmp_path / "agreement.yaml"
    yaml_path.write_text(
        "provider: aberdeen\nrecipient: dundee\nresolution: 1h\npurpose: p\n"
        "legal_basis: public_task\nunknown_field: 1\n"
    )
    r = cli("share", "grant", "--file", str(yaml_path), *db)
    assert r.exit_code == 1 and "unknown field(s) unknown_field" in r.output
    path.write_text(json.dumps([good]))
    r = cli("share", "grant", "--file", str(path), "--json", *db)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)[0]["recipient"] == "public"
    assert count_agreements(db[1]) == 1


def test_audit_shows_reads_to_reader_and_provider_but_not_others(db: list[str]) -> None:
    url = db[1]
    assert cli("councils", "add", "fife", "--name", "Fife", *db).exit_code == 0
    r = cli("share", "grant", "--provider", "aberdeen", "--recipient", "dundee", "--purpose",
            "p", "--legal-basis", "public_task", "--json", *db)  # fmt: skip
    agreement_id = json.loads(r.stdout)[0]["id"]
    with psycopg.connect(url) as conn:
        conn.execute("SET ROLE civicpulse_council_dundee")
        conn.execute("SET search_path = tenant, public, pg_catalog")
        conn.execute(
            "INSERT INTO access_log_entries (what, rows, providers)"
            " VALUES ('GET /v1.1/Observations', 42, '{aberdeen}')"
        )
    for council in ("dundee", "aberdeen"):
        r = cli("share", "audit", "--council", council, "--json", *db)
        rows = json.loads(r.stdout)
        assert [(x["recipient"], x["agreement_ids"], x["rows"]) for x in rows] == [
            ("dundee", [agreement_id], 42)
        ]
    r = cli("share", "audit", "--council", "fife", "--json", *db)
    assert json.loads(r.stdout) == []
    r = cli("share", "audit", *db)
    assert "/v1.1/Observations" in r.stdout and "dundee" in r.stdout


def test_api_keys_are_shown_once_stored_hashed_and_revocable(db: list[str]) -> None:
    url = db[1]
    r = cli("api-keys", "create", "dundee", "--name", "Dundee data team", "--json", *db)
    assert r.exit_code == 0, r.output
    made = json.loads(r.stdout)
    key = made["key"]
    assert key.startswith(f"cpk_{made['id']}_")
    with psycopg.connect(url) as conn:
        stored = conn.execute("SELECT secret_hash FROM api_keys").fetchall()
    assert stored[0][0].startswith("$argon2") and key.split("_", 2)[2] not in stored[0][0]
    checked = sharing_store.check_api_key(url, key)
    assert checked is not None and checked.council == "dundee"
    assert sharing_store.check_api_key(url, key + "x") is None
    assert sharing_store.check_api_key(url, "cpk_999_nope") is None
    assert sharing_store.check_api_key(url, "not a key") is None
    r = cli("api-keys", "list", "--json", *db)
    assert "key" not in json.loads(r.stdout)[0] and "secret_hash" not in r.stdout
    assert cli("api-keys", "revoke", str(made["id"]), *db).exit_code == 0
    assert sharing_store.check_api_key(url, key) is None
    r = cli("api-keys", "create", "nowhere", "--name", "x", *db)
    assert r.output.strip() == "error: no council 'nowhere' is registered (civicpulse councils add)"


def test_sql_login_reads_only_its_council_and_stores_no_plain_password(db: list[str]) -> None:
    url = db[1]
    r = cli("share", "sql-login", "dundee", "--json", *db)
    assert r.exit_code == 0, r.output
    made = json.loads(r.stdout)
    assert made["user"] == "civicpulse_council_dundee"
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT rolcanlogin, rolpassword FROM pg_authid WHERE rolname = %s", (made["user"],)
        ).fetchone()
    assert row is not None and row[0] and row[1].startswith("SCRAM-SHA-256$")
    assert made["password"] not in row[1]
    # Logged in as the council (its role's own search_path applies): only its rows.
    login = psycopg.conninfo.make_conninfo(url, user=made["user"], password=made["password"])
    with psycopg.connect(login) as conn:
        councils = conn.execute("SELECT DISTINCT council FROM readings").fetchall()
        assert councils == [("dundee",)]
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT count(*) FROM public.readings")
    r = cli("share", "sql-login", "nowhere", *db)
    assert r.output.strip() == "error: no council 'nowhere' is registered (civicpulse councils add)"
