"""``/api/v1/agreements``: the sharing agreements a caller is party to, in the STAplus shape."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Request, Response

from api.access import current_caller
from api.opendata.routes import json_response
from api.reader import Caller, Reader
from trust.agreements import Agreement, Resolution, Scope, to_staplus

router = APIRouter(tags=["Sharing agreements (STAplus shape)"])
CallerDep = Annotated[Caller, Depends(current_caller)]
PATH: Final = "/api/v1/agreements"
_NAMES: Final = [
    "id",
    "provider",
    "recipient",
    "kinds",
    "metrics",
    "sites",
    "sensors",
    "resolution",
    "purpose",
    "legal_basis",
    "legal_basis_text",
    "operations",
    "min_contributors",
    "starts_at",
    "expires_at",
    "status",
    "granted_at",
    "withdrawn_at",
]
_SELECT: Final = f"SELECT {', '.join(_NAMES)} FROM agreements"


def agreement_of(row: Sequence[Any]) -> Agreement:
    """An ``agreements`` row (sql/040 column order) as the pure model."""
    r = dict(zip(_NAMES, row, strict=True))
    return Agreement(
        provider=r["provider"],
        recipient=r["recipient"],
        scope=Scope(*(frozenset(r[k]) for k in ("kinds", "metrics", "sites", "sensors"))),
        resolution=Resolution(r["resolution"]),
        purpose=r["purpose"],
        legal_basis=r["legal_basis"],
        legal_basis_text=r["legal_basis_text"],
        starts_at=r["starts_at"],
        expires_at=r["expires_at"],
        status=r["status"],
        min_contributors=r["min_contributors"],
        operations=frozenset(r["operations"]),
        granted_at=r["granted_at"],
        id=r["id"],
        withdrawn_at=r["withdrawn_at"],
    )


def _json(request: Request, a: Agreement, now: datetime) -> dict[str, Any]:
    base = request.app.state.config.public_url.rstrip("/")
    out = to_staplus(a, now)
    out["@iot.selfLink"] = f"{base}{PATH}/{a.id}"
    return out


async def _read(request: Request, caller: Caller, one: int | None) -> list[Agreement]:
    reader: Reader = request.app.state.reader
    async with reader.session(caller) as session:
        if one is None:
            cur = await session.conn.execute(_SELECT + " ORDER BY id")
        else:
            cur = await session.conn.execute(_SELECT + " WHERE id = %s", (one,))
        found = [agreement_of(r) for r in await cur.fetchall()]
        session.count(len(found), "agreements")
    return found


@router.get(PATH)
async def agreements(request: Request, caller: CallerDep) -> Response:
    """Every agreement the caller provides or receives, and the open-data ones (oldest first).

    Read from the ``agreements`` view of the caller's tenancy schema, so what is listed is the
    database's answer, not this handler's.
    """
    now = datetime.now(UTC)
    found = await _read(request, caller, None)
    return json_response(
        {"@iot.count": len(found), "value": [_json(request, a, now) for a in found]}
    )


@router.get(PATH + "/{agreement_id}")
async def agreement(agreement_id: str, request: Request, caller: CallerDep) -> Response:
    """One agreement the caller is party to (404 otherwise, as for one that does not exist)."""
    if not agreement_id.isdigit() or len(agreement_id) > 18:
        return json_response(
            {"code": 400, "type": "error", "message": "agreement id: a positive integer"}, 400
        )
    found = await _read(request, caller, int(agreement_id))
    if not found:
        return json_response(
            {"code": 404, "type": "error", "message": f"no agreement {agreement_id}"}, 404
        )
    return json_response(_json(request, found[0], datetime.now(UTC)))
