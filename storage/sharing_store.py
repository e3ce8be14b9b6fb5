"""Sharing agreements, API keys and the access log in PostgreSQL (sql/040).

Agreements are parsed and checked by the pure trust/agreements.py, then stored; the database
enforces them (the tenant views) the moment they are committed, and a revocation the moment
it is. An API key is ``cpk_<id>_<secret>``: the id finds the row, the secret is checked
against its argon2 hash (the plain key is returned once, by :func:`create_api_key`).
Whatever the database refuses comes back as one line (:class:`AgreementError` or
:class:`trust.RegistryError`); an outage as :class:`storage.connection.StoreUnavailable`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from psycopg import sql

from storage.registry_store import Db, hash_secret, verify_secret
from storage.registry_store import _cursor as cursor
from trust.agreements import Agreement, AgreementError, Resolution, Scope, parse_agreement
from trust.registry import RegistryError, check_council_slug

KEY_PREFIX = "cpk_"

_COLUMNS = (
    "id, provider, recipient, kinds, metrics, sites, sensors, resolution, purpose, legal_basis,"
    " legal_basis_text, operations, min_contributors, starts_at, expires_at, status,"
    " granted_at, withdrawn_at"
)


@dataclass(frozen=True, slots=True)
class AccessRecord:
    """One read through the API, as the database stamped it."""

    id: int
    at: datetime
    recipient: str
    key_id: int | None
    agreement_ids: list[int]
    providers: list[str]
    what: str
    rows: int


@dataclass(frozen=True, slots=True)
class ApiKey:
    """A partner council's API key (never its secret)."""

    id: int
    council: str
    name: str
    rate_per_minute: int
    created_at: datetime
    revoked_at: datetime | None = None


def _agreement(row: Sequence[Any]) -> Agreement:
    (
        id_,
        provider,
        recipient,
        kinds,
        metrics,
        sites,
        sensors,
        resolution,
        purpose,
        basis,
        basis_text,
        operations,
        k,
        starts_at,
        expires_at,
        status,
        granted_at,
        withdrawn_at,
    ) = row
    return Agreement(
        provider=provider,
        recipient=recipient,
        scope=Scope(frozenset(kinds), frozenset(metrics), frozenset(sites), frozenset(sensors)),
        resolution=Resolution(resolution),
        purpose=purpose,
        legal_basis=basis,
        legal_basis_text=basis_text,
        starts_at=starts_at,
        expires_at=expires_at,
        status=status,
        min_contributors=k,
        operations=frozenset(operations),
        granted_at=granted_at,
        id=id_,
        withdrawn_at=withdrawn_at,
    )


# --- agreements -------------------------------------------------------------------------


def grant(db: Db, docs: Sequence[Mapping[str, Any]], now: datetime) -> list[Agreement]:
    """Store every agreement of ``docs`` or none: the first bad one raises, nothing is written."""
    if not docs:
        raise AgreementError("no agreement given")
    with cursor(db, "granting") as cur:
        cur.execute("SELECT slug FROM councils")
        councils = {slug for (slug,) in cur.fetchall()}
        parsed = []
        for n, doc in enumerate(docs, start=1):
            try:
                parsed.append(parse_agreement(doc, councils, now))
            except AgreementError as exc:
                if len(docs) == 1:
                    raise
                raise AgreementError(f"agreement {n}: {exc}; nothing was granted") from exc
        stored = []
        for a in parsed:
            s = a.scope
            cur.execute(
                f"INSERT INTO agreements (provider, recipient, kinds, metrics, sites, sensors,"
                f" resolution, purpose, legal_basis, legal_basis_text, operations,"
                f" min_contributors, starts_at, expires_at, granted_at)"
                f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
                f" RETURNING {_COLUMNS}",
                (
                    a.provider,
                    a.recipient,
                    sorted(s.kinds),
                    sorted(s.metrics),
                    sorted(s.sites),
                    sorted(s.sensors),
                    a.resolution.value,
                    a.purpose,
                    a.legal_basis,
                    a.legal_basis_text,
                    sorted(a.operations),
                    a.min_contributors,
                    a.starts_at,
                    a.expires_at,
                    now,
                ),
            )
            row = cur.fetchone()
            assert row is not None
            stored.append(_agreement(row))
        return stored


def list_agreements(db: Db, council: str | None = None) -> list[Agreement]:
    """Every agreement (``council``: those it provides or receives), newest first."""
    with cursor(db, "listing agreements") as cur:
        if council is None:
            cur.execute(f"SELECT {_COLUMNS} FROM agreements ORDER BY id DESC")
        else:
            cur.execute(
                f"SELECT {_COLUMNS} FROM agreements WHERE %s IN (provider, recipient)"
                " ORDER BY id DESC",
                (check_council_slug(council),),
            )
        return [_agreement(r) for r in cur.fetchall()]


def revoke(db: Db, agreement_id: int) -> Agreement:
    """Withdraw an agreement, at once; an unknown or already withdrawn one is an error."""
    with cursor(db, f"revoking agreement {agreement_id}") as cur:
        cur.execute(
            f"UPDATE agreements SET status = 'withdrawn', withdrawn_at = now()"
            f" WHERE id = %s AND status = 'active' RETURNING {_COLUMNS}",
            (agreement_id,),
        )
        row = cur.fetchone()
        if row is None:
            cur.execute("SELECT status FROM agreements WHERE id = %s", (agreement_id,))
            found = cur.fetchone()
            if found is None:
                raise AgreementError(f"no agreement {agreement_id} (civicpulse share list)")
            raise AgreementError(f"agreement {agreement_id} is already withdrawn")
        return _agreement(row)


