"""``civicpulse share`` (sharing agreements, the access log) and ``civicpulse api-keys``.

An agreement takes effect the moment ``share grant`` returns and ends the moment ``share
revoke`` returns: the database's tenant views read the agreements table on every query.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from civicpulse.cli.console import fail, say, with_store
from civicpulse.cli.options import DatabaseUrl, JsonOutput
from civicpulse.settings import Settings

T = TypeVar("T")

Names = Annotated[
    str | None,
    typer.Option(help="Comma-separated names; left out: all of them"),
]
AgreementId = Annotated[int, typer.Argument(help="The agreement's id (civicpulse share list)")]
ONCE_PW = "shown once: store it now (run this again to replace it)"
ONCE = "shown once: store it now, it cannot be shown again (revoke it and create another)"


_say = say
_run = with_store


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat().replace("+00:00", "Z")


def _agreement_json(a: Any) -> dict[str, Any]:
    s = a.scope
    return {
        "id": a.id,
        "provider": a.provider,
        "recipient": a.recipient,
        "kinds": sorted(s.kinds),
        "metrics": sorted(s.metrics),
        "sites": sorted(s.sites),
        "sensors": sorted(s.sensors),
        "resolution": a.resolution.value,
        "purpose": a.purpose,
        "legal_basis": a.legal_basis,
        "legal_basis_text": a.legal_basis_text,
        "min_contributors": a.min_contributors,
        "operations": sorted(a.operations),
        "starts_at": _iso(a.starts_at),
        "expires_at": _iso(a.expires_at),
        "status": a.status,
        "in_force": a.in_force(datetime.now(UTC)),
        "granted_at": _iso(a.granted_at),
        "withdrawn_at": _iso(a.withdrawn_at),
    }


def _scope_text(a: Any) -> str:
    s = a.scope
    parts = [
        f"{label} {','.join(sorted(v))}"
        for label, v in (
            ("kinds", s.kinds),
            ("metrics", s.metrics),
            ("sites", s.sites),
            ("sensors", s.sensors),
        )
        if v
    ]
    return "; ".join(parts) or "everything"


def _load_file(path: Path) -> list[dict[str, Any]]:
    """One agreement (a JSON object) or several (a list) from a JSON or YAML file."""
    from trust.agreements import AgreementError

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AgreementError(f"{path}: {exc.strerror or exc}") from exc
    try:
        if path.suffix.lower() in {".yaml", ".yml"}:
            import yaml

            doc = yaml.safe_load(text)
        else:
            doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AgreementError(
            f"{path}: not valid {path.suffix.lstrip('.') or 'JSON'}: {first}"
        ) from exc
    except Exception as exc:  # yaml.YAMLError and its kin
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AgreementError(f"{path}: not valid YAML: {first}") from exc
    docs = doc if isinstance(doc, list) else [doc]
    if not docs or not all(isinstance(d, dict) for d in docs):
        raise AgreementError(f"{path}: expected an agreement (an object) or a list of them")
    return docs


# --- share ------------------------------------------------------------------------------


def share_grant(
    provider: Annotated[str | None, typer.Option(help="The council whose data is shared")] = None,
    recipient: Annotated[
        str | None, typer.Option(help="The council it is shared with, or 'public' (open data)")
    ] = None,
    kinds: Names = None,
    metrics: Names = None,
    sites: Names = None,
    sensors: Names = None,
    resolution: Annotated[
        str, typer.Option(help="The finest resolution allowed: raw, 15m, 1h or 1d")
    ] = "1h",
    purpose: Annotated[str | None, typer.Option(help="What the data will be used for")] = None,
    legal_basis: Annotated[
        str | None,
        typer.Option(
            help="consent, contract, legal_obligation, vital_interests, public_task,"
            " legitimate_interests or not_personal_data"
        ),
    ] = None,
    legal_basis_text: Annotated[
        str | None, typer.Option(help="The basis in words (default: the code's article)")
    ] = None,
    starts: Annotated[str | None, typer.Option(help="ISO 8601 start (default: now)")] = None,
    expires: Annotated[str | None, typer.Option(help="ISO 8601 expiry (default: none)")] = None,
    min_contributors: Annotated[
        int, typer.Option(help="Aggregates of personal-data devices need this many devices")
    ] = 5,
    file: Annotated[
        Path | None,
        typer.Option("--file", help="Agreements from a JSON or YAML file (one or a list)"),
    ] = None,
    database_url: DatabaseUrl = None,
    as_json: JsonOutput = False,
) -> None:
    """Grant a sharing agreement (from options or a file); it takes effect at once."""
    from storage import sharing_store
    from trust.agreements import AgreementError

    if file is not None:
        try:
            docs = _load_file(file)
        except AgreementError as exc:
            raise fail(escape(str(exc))) from exc
    else:
        doc: dict[str, Any] = {
            "provider": provider or "",
            "recipient": recipient or "",
            "resolution": resolution,
            "purpose": purpose or "",
            "legal_basis": legal_basis or "",
            "min_contributors": min_contributors,
        }
        for key, value in (
            ("kinds", kinds),
            ("metrics", metrics),
            ("sites", sites),
            ("sensors", sensors),
            ("legal_basis_text", legal_basis_text),
            ("starts_at", starts),
            ("expires_at", expires),
        ):
            if value:
                doc[key] = value
        docs = [doc]
    now = datetime.now(UTC)
    granted = _run(database_url, lambda url: sharing_store.grant(url, docs, now))
    if as_json:
        print(json.dumps([_agreement_json(a) for a in granted]))
        return
    for a in granted:
        _say(
            f"agreement {a.id}: {a.provider} → {a.recipient}, {_scope_text(a)} at"
            f" {a.resolution.value}, {a.legal_basis}, "
            + (f"until {_iso(a.expires_at)}" if a.expires_at else "no expiry")
        )


def share_list(
    council: Annotated[
        str | None, typer.Option("--council", help="Only agreements this council is party to")
    ] = None,
    database_url: DatabaseUrl = None,
    as_json: JsonOutput = False,
) -> None:
    """List sharing agreements, newest first."""
    from storage import sharing_store

    found = _run(database_url, lambda url: sharing_store.list_agreements(url, council))
    if as_json:
        print(json.dumps([_agreement_json(a) for a in found]))
        return
    if not found:
        Console().print("no agreements")
        return
    now = datetime.now(UTC)
    table = Table("id", "provider → recipient", "scope", "res.", "status", "expires")
    for a in found:
        status = (
            "in force"
            if a.in_force(now)
            else a.status
            if a.status != "active"
            else ("pending" if now < a.starts_at else "expired")
        )
        table.add_row(
            str(a.id),
            f"{a.provider} → {a.recipient}",
            escape(_scope_text(a)),
            a.resolution.value,
            status,
            (_iso(a.expires_at) or "never")[:16],
        )
    Console().print(table)


def share_revoke(
    agreement_id: AgreementId, database_url: DatabaseUrl = None, as_json: JsonOutput = False
) -> None:
    """Withdraw an agreement: its recipient sees none of the data from this moment."""
    from storage import sharing_store

    a = _run(database_url, lambda url: sharing_store.revoke(url, agreement_id))
    if as_json:
        print(json.dumps(_agreement_json(a)))
    else:
        _say(f"agreement {a.id} withdrawn: {a.recipient} no longer sees {a.provider}'s data")


def share_audit(
    council: Annotated[
        str | None,
        typer.Option("--council", help="Reads by this council, and reads of its data by others"),
    ] = None,
    agreement: Annotated[
        int | None, typer.Option("--agreement", help="Only reads under this agreement")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many rows")] = 100,
    database_url: DatabaseUrl = None,
    as_json: JsonOutput = False,
) -> None:
    """Show the access log: who read what through the API, under which agreements."""
    from storage import sharing_store

    rows = _run(
        database_url,
        lambda url: sharing_store.audit(url, council=council, agreement_id=agreement, limit=limit),
    )
    if as_json:
        print(json.dumps([{**asdict(r), "at": _iso(r.at)} for r in rows]))
        return
    if not rows:
        Console().print("no reads logged")
        return
    table = Table("at (UTC)", "reader", "key", "agreements", "rows", "what")
    for r in rows:
        table.add_row(
            r.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            r.recipient,
            str(r.key_id or "-"),
            ",".join(map(str, r.agreement_ids)) or "-",
            str(r.rows),
            escape(r.what),
        )
    Console().print(table)


def share_sql_login(
    council: Annotated[str, typer.Argument(help="The council whose users log in")],
    database_url: DatabaseUrl = None,
    as_json: JsonOutput = False,
) -> None:
    """A SQL login for a council's own users and its Grafana datasource (password shown once).

    It reads the same relations as the dashboards, through the tenant views: the council's
    own rows and what agreements share with it, nothing else.
    """
    from urllib.parse import urlsplit

    from storage import sharing_store

    role, password = _run(database_url, lambda url: sharing_store.council_login(url, council))
    url = Settings.load(database_url=database_url).database_url
    where = urlsplit(url)
    host = f"{where.hostname or 'localhost'}:{where.port or 5432}"
    dbname = where.path.lstrip("/") or "postgres"
    if as_json:
        print(json.dumps({"user": role, "password": password, "host": host, "database": dbname}))
        return
    _say(f"SQL login for {council}: user {role}, database {dbname} on {host}; password {ONCE_PW}:")
    print(password)


# --- API keys ---------------------------------------------------------------------------


def keys_create(
    council: Annotated[str, typer.Argument(help="The council the key reads as")],
    name: Annotated[str, typer.Option("--name", help="Who holds it, e.g. 'Leeds data team'")],
    rate: Annotated[int, typer.Option("--rate", min=1, help="Requests a minute")] = 600,
    database_url: DatabaseUrl = None,
    as_json: JsonOutput = False,
) -> None:
    """Create an API key for a council (printed once)."""
    from storage import sharing_store

    key, plain = _run(
        database_url, lambda url: sharing_store.create_api_key(url, council, name, rate)
    )
    if as_json:
        print(
            json.dumps(
                {
                    "id": key.id,
                    "council": key.council,
                    "name": key.name,
                    "rate_per_minute": key.rate_per_minute,
                    "key": plain,
                }
            )
        )
        return
    _say(f"API key {key.id} for {key.council} ({key.name}); {ONCE}:")
    print(plain)


def keys_revoke(
    key_id: Annotated[int, typer.Argument(help="The key's id (civicpulse api-keys list)")],
    database_url: DatabaseUrl = None,
    as_json: JsonOutput = False,
) -> None:
    """Revoke an API key: its next request is refused."""
    from storage import sharing_store

    key = _run(database_url, lambda url: sharing_store.revoke_api_key(url, key_id))
    if as_json:
        print(
            json.dumps({"id": key.id, "council": key.council, "revoked_at": _iso(key.revoked_at)})
        )
    else:
        _say(f"API key {key.id} of {key.council} revoked")


def keys_list(
    council: Annotated[str | None, typer.Option("--council", help="Only this council")] = None,
    database_url: DatabaseUrl = None,
    as_json: JsonOutput = False,
) -> None:
    """List API keys (never their secrets)."""
    from storage import sharing_store

    keys = _run(database_url, lambda url: sharing_store.list_api_keys(url, council))
    if as_json:
        print(
            json.dumps(
                [
                    {
                        "id": k.id,
                        "council": k.council,
                        "name": k.name,
                        "rate_per_minute": k.rate_per_minute,
                        "created_at": _iso(k.created_at),
                        "revoked_at": _iso(k.revoked_at),
                    }
                    for k in keys
                ]
            )
        )
        return
    if not keys:
        Console().print("no API keys")
        return
    table = Table("id", "council", "name", "rate/min", "revoked")
    for k in keys:
        table.add_row(
            str(k.id),
            k.council,
            escape(k.name),
            str(k.rate_per_minute),
            (_iso(k.revoked_at) or "no")[:16],
        )
    Console().print(table)


def register(app: typer.Typer) -> None:
    """Add ``share`` and ``api-keys`` to the command line."""
    share = typer.Typer(
        help="Sharing agreements between councils and with the public, and the access log.",
        no_args_is_help=True,
    )
    share.command("grant")(share_grant)
    share.command("list")(share_list)
    share.command("revoke")(share_revoke)
    share.command("audit")(share_audit)
    share.command("sql-login")(share_sql_login)
    app.add_typer(share, name="share")
    keys = typer.Typer(
        help="API keys: a partner council reads the open-data API as itself.",
        no_args_is_help=True,
    )
    keys.command("create")(keys_create)
    keys.command("revoke")(keys_revoke)
    keys.command("list")(keys_list)
    app.add_typer(keys, name="api-keys")
