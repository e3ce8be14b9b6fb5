"""The device registry in PostgreSQL (sql/038, 039, storage/registry_store.py) on a real
database."""

from __future__ import annotations

import io

import psycopg
import pytest

from storage import migrate
from storage import registry_store as reg
from storage.connection import StoreUnavailable
from trust import Council, Device, RegistryError, ServiceAccount, check_broker_hash

pytestmark = pytest.mark.integration

TABLES = ("councils", "devices", "service_accounts")
BIN = Device("bin-0042", "edinburgh", "waste_bin", site="Leith Walk 12")
METER = Device("meter-7", "edinburgh", "energy_meter", personal_data=True)


@pytest.fixture
def db(fresh_db: str) -> str:
    migrate(fresh_db)
    reg.add_council(fresh_db, "edinburgh", "City of Edinburgh Council")
    return fresh_db


def text_values(url: str) -> list[str]:
    """Every value of every text column of the registry's tables."""
    with psycopg.connect(url) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns"
            " WHERE table_schema = 'public' AND table_name = ANY(%s)"
            " AND data_type IN ('text', 'character varying')",
            (list(TABLES),),
        ).fetchall()
        assert {c for _, c in columns} >= {"slug", "name", "sensor_id", "site", "secret_hash"}
        values = []
        for table, column in columns:
            rows = conn.execute(f'SELECT "{column}" FROM "{table}"').fetchall()
            values += [v for (v,) in rows if v is not None]
    return values


def hashes(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT sensor_id, secret_hash FROM devices"
            " UNION ALL SELECT name, secret_hash FROM service_accounts"
        ).fetchall()
    return dict(rows)


def broker_hashes(url: str) -> dict[str, str | None]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT sensor_id, broker_hash FROM devices"
            " UNION ALL SELECT name, broker_hash FROM service_accounts"
        ).fetchall()
    return dict(rows)


def test_councils_round_trip(db: str) -> None:
    reg.add_council(db, "aberdeen", "  Aberdeen City Council ")
    assert reg.list_councils(db) == [
        Council("aberdeen", "Aberdeen City Council"),
        Council("edinburgh", "City of Edinburgh Council"),
    ]
    with pytest.raises(RegistryError, match="council 'aberdeen' is already registered"):
        reg.add_council(db, "aberdeen", "again")
    with pytest.raises(RegistryError, match="must match"):
        reg.add_council(db, "Not A Slug", "x")
    with pytest.raises(RegistryError, match="needs a name"):
        reg.add_council(db, "leeds", " ")
    assert [c.slug for c in reg.list_councils(db)] == ["aberdeen", "edinburgh"]


def test_devices_add_list_disable_enable_and_authenticate(db: str) -> None:
    secret = reg.add_device(db, BIN)
    meter_secret = reg.add_device(db, METER)
    assert len(secret) == 32 and secret != meter_secret
    assert reg.list_devices(db) == [BIN, METER]
    assert reg.list_devices(db, "edinburgh") == [BIN, METER]
    assert reg.get_device(db, "meter-7") == METER and reg.get_device(db, "nope") is None

    stored = hashes(db)
    assert all(h.startswith("$argon2id$") for h in stored.values())
    values = text_values(db)
    assert not [v for v in values if secret in v or meter_secret in v]

    directory = reg.load_directory(db)
    assert directory.authenticate("bin-0042", secret) == BIN
    assert directory.authenticate("bin-0042", meter_secret) is None
    assert directory.authenticate("bin-0042", "") is None
    assert directory.authenticate("nobody", secret) is None
    assert directory.device("meter-7") == METER

    disabled = reg.disable_device(db, "bin-0042")
    assert not disabled.enabled and reg.list_devices(db)[0] == disabled
    assert reg.load_directory(db).authenticate("bin-0042", secret) is None
    assert reg.load_directory(db).device("bin-0042") == disabled  # still registered
    assert reg.enable_device(db, "bin-0042") == BIN
    assert reg.load_directory(db).authenticate("bin-0042", secret) == BIN


