"""The device registry in PostgreSQL (sql/038, 039): councils, devices and service accounts.

Every device and service account has a broker secret: ``secrets.token_urlsafe(24)``,
returned once by the call that makes it (add, rotate, import) and stored only hashed: its
argon2 hash (what civicpulse checks) and its broker hash, the same secret in Mosquitto's
password-file format (trust/mosquitto.py; what ``civicpulse devices sync`` writes out, as
Mosquitto cannot check argon2). Functions take a database URL (one connection and one
transaction per call) or an open connection (their work runs in a transaction, or a
savepoint, of it). Whatever the database refuses comes back as a one-line
:class:`trust.RegistryError`; an outage as :class:`storage.connection.StoreUnavailable`.
"""

from __future__ import annotations

import csv
import logging
import secrets
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import MappingProxyType
from typing import Any

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from psycopg import errors

from sensors.topics import SENSOR_ID_PATTERN
from storage.connection import StoreUnavailable, connect
from trust.directory import StaticDirectory
from trust.mosquitto import SALT_BYTES, BrokerFiles, broker_hash
from trust.mosquitto import render as render_broker_files
from trust.registry import Council, Device, RegistryError, ServiceAccount, check_council_slug

log = logging.getLogger(__name__)

Db = str | psycopg.Connection[Any]
"""A database URL, or an open connection the caller owns."""

NumberedRow = tuple[int, Mapping[str, Any]]
"""A CSV row of devices and its line number in the file (the header is line 1)."""

CSV_COLUMNS = ("sensor_id", "council", "kind", "site", "personal_data")
REQUIRED_COLUMNS = ("sensor_id", "council", "kind")
ROLES = ("ingest", "engine")

# Writes that claim a broker user name (a device's sensor id, an account's name) take this
# lock, so the check that a name is not taken by the other kind of principal cannot race.
REGISTRY_LOCK = 0x72656769  # "regi"

_HASHER = PasswordHasher()
_DEVICE_COLUMNS = "sensor_id, council, kind, site, enabled, personal_data"
_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0", ""}


