"""`civicpulse councils|devices|accounts` against a real database."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import psycopg
import pytest
from click.testing import Result
from typer.testing import CliRunner

from civicpulse.cli import app
from storage import migrate
from storage import registry_store as reg
from trust import Device, ServiceAccount

pytestmark = pytest.mark.integration


def cli(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def everything_stored(url: str) -> str:
    """Every text value of the registry's tables, joined (to look for a plain secret)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT concat_ws(' ', sensor_id, council, kind, site, secret_hash) FROM devices"
            " UNION ALL SELECT concat_ws(' ', name, role, secret_hash) FROM service_accounts"
            " UNION ALL SELECT concat_ws(' ', slug, name) FROM councils"
        ).fetchall()
    return "\n".join(r for (r,) in rows)


@pytest.fixture
def db(fresh_db: str) -> list[str]:
    migrate(fresh_db)
    return ["--database-url", fresh_db]


def test_councils_devices_and_accounts_round_trip(db: list[str]) -> None:
    url = db[1]
    r = cli("councils", "add", "edinburgh", "--name", "City of Edinburgh Council", "--json", *db)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"slug": "edinburgh", "name": "City of Edinburgh Council"}
    r = cli("councils", "add", "edinburgh", "--name", "again", *db)
    assert r.exit_code == 1
    assert r.output.strip() == "error: council 'edinburgh' is already registered"
    r = cli("councils", "list", "--json", *db)
    assert json.loads(r.stdout) == [{"slug": "edinburgh", "name": "City of Edinburgh Council"}]

    r = cli("devices", "add", "bin-0042", "--council", "edinburgh", "--kind", "waste_bin",
            "--site", "Leith Walk 12", "--json", *db)  # fmt: skip
    assert r.exit_code == 0, r.output
    added = json.loads(r.stdout)
    secret = added.pop("secret")
    assert added == {"sensor_id": "bin-0042", "council": "edinburgh", "kind": "waste_bin",
                     "site": "Leith Walk 12", "enabled": True, "personal_data": False}  # fmt: skip
    r = cli("devices", "add", "meter-7", "--council", "edinburgh", "--kind", "energy_meter",
            "--personal-data", *db)  # fmt: skip
    assert r.exit_code == 0, r.output
    meter_secret = r.stdout.strip()  # the human form: the secret alone on stdout
    assert len(meter_secret) == 32 and "shown once" in r.stderr
    r = cli("devices", "add", "bin-0042", "--council", "edinburgh", "--kind", "waste_bin", *db)
    assert r.exit_code == 1
    assert r.output.strip() == "error: device 'bin-0042' is already registered"
    r = cli("devices", "add", "bin-9", "--council", "leeds", "--kind", "waste_bin", *db)
    assert r.exit_code == 1 and r.output.strip() == "error: no council 'leeds' is registered"
    r = cli("devices", "add", "bin-9", "--council", "edinburgh", "--kind", "toaster", *db)
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1
    assert "kind 'toaster' is not in the catalogue" in r.output

    r = cli("devices", "list", "--json", *db)
    listed = json.loads(r.stdout)
    assert [d["sensor_id"] for d in listed] == ["bin-0042", "meter-7"]
    assert listed[1]["personal_data"] is True
    assert all(set(d) == set(added) for d in listed)  # no secret, no hash
    r = cli("devices", "list", *db)
    assert r.exit_code == 0 and "bin-0042" in r.output
    assert secret not in r.output and "argon2" not in r.output
    assert json.loads(cli("devices", "list", "--council", "edinburgh", "--json", *db).stdout)

    stored = everything_stored(url)
    assert "$argon2id$" in stored and secret not in stored and meter_secret not in stored
    directory = reg.load_directory(url)
    assert directory.authenticate("bin-0042", secret) == Device(
        "bin-0042", "edinburgh", "waste_bin", "Leith Walk 12"
    )
    assert directory.authenticate("bin-0042", meter_secret) is None

    r = cli("devices", "disable", "bin-0042", "--json", *db)
    assert r.exit_code == 0 and json.loads(r.stdout)["enabled"] is False
    assert reg.load_directory(url).authenticate("bin-0042", secret) is None
    r = cli("devices", "enable", "bin-0042", *db)
    assert r.exit_code == 0 and "is enabled" in r.output
    assert reg.load_directory(url).authenticate("bin-0042", secret) is not None

    r = cli("devices", "rotate", "bin-0042", "--json", *db)
    assert r.exit_code == 0, r.output
    rotated = json.loads(r.stdout)
    assert rotated["sensor_id"] == "bin-0042" and rotated["secret"] != secret
    directory = reg.load_directory(url)
    assert directory.authenticate("bin-0042", secret) is None
    assert directory.authenticate("bin-0042", rotated["secret"]) is not None
    assert rotated["secret"] not in everything_stored(url)
    r = cli("devices", "disable", "ghost", *db)
    assert r.exit_code == 1 and r.output.strip() == "error: no device 'ghost' is registered"

    r = cli("accounts", "add", "bridge-1", "--role", "ingest", "--json", *db)
    assert r.exit_code == 0, r.output
    account = json.loads(r.stdout)
    assert (account["name"], account["role"]) == ("bridge-1", "ingest")
    assert reg.load_directory(url).authenticate("bridge-1", account["secret"]) == ServiceAccount(
        "bridge-1", "ingest"
    )
    assert account["secret"] not in everything_stored(url)
    r = cli("accounts", "add", "root", "--role", "admin", *db)
    assert r.exit_code != 0 and "--role must be one of ingest, engine" in r.output
    r = cli("accounts", "list", "--json", *db)
    assert json.loads(r.stdout) == [{"name": "bridge-1", "role": "ingest"}]
    r = cli("accounts", "rotate", "bridge-1", "--json", *db)
    assert r.exit_code == 0, r.output
    rotated = json.loads(r.stdout)
    assert rotated["name"] == "bridge-1" and rotated["secret"] != account["secret"]
    directory = reg.load_directory(url)
    assert directory.authenticate("bridge-1", account["secret"]) is None
    assert directory.authenticate("bridge-1", rotated["secret"]) is not None
    r = cli("accounts", "rotate", "ghost", *db)
    assert r.exit_code == 1
    assert r.output.strip() == "error: no service account 'ghost' is registered"