def test_rotating_a_secret_retires_the_old_one(db: str) -> None:
    old = reg.add_device(db, BIN)
    before = hashes(db)["bin-0042"]
    new = reg.rotate_secret(db, "bin-0042")
    assert new != old and hashes(db)["bin-0042"] != before
    directory = reg.load_directory(db)
    assert directory.authenticate("bin-0042", old) is None
    assert directory.authenticate("bin-0042", new) == BIN
    assert not [v for v in text_values(db) if old in v or new in v]


def test_bad_devices_are_refused_in_one_line(db: str) -> None:
    reg.add_device(db, BIN)
    with pytest.raises(RegistryError, match=r"^device 'bin-0042' is already registered$"):
        reg.add_device(db, BIN)
    with pytest.raises(RegistryError, match=r"^no council 'leeds' is registered$"):
        reg.add_device(db, Device("bin-9", "leeds", "waste_bin"))
    with pytest.raises(RegistryError, match=r"^no council 'leeds' is registered$"):
        reg.list_devices(db, "leeds")
    for change in (reg.disable_device, reg.enable_device, reg.rotate_secret):
        with pytest.raises(RegistryError, match=r"^no device 'ghost' is registered$"):
            change(db, "ghost")
    assert reg.list_devices(db) == [BIN]


def test_service_accounts_log_in_with_their_name(db: str) -> None:
    reg.add_device(db, BIN)
    secret = reg.add_service_account(db, ServiceAccount("bridge-1", "ingest"))
    reg.add_service_account(db, ServiceAccount("engine-1", "engine"))
    assert reg.list_service_accounts(db) == [
        ServiceAccount("bridge-1", "ingest"),
        ServiceAccount("engine-1", "engine"),
    ]
    assert hashes(db)["bridge-1"].startswith("$argon2id$")
    assert not [v for v in text_values(db) if secret in v]
    directory = reg.load_directory(db)
    assert directory.authenticate("bridge-1", secret) == ServiceAccount("bridge-1", "ingest")
    assert directory.authenticate("engine-1", secret) is None
    with pytest.raises(RegistryError, match="service account 'bridge-1' is already registered"):
        reg.add_service_account(db, ServiceAccount("bridge-1", "engine"))
    with pytest.raises(RegistryError, match="role must be one of ingest, engine"):
        reg.add_service_account(db, ServiceAccount("x", "admin"))  # type: ignore[arg-type]
    # one broker user name space: a device and an account never share a name
    with pytest.raises(RegistryError, match="is a device's sensor id"):
        reg.add_service_account(db, ServiceAccount("bin-0042", "engine"))
    with pytest.raises(RegistryError, match="is the name of a service account"):
        reg.add_device(db, Device("bridge-1", "edinburgh", "waste_bin"))


GOOD_CSV = """sensor_id,council,kind,site,personal_data
bin-1,edinburgh,waste_bin,Leith Walk,
aq-1,aberdeen,air_quality,,false
meter-1,edinburgh,energy_meter,"Flat 2, 10 High St",true
"""


def test_importing_a_good_file_registers_every_device(db: str) -> None:
    reg.add_council(db, "aberdeen", "Aberdeen City Council")
    imported = reg.import_devices(db, reg.read_device_csv(io.StringIO(GOOD_CSV)))
    assert [d for d, _ in imported] == [
        Device("bin-1", "edinburgh", "waste_bin", "Leith Walk"),
        Device("aq-1", "aberdeen", "air_quality"),
        Device("meter-1", "edinburgh", "energy_meter", "Flat 2, 10 High St", personal_data=True),
    ]
    assert sorted(d.sensor_id for d in reg.list_devices(db)) == ["aq-1", "bin-1", "meter-1"]
    directory = reg.load_directory(db)
    for device, secret in imported:
        assert directory.authenticate(device.sensor_id, secret) == device
    assert len({s for _, s in imported}) == 3
    assert not [v for v in text_values(db) for _, s in imported if s in v]