class ImportRejected(RegistryError):
    """A devices file with bad rows: nothing was imported. ``problems`` has one line each."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        more = len(self.problems) - 1
        tail = f" (and {more} more bad row{'s' if more > 1 else ''})" if more else ""
        super().__init__(f"{self.problems[0]}{tail}; nothing was imported")


# --- secrets ----------------------------------------------------------------------------


def new_secret() -> str:
    """A fresh broker secret (32 URL-safe characters)."""
    return secrets.token_urlsafe(24)


def hash_secret(secret: str) -> str:
    """The argon2id hash stored in place of ``secret``."""
    return _HASHER.hash(secret)


def hash_for_broker(secret: str) -> str:
    """The Mosquitto ``$7$`` hash (PBKDF2-SHA512, fresh salt) also stored for ``secret``."""
    return broker_hash(secret, secrets.token_bytes(SALT_BYTES))


def hashed(secret: str) -> tuple[str, str]:
    """The two hashes stored for ``secret``: argon2 (``secret_hash``), Mosquitto's
    (``broker_hash``)."""
    return hash_secret(secret), hash_for_broker(secret)


def verify_secret(stored_hash: str, secret: str) -> bool:
    """Whether ``secret`` matches ``stored_hash``; a malformed hash matches nothing."""
    try:
        return _HASHER.verify(stored_hash, secret)
    except (VerificationError, InvalidHashError):  # VerifyMismatchError is a VerificationError
        return False


# --- plumbing ---------------------------------------------------------------------------


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextmanager
def _cursor(db: Db, what: str) -> Iterator[psycopg.Cursor[Any]]:
    """A cursor in one transaction on ``db``; outages and schema gaps translated."""
    try:
        if isinstance(db, str):
            with connect(db) as conn, conn.transaction(), conn.cursor() as cur:
                yield cur
        else:
            with db.transaction(), db.cursor() as cur:
                yield cur
    except errors.UndefinedTable as exc:
        raise RegistryError(
            f"{what} failed: the registry tables are missing (apply the migrations:"
            " civicpulse db migrate)"
        ) from exc
    except psycopg.OperationalError as exc:
        raise StoreUnavailable(f"{what} failed: {_first_line(exc)}") from exc
    except (psycopg.IntegrityError, psycopg.DataError) as exc:  # what a caller did not name
        raise RegistryError(f"{what} failed: {_first_line(exc)}") from exc


def _lock(cur: psycopg.Cursor[Any]) -> None:
    cur.execute("SELECT pg_advisory_xact_lock(%s)", (REGISTRY_LOCK,))


def _row_to_device(row: Sequence[Any]) -> Device:
    sensor_id, council, kind, site, enabled, personal_data = row
    return Device(sensor_id, council, kind, site, bool(enabled), bool(personal_data))


def _council_exists(cur: psycopg.Cursor[Any], slug: str) -> bool:
    cur.execute("SELECT 1 FROM councils WHERE slug = %s", (slug,))
    return cur.fetchone() is not None


def _taken_by_account(cur: psycopg.Cursor[Any], names: Sequence[str]) -> set[str]:
    cur.execute("SELECT name FROM service_accounts WHERE name = ANY(%s)", (list(names),))
    return {name for (name,) in cur.fetchall()}


def _registered_devices(cur: psycopg.Cursor[Any], sensor_ids: Sequence[str]) -> set[str]:
    cur.execute("SELECT sensor_id FROM devices WHERE sensor_id = ANY(%s)", (list(sensor_ids),))
    return {sid for (sid,) in cur.fetchall()}


# --- councils ---------------------------------------------------------------------------


def add_council(db: Db, slug: str, name: str) -> Council:
    """Register a council; :class:`RegistryError` if the slug is taken or malformed."""
    council = Council(check_council_slug(slug), name.strip())
    if not council.name:
        raise RegistryError(f"council {slug!r} needs a name")
    try:
        with _cursor(db, f"adding council {slug!r}") as cur:
            cur.execute(
                "INSERT INTO councils (slug, name) VALUES (%s, %s)", (council.slug, council.name)
            )
    except RegistryError as exc:
        if isinstance(exc.__cause__, errors.UniqueViolation):
            raise RegistryError(f"council {slug!r} is already registered") from exc
        raise
    return council


def list_councils(db: Db) -> list[Council]:
    """Every council, by slug."""
    with _cursor(db, "listing councils") as cur:
        cur.execute("SELECT slug, name FROM councils ORDER BY slug")
        return [Council(slug, name) for slug, name in cur.fetchall()]


# --- devices ----------------------------------------------------------------------------


def _insert_devices(cur: psycopg.Cursor[Any], devices: Sequence[Device]) -> list[str]:
    """Insert ``devices`` with fresh secrets; returns the plain secrets, in order."""
    plain = [new_secret() for _ in devices]
    cur.executemany(
        f"INSERT INTO devices ({_DEVICE_COLUMNS}, secret_hash, broker_hash)"
        " VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
        [
            (d.sensor_id, d.council, d.kind, d.site, d.enabled, d.personal_data, *hashed(s))
            for d, s in zip(devices, plain, strict=True)
        ],
    )
    return plain


def _translate_device_error(exc: RegistryError, device: Device) -> RegistryError:
    cause = exc.__cause__
    if isinstance(cause, errors.UniqueViolation):
        return RegistryError(f"device {device.sensor_id!r} is already registered")
    if isinstance(cause, errors.ForeignKeyViolation):
        return RegistryError(f"no council {device.council!r} is registered")
    return exc


def add_device(db: Db, device: Device) -> str:
    """Register ``device``; returns its new secret (stored only hashed)."""
    try:
        with _cursor(db, f"adding device {device.sensor_id!r}") as cur:
            _lock(cur)
            if not _council_exists(cur, device.council):
                raise RegistryError(f"no council {device.council!r} is registered")
            if _registered_devices(cur, [device.sensor_id]):
                raise RegistryError(f"device {device.sensor_id!r} is already registered")
            if _taken_by_account(cur, [device.sensor_id]):
                raise RegistryError(
                    f"{device.sensor_id!r} is the name of a service account: a device cannot"
                    " log in with it"
                )
            [secret] = _insert_devices(cur, [device])
    except RegistryError as exc:
        translated = _translate_device_error(exc, device)
        if translated is exc:
            raise
        raise translated from exc.__cause__
    return secret


def get_device(db: Db, sensor_id: str) -> Device | None:
    """The registered device with this sensor id, or None."""
    with _cursor(db, f"reading device {sensor_id!r}") as cur:
        cur.execute(f"SELECT {_DEVICE_COLUMNS} FROM devices WHERE sensor_id = %s", (sensor_id,))
        row = cur.fetchone()
    return None if row is None else _row_to_device(row)


def list_devices(db: Db, council: str | None = None) -> list[Device]:
    """Registered devices (all, or one council's), by sensor id; never their secrets."""
    with _cursor(db, "listing devices") as cur:
        if council is not None and not _council_exists(cur, council):
            raise RegistryError(f"no council {council!r} is registered")
        cur.execute(
            f"SELECT {_DEVICE_COLUMNS} FROM devices"
            " WHERE %s::text IS NULL OR council = %s ORDER BY sensor_id",
            (council, council),
        )
        return [_row_to_device(r) for r in cur.fetchall()]


def _set_enabled(db: Db, sensor_id: str, enabled: bool) -> Device:
    verb = "enabling" if enabled else "disabling"
    with _cursor(db, f"{verb} device {sensor_id!r}") as cur:
        cur.execute(
            f"UPDATE devices SET enabled = %s, updated_at = now() WHERE sensor_id = %s"
            f" RETURNING {_DEVICE_COLUMNS}",
            (enabled, sensor_id),
        )
        row = cur.fetchone()
    if row is None:
        raise RegistryError(f"no device {sensor_id!r} is registered")
    return _row_to_device(row)


def disable_device(db: Db, sensor_id: str) -> Device:
    """Stop a device logging in and publishing (it stays registered); returns it."""
    return _set_enabled(db, sensor_id, False)


def enable_device(db: Db, sensor_id: str) -> Device:
    """Let a disabled device log in again with its current secret; returns it."""
    return _set_enabled(db, sensor_id, True)


def rotate_secret(db: Db, sensor_id: str) -> str:
    """Give a device a new secret (returned once); the old one stops working."""
    secret = new_secret()
    with _cursor(db, f"rotating the secret of device {sensor_id!r}") as cur:
        cur.execute(
            "UPDATE devices SET secret_hash = %s, broker_hash = %s, updated_at = now()"
            " WHERE sensor_id = %s",
            (*hashed(secret), sensor_id),
        )
        if cur.rowcount != 1:
            raise RegistryError(f"no device {sensor_id!r} is registered")
    return secret


# --- import -----------------------------------------------------------------------------


def read_device_csv(lines: Iterable[str]) -> list[NumberedRow]:
    """The rows of a devices CSV (columns sensor_id, council, kind[, site, personal_data])
    with their line numbers; :class:`RegistryError` for a header without them."""
    reader = csv.DictReader(lines)
    header = [c.strip() for c in reader.fieldnames or []]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if missing or unknown or len(set(header)) != len(header):
        raise RegistryError(
            f"line 1: the header must name the columns {', '.join(CSV_COLUMNS)}"
            f" (site and personal_data may be left out), not {','.join(header) or 'nothing'}"
        )
    reader.fieldnames = header
    rows: list[NumberedRow] = []
    try:
        for row in reader:
            rows.append((reader.line_num, row))
    except csv.Error as exc:
        raise RegistryError(f"line {reader.line_num}: {exc}") from exc
    return rows


def _parse_flag(value: str) -> bool:
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise RegistryError(f"personal_data must be true or false, not {value!r}")


def _row_device(row: Mapping[str, Any]) -> Device:
    if None in row:  # csv.DictReader files the fields beyond the header under None
        raise RegistryError("more fields than the header names")
    values = {c: str(row.get(c) or "").strip() for c in CSV_COLUMNS}
    empty = [c for c in REQUIRED_COLUMNS if not values[c]]
    if empty:
        raise RegistryError(f"{' and '.join(empty)} must not be empty")
    return Device(
        sensor_id=values["sensor_id"],
        council=values["council"],
        kind=values["kind"],
        site=values["site"] or None,
        enabled=True,
        personal_data=_parse_flag(values["personal_data"]),
    )


def import_devices(db: Db, rows: Iterable[NumberedRow]) -> list[tuple[Device, str]]:
    """Register every device of ``rows`` (see :func:`read_device_csv`), or none of them.

    Returns each new device with its secret. Any bad row (malformed or unknown sensor id,
    kind or council, a sensor id twice in the rows or already registered) raises
    :class:`ImportRejected`, one line per bad row naming its line, and nothing is written.
    """
    numbered = list(rows)
    with _cursor(db, "importing devices") as cur:
        _lock(cur)
        cur.execute("SELECT slug FROM councils")
        councils = {slug for (slug,) in cur.fetchall()}
        ids = [str(r.get("sensor_id") or "").strip() for _, r in numbered]
        registered = _registered_devices(cur, ids)
        accounts = _taken_by_account(cur, ids)
        problems: list[str] = []
        first_line: dict[str, int] = {}
        devices: list[Device] = []
        for line, row in numbered:
            try:
                device = _row_device(row)
                sid = device.sensor_id
                if sid in first_line:
                    raise RegistryError(f"sensor id {sid!r} is already on line {first_line[sid]}")
                first_line[sid] = line
                if device.council not in councils:
                    raise RegistryError(f"no council {device.council!r} is registered")
                if sid in registered:
                    raise RegistryError(f"device {sid!r} is already registered")
                if sid in accounts:
                    raise RegistryError(f"{sid!r} is the name of a service account")
            except RegistryError as exc:
                problems.append(f"line {line}: {exc}")
                continue
            devices.append(device)
        if problems:
            raise ImportRejected(problems)
        plain = _insert_devices(cur, devices)
    return list(zip(devices, plain, strict=True))


# --- service accounts -------------------------------------------------------------------


def add_service_account(db: Db, account: ServiceAccount) -> str:
    """Register a bridge or engine account; returns its new secret (stored hashed)."""
    if SENSOR_ID_PATTERN.fullmatch(account.name) is None:
        raise RegistryError(
            f"service account name {account.name!r} must match {SENSOR_ID_PATTERN.pattern}"
        )
    if account.role not in ROLES:
        raise RegistryError(f"role must be one of {', '.join(ROLES)}, not {account.role!r}")
    secret = new_secret()
    try:
        with _cursor(db, f"adding service account {account.name!r}") as cur:
            _lock(cur)
            if _registered_devices(cur, [account.name]):
                raise RegistryError(
                    f"{account.name!r} is a device's sensor id: a service account cannot"
                    " log in with it"
                )
            cur.execute(
                "INSERT INTO service_accounts (name, role, secret_hash, broker_hash)"
                " VALUES (%s, %s, %s, %s)",
                (account.name, account.role, *hashed(secret)),
            )
    except RegistryError as exc:
        if isinstance(exc.__cause__, errors.UniqueViolation):
            raise RegistryError(f"service account {account.name!r} is already registered") from exc
        raise
    return secret


def rotate_account_secret(db: Db, name: str) -> str:
    """Give a service account a new secret (returned once); the old one stops working."""
    secret = new_secret()
    with _cursor(db, f"rotating the secret of service account {name!r}") as cur:
        cur.execute(
            "UPDATE service_accounts SET secret_hash = %s, broker_hash = %s WHERE name = %s",
            (*hashed(secret), name),
        )
        if cur.rowcount != 1:
            raise RegistryError(f"no service account {name!r} is registered")
    return secret


def list_service_accounts(db: Db) -> list[ServiceAccount]:
    """Every service account, by name; never their secrets."""
    with _cursor(db, "listing service accounts") as cur:
        cur.execute("SELECT name, role FROM service_accounts ORDER BY name")
        return [ServiceAccount(name, role) for name, role in cur.fetchall()]


# --- the directory the brokers ask ------------------------------------------------------


def load_directory(conninfo: Db) -> StaticDirectory:
    """A snapshot of the registry that authenticates with argon2 (see trust.directory).

    A device row the model no longer accepts (say its kind left the catalogue) is left out
    with a warning, so it cannot log in, rather than keeping every other device out.
    """
    devices: dict[str, Device] = {}
    accounts: dict[str, ServiceAccount] = {}
    hashes: dict[str, str] = {}
    with _cursor(conninfo, "loading the registry") as cur:
        cur.execute(f"SELECT {_DEVICE_COLUMNS}, secret_hash FROM devices")
        for row in cur.fetchall():
            try:
                device = _row_to_device(row[:-1])
            except RegistryError as exc:
                log.warning("registry: device %r left out of the directory: %s", row[0], exc)
                continue
            devices[device.sensor_id] = device
            hashes[device.sensor_id] = row[-1]
        cur.execute("SELECT name, role, secret_hash FROM service_accounts")
        for name, role, stored in cur.fetchall():
            if name in devices:  # the lock keeps names apart; a device would shadow it
                log.warning("registry: service account %r shares a device's name", name)
                continue
            accounts[name] = ServiceAccount(name, role)
            hashes[name] = stored
    return StaticDirectory(
        devices=MappingProxyType(devices),
        accounts=MappingProxyType(accounts),
        hashes=MappingProxyType(hashes),
        verify=verify_secret,
    )


# --- Mosquitto's files ------------------------------------------------------------------


def load_broker_files(db: Db) -> BrokerFiles:
    """Mosquitto's password file and ACL for the registry as it is now (one statement, so
    one snapshot). A device row the model no longer accepts is left out with a warning, as
    in :func:`load_directory`: it cannot log in.
    """
    devices: list[Device] = []
    accounts: list[ServiceAccount] = []
    hashes: dict[str, str] = {}
    with _cursor(db, "reading the registry for Mosquitto") as cur:
        cur.execute(
            f"SELECT {_DEVICE_COLUMNS}, NULL, broker_hash FROM devices"
            " UNION ALL SELECT name, NULL, NULL, NULL, NULL, NULL, role, broker_hash"
            " FROM service_accounts"
        )
        rows = cur.fetchall()
    for *columns, role, stored in rows:
        name = columns[0]
        if role is not None:
            accounts.append(ServiceAccount(name, role))
        else:
            try:
                devices.append(_row_to_device(columns))
            except RegistryError as exc:
                log.warning("registry: device %r left out of Mosquitto's files: %s", name, exc)
                continue
        if stored is not None:
            hashes[name] = stored
    return render_broker_files(devices, accounts, hashes)