GOOD = """sensor_id,council,kind,site,personal_data
bin-1,edinburgh,waste_bin,Leith Walk,
aq-1,aberdeen,air_quality,,false
meter-1,edinburgh,energy_meter,"Flat 2, 10 High St",true
"""


def _councils(db: list[str]) -> None:
    for slug in ("edinburgh", "aberdeen"):
        assert cli("councils", "add", slug, "--name", slug.title(), *db).exit_code == 0


def test_importing_a_csv_prints_each_secret_once(db: list[str], tmp_path: Path) -> None:
    _councils(db)
    file = tmp_path / "devices.csv"
    file.write_text(GOOD, encoding="utf-8")
    r = cli("devices", "import", str(file), *db)
    assert r.exit_code == 0, r.output
    printed = list(csv.DictReader(io.StringIO(r.stdout)))
    assert [row["sensor_id"] for row in printed] == ["bin-1", "aq-1", "meter-1"]
    assert "imported 3 device(s)" in r.stderr
    directory = reg.load_directory(db[1])
    for row in printed:
        assert directory.authenticate(row["sensor_id"], row["secret"]) is not None
    assert directory.device("meter-1") == Device(
        "meter-1", "edinburgh", "energy_meter", "Flat 2, 10 High St", personal_data=True
    )
    stored = everything_stored(db[1])
    assert not [row for row in printed if row["secret"] in stored]

    second = tmp_path / "more.csv"
    second.write_text("sensor_id,council,kind\nbin-2,aberdeen,waste_bin\n", encoding="utf-8")
    r = cli("devices", "import", str(second), "--json", *db)
    assert r.exit_code == 0, r.output
    [new] = json.loads(r.stdout)
    assert (new["sensor_id"], new["site"], len(new["secret"])) == ("bin-2", None, 32)
    listed = json.loads(cli("devices", "list", "--json", *db).stdout)
    assert len(listed) == 4 and not [d for d in listed if "secret" in d]


def test_a_bad_csv_names_its_lines_and_imports_nothing(db: list[str], tmp_path: Path) -> None:
    _councils(db)
    file = tmp_path / "bad.csv"
    file.write_text(
        "sensor_id,council,kind,site,personal_data\n"
        "bin-1,edinburgh,waste_bin,,\n"
        "bin-2,nowhere,waste_bin,,\n"
        "bin-3,aberdeen,waste_bin,,\n"
        "bin-1,aberdeen,waste_bin,,\n",
        encoding="utf-8",
    )
    r = cli("devices", "import", str(file), *db)
    assert r.exit_code != 0
    assert r.stdout == ""  # no secrets for devices that were not made
    assert r.stderr.splitlines() == [
        f"error: {file} line 3: no council 'nowhere' is registered",
        f"error: {file} line 5: sensor id 'bin-1' is already on line 2",
        f"error: {file}: 2 bad rows, nothing was imported",
    ]
    assert json.loads(cli("devices", "list", "--json", *db).stdout) == []

    r = cli("devices", "import", str(tmp_path / "missing.csv"), *db)
    assert r.exit_code != 0
    headerless = tmp_path / "headerless.csv"
    headerless.write_text("bin-1,edinburgh,waste_bin\n", encoding="utf-8")
    r = cli("devices", "import", str(headerless), *db)
    assert r.exit_code == 1 and len(r.output.strip().splitlines()) == 1
    assert "line 1: the header must name the columns" in r.output


def test_a_database_that_is_down_is_one_line(tmp_path: Path) -> None:
    down = ["--database-url", "postgresql://postgres@127.0.0.1:1/nowhere"]
    for args in (
        ("councils", "list"),
        ("devices", "list", "--json"),
        ("devices", "add", "bin-1", "--council", "x", "--kind", "waste_bin"),
        ("accounts", "add", "bridge-1", "--role", "ingest"),
    ):
        r = cli(*args, *down)
        assert r.exit_code == 1, args
        [line] = r.output.strip().splitlines()
        assert line.startswith("error: cannot connect to the database")
        assert "is PostgreSQL running" in line