def test_a_file_with_a_bad_row_imports_nothing(db: str) -> None:
    reg.add_device(db, BIN)
    bad = (
        "sensor_id,council,kind,site,personal_data\n"
        "bin-1,edinburgh,waste_bin,,\n"
        "bin-2,nowhere,waste_bin,,\n"  # line 3: unknown council
        "bin-1,edinburgh,waste_bin,,\n"  # line 4: twice in the file
        "bin-0042,edinburgh,waste_bin,,\n"  # line 5: already registered
        "bin-3,edinburgh,toaster,,\n"  # line 6: unknown kind
        "bin 4,edinburgh,waste_bin,,\n"  # line 7: bad sensor id
        "bin-5,edinburgh,waste_bin,,maybe\n"  # line 8
        "bin-6,edinburgh,waste_bin,,,extra\n"  # line 9
        "bin-7,edinburgh,waste_bin,,\n"
    )
    with pytest.raises(reg.ImportRejected) as caught:
        reg.import_devices(db, reg.read_device_csv(io.StringIO(bad)))
    problems = caught.value.problems
    assert [p.split(":")[0] for p in problems] == [f"line {n}" for n in range(3, 10)]
    assert problems[0] == "line 3: no council 'nowhere' is registered"
    assert problems[1] == "line 4: sensor id 'bin-1' is already on line 2"
    assert problems[2] == "line 5: device 'bin-0042' is already registered"
    assert "kind 'toaster' is not in the catalogue" in problems[3]
    assert "sensor id 'bin 4' must match" in problems[4]
    assert "personal_data must be true or false" in problems[5]
    assert "more fields than the header" in problems[6]
    assert all("\n" not in p for p in problems) and "\n" not in str(caught.value)
    assert str(caught.value).startswith("line 3: no council 'nowhere' is registered")
    assert reg.list_devices(db) == [BIN]  # nothing written


def test_a_file_without_the_columns_is_refused() -> None:
    with pytest.raises(RegistryError, match=r"^line 1: the header must name the columns"):
        reg.read_device_csv(io.StringIO("id,council,kind\nbin-1,edinburgh,waste_bin\n"))
    rows = reg.read_device_csv(io.StringIO("kind, sensor_id ,council\nwaste_bin,bin-1,x\n"))
    assert rows == [(2, {"kind": "waste_bin", "sensor_id": "bin-1", "council": "x"})]


def test_an_open_connection_keeps_the_callers_transaction(db: str) -> None:
    with psycopg.connect(db) as conn, conn.transaction() as tx:
        reg.add_device(conn, BIN)
        with pytest.raises(RegistryError, match="council 'edinburgh' is already registered"):
            reg.add_council(conn, "edinburgh", "again")  # a savepoint rolls back, no more
        assert reg.list_devices(conn) == [BIN]
        raise psycopg.Rollback(tx)
    assert reg.list_devices(db) == []


def test_the_reader_role_cannot_read_secret_hashes(db: str) -> None:
    reg.add_device(db, BIN)
    with psycopg.connect(db) as conn:
        for table in TABLES:
            with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
                conn.execute("SET LOCAL ROLE civicpulse_reader")  # sql/030 made it
                conn.execute(f"SELECT * FROM {table}")
        conn.execute("SELECT civicpulse_grant_reader()")  # re-granting the contract adds none
        grants = conn.execute(
            "SELECT table_name FROM information_schema.role_table_grants"
            " WHERE grantee IN ('civicpulse_reader', 'PUBLIC') AND table_name = ANY(%s)",
            (list(TABLES),),
        ).fetchall()
    assert grants == []


def test_outages_and_missing_tables_are_one_line_errors(fresh_db: str) -> None:
    with pytest.raises(StoreUnavailable, match="cannot connect"):
        reg.list_devices("postgresql://postgres@127.0.0.1:1/nowhere")
    with pytest.raises(RegistryError, match="registry tables are missing"):
        reg.list_councils(fresh_db)  # not migrated