def audit(
    db: Db,
    council: str | None = None,
    agreement_id: int | None = None,
    since: datetime | None = None,
    limit: int = 1000,
) -> list[AccessRecord]:
    """Access-log rows, newest first: ``council`` as reader or as provider of the data read."""
    where: list[str] = ["true"]
    params: list[Any] = []
    if council is not None:
        where.append("(recipient = %s OR %s = ANY (providers))")
        params += [check_council_slug(council)] * 2
    if agreement_id is not None:
        where.append("%s = ANY (agreement_ids)")
        params.append(agreement_id)
    if since is not None:
        where.append("at >= %s")
        params.append(since)
    with cursor(db, "reading the access log") as cur:
        cur.execute(
            "SELECT id, at, recipient, key_id, agreement_ids, providers, what, rows"
            f" FROM access_log WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT %s",
            (*params, limit),
        )
        return [AccessRecord(*r) for r in cur.fetchall()]


# --- API keys ---------------------------------------------------------------------------


def create_api_key(
    db: Db, council: str, name: str, rate_per_minute: int = 600
) -> tuple[ApiKey, str]:
    """A new key for ``council``; returns it and the plain key (shown once, stored hashed)."""
    if not name.strip():
        raise RegistryError("an API key needs a --name saying who holds it")
    if rate_per_minute < 1:
        raise RegistryError("--rate: at least 1 request a minute")
    secret = secrets.token_urlsafe(24)
    with cursor(db, "creating an API key") as cur:
        cur.execute("SELECT 1 FROM councils WHERE slug = %s", (check_council_slug(council),))
        if cur.fetchone() is None:
            raise RegistryError(f"no council {council!r} is registered (civicpulse councils add)")
        cur.execute(
            "INSERT INTO api_keys (council, name, secret_hash, rate_per_minute)"
            " VALUES (%s, %s, %s, %s) RETURNING id, council, name, rate_per_minute, created_at",
            (council, name.strip(), hash_secret(secret), rate_per_minute),
        )
        row = cur.fetchone()
        assert row is not None
    key = ApiKey(*row)
    return key, f"{KEY_PREFIX}{key.id}_{secret}"


def revoke_api_key(db: Db, key_id: int) -> ApiKey:
    """Revoke a key at once; an unknown or already revoked key is an error."""
    with cursor(db, f"revoking API key {key_id}") as cur:
        cur.execute(
            "UPDATE api_keys SET revoked_at = now() WHERE id = %s AND revoked_at IS NULL"
            " RETURNING id, council, name, rate_per_minute, created_at, revoked_at",
            (key_id,),
        )
        row = cur.fetchone()
        if row is None:
            raise RegistryError(f"no active API key {key_id} (civicpulse api-keys list)")
        return ApiKey(*row)


def list_api_keys(db: Db, council: str | None = None) -> list[ApiKey]:
    """Every key (never a secret), by id."""
    with cursor(db, "listing API keys") as cur:
        cur.execute(
            "SELECT id, council, name, rate_per_minute, created_at, revoked_at FROM api_keys"
            " WHERE %s::text IS NULL OR council = %s ORDER BY id",
            (council, council),
        )
        return [ApiKey(*r) for r in cur.fetchall()]


def split_key(key: str) -> tuple[int, str] | None:
    """(id, secret) of a well-formed key, else None."""
    if not key.startswith(KEY_PREFIX):
        return None
    id_part, _, secret = key[len(KEY_PREFIX) :].partition("_")
    if not id_part.isdigit() or not secret or len(id_part) > 18:
        return None
    return int(id_part), secret


def check_api_key(db: Db, key: str) -> ApiKey | None:
    """The active key ``key`` names, if its secret is right; None otherwise (say nothing more)."""
    parts = split_key(key)
    if parts is None:
        return None
    key_id, secret = parts
    with cursor(db, "checking an API key") as cur:
        cur.execute(
            "SELECT id, council, name, rate_per_minute, created_at, revoked_at, secret_hash"
            " FROM api_keys WHERE id = %s AND revoked_at IS NULL",
            (key_id,),
        )
        row = cur.fetchone()
    if row is None or not verify_secret(row[6], secret):
        return None
    return ApiKey(*row[:6])


# --- SQL logins ---------------------------------------------------------------------------


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """PostgreSQL's SCRAM-SHA-256 verifier of ``password`` (RFC 5802/7677), made here so the
    plain password never travels in a statement (and so never reaches a server log)."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    b64 = base64.b64encode
    return (
        f"SCRAM-SHA-256${iterations}:{b64(salt).decode()}"
        f"${b64(stored_key).decode()}:{b64(server_key).decode()}"
    )


def council_login(db: Db, council: str) -> tuple[str, str]:
    """Let a council's role log in (its SQL users, its Grafana datasource) with a new password.

    Returns (role, password); the password is shown once and stored only as a SCRAM verifier.
    The role reads only the tenant views: its council's rows and what is shared with it.
    """
    role = f"civicpulse_council_{check_council_slug(council)}"
    password = secrets.token_urlsafe(24)
    with cursor(db, f"making a SQL login for {council}") as cur:
        cur.execute("SELECT 1 FROM councils WHERE slug = %s", (council,))
        if cur.fetchone() is None:
            raise RegistryError(f"no council {council!r} is registered (civicpulse councils add)")
        cur.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,))
        if cur.fetchone() is None:
            raise RegistryError(
                f"role {role} is missing: the migrations ran without CREATEROLE; run"
                " civicpulse db migrate as a role that has it"
            )
        cur.execute(
            sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(scram_verifier(password))
            )
        )
    return role, password