def test_every_new_secret_also_gets_a_mosquitto_hash(db: str) -> None:
    reg.add_council(db, "aberdeen", "Aberdeen City Council")
    secrets = {"bin-0042": reg.add_device(db, BIN)}
    imported = reg.import_devices(db, reg.read_device_csv(io.StringIO(GOOD_CSV)))
    secrets |= {d.sensor_id: s for d, s in imported}
    secrets["bridge-1"] = reg.add_service_account(db, ServiceAccount("bridge-1", "ingest"))
    stored = broker_hashes(db)
    assert set(stored) == set(secrets)
    for name, secret in secrets.items():
        made = stored[name]
        assert made is not None and made.startswith("$7$101$"), name
        assert check_broker_hash(made, secret), name
        assert not [o for o in secrets.values() if o != secret and check_broker_hash(made, o)]
    assert len(set(stored.values())) == len(stored)  # a salt of its own each
    assert not [v for v in text_values(db) for s in secrets.values() if s in v]

    old = stored["bin-0042"]
    new_secret = reg.rotate_secret(db, "bin-0042")
    made = broker_hashes(db)["bin-0042"]
    assert made is not None and made != old and check_broker_hash(made, new_secret)
    assert not check_broker_hash(made, secrets["bin-0042"])
    new_bridge = reg.rotate_account_secret(db, "bridge-1")
    made = broker_hashes(db)["bridge-1"]
    assert made is not None and check_broker_hash(made, new_bridge)
    directory = reg.load_directory(db)
    assert directory.authenticate("bridge-1", new_bridge) == ServiceAccount("bridge-1", "ingest")
    assert directory.authenticate("bridge-1", secrets["bridge-1"]) is None
    with pytest.raises(RegistryError, match=r"^no service account 'ghost' is registered$"):
        reg.rotate_account_secret(db, "ghost")


def test_mosquittos_files_leave_out_whoever_cannot_log_in(db: str) -> None:
    reg.add_device(db, BIN)
    reg.add_device(db, METER)
    reg.add_device(db, Device("bin-9", "edinburgh", "waste_bin"))
    reg.disable_device(db, "bin-9")
    reg.add_service_account(db, ServiceAccount("bridge-1", "ingest"))
    reg.add_service_account(db, ServiceAccount("engine-1", "engine"))
    with psycopg.connect(db) as conn:  # as if made before migration 039
        conn.execute("UPDATE devices SET broker_hash = NULL WHERE sensor_id = 'meter-7'")
        conn.execute("UPDATE service_accounts SET broker_hash = NULL WHERE name = 'engine-1'")
        with pytest.raises(psycopg.errors.CheckViolation), conn.transaction():
            conn.execute("UPDATE devices SET broker_hash = 'plain' WHERE sensor_id = 'bin-0042'")
    files = reg.load_broker_files(db)
    assert (files.devices, files.accounts) == (("bin-0042",), ("bridge-1",))
    assert files.disabled == ("bin-9",)
    assert files.without_hash == ("engine-1", "meter-7")
    stored = broker_hashes(db)
    assert files.passwd.splitlines()[1:] == [
        f"bin-0042:{stored['bin-0042']}",
        f"bridge-1:{stored['bridge-1']}",
    ]
    assert "user bin-0042\ntopic write civicpulse/edinburgh/waste_bin/bin-0042\n" in files.acl
    assert "user bridge-1\ntopic read civicpulse/#\n" in files.acl
    assert "meter-7" not in files.acl and "bin-9" not in files.acl

    reg.rotate_secret(db, "meter-7")  # a new secret brings a broker hash
    reg.rotate_account_secret(db, "engine-1")
    files = reg.load_broker_files(db)
    assert files.devices == ("bin-0042", "meter-7") and files.without_hash == ()
    assert files.accounts == ("bridge-1", "engine-1")
