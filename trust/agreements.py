"""Sharing agreements between councils (or with the public) and the rows each one covers.

An agreement maps onto the Agreement entity of the OGC STAplus GDPR-profile draft
(OGC 26-055): ``legalBasis``, ``purpose``, covered properties, permitted operations,
granted / effective / expiry time and ``status`` (active or withdrawn) — see
:func:`to_staplus`. The database enforces the same rule with row-level security; this
module is its pure statement, which the tests use as the reference.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Final

from sensors.catalogue import KINDS
from sensors.errors import CivicPulseError
from trust.registry import RegistryError, check_council_slug

PUBLIC: Final = "public"  # the recipient of open data
DEFAULT_MIN_CONTRIBUTORS: Final = 5

# UK GDPR Article 6(1) lawful bases, plus one for data that is not personal data.
LEGAL_BASES: Final = {
    "consent": "Art. 6(1)(a) consent",
    "contract": "Art. 6(1)(b) contract",
    "legal_obligation": "Art. 6(1)(c) legal obligation",
    "vital_interests": "Art. 6(1)(d) vital interests",
    "public_task": "Art. 6(1)(e) public task",
    "legitimate_interests": "Art. 6(1)(f) legitimate interests",
    "not_personal_data": "not personal data (no Article 6 basis needed)",
}
OPERATIONS: Final = frozenset({"read", "publish", "store"})


class AgreementError(CivicPulseError):
    """An agreement that cannot be granted: one line naming the field and the problem."""


class Resolution(StrEnum):
    """The finest time resolution an agreement allows, finest first."""

    RAW = "raw"
    M15 = "15m"
    H1 = "1h"
    D1 = "1d"

    @property
    def rank(self) -> int:
        return list(Resolution).index(self)


@dataclass(frozen=True, slots=True)
class Scope:
    """What is shared: each set empty means "any"."""

    kinds: frozenset[str] = frozenset()
    metrics: frozenset[str] = frozenset()
    sites: frozenset[str] = frozenset()
    sensors: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Agreement:
    """A provider council lets a recipient read part of its data, for a purpose, for a time."""

    provider: str
    recipient: str  # a council slug, or PUBLIC
    scope: Scope
    resolution: Resolution
    purpose: str
    legal_basis: str  # a key of LEGAL_BASES
    legal_basis_text: str
    starts_at: datetime
    expires_at: datetime | None = None
    status: str = "active"  # or "withdrawn" (revoked)
    min_contributors: int = DEFAULT_MIN_CONTRIBUTORS
    operations: frozenset[str] = frozenset({"read"})
    granted_at: datetime | None = None
    id: int | None = None
    withdrawn_at: datetime | None = field(default=None, compare=False)

    def in_force(self, now: datetime) -> bool:
        """Active, started, and not yet expired (expiry and revocation act at once)."""
        if self.status != "active" or now < self.starts_at:
            return False
        return self.expires_at is None or now < self.expires_at


@dataclass(frozen=True, slots=True)
class SharedRow:
    """What the rule needs to know about one row of the read contract."""

    council: str
    kind: str
    metric: str
    site: str
    sensor_id: str
    resolution: Resolution
    personal_data: bool = False
    contributors: int = 1  # devices behind the value (1 for a per-sensor row)


def covers(agreement: Agreement, row: SharedRow, now: datetime) -> bool:
    """Whether ``agreement`` lets its recipient see ``row`` at ``now``.

    ``personal_data`` devices are never shared at raw resolution, and an aggregate drawn
    from them only when at least ``min_contributors`` devices contribute.
    """
    s = agreement.scope
    if not agreement.in_force(now) or row.council != agreement.provider:
        return False
    if row.resolution.rank < agreement.resolution.rank:
        return False
    for wanted, value in (
        (s.kinds, row.kind),
        (s.metrics, row.metric),
        (s.sites, row.site),
        (s.sensors, row.sensor_id),
    ):
        if wanted and value not in wanted:
            return False
    if row.personal_data:
        if row.resolution is Resolution.RAW:
            return False
        if row.contributors < agreement.min_contributors:
            return False
    return True


def covers_metadata(agreement: Agreement, row: SharedRow, now: datetime) -> bool:
    """Whether ``agreement`` shows its recipient a sensor's site, location and status.

    Any agreement in force whose kinds, sites and sensors cover the sensor does, whatever its
    metrics and resolution; a ``personal_data`` sensor's metadata (a home's location) never.
    """
    s = agreement.scope
    if not agreement.in_force(now) or row.council != agreement.provider or row.personal_data:
        return False
    return all(
        not wanted or value in wanted
        for wanted, value in ((s.kinds, row.kind), (s.sites, row.site), (s.sensors, row.sensor_id))
    )


def _words(doc: Mapping[str, Any], key: str) -> frozenset[str]:
    value = doc.get(key, [])
    if isinstance(value, str):
        value = [v for v in value.split(",") if v.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise AgreementError(f"{key}: expected a list of names")
    return frozenset(v.strip() for v in value)


def _time(doc: Mapping[str, Any], key: str, required: bool) -> datetime | None:
    value = doc.get(key)
    if value is None or value == "":
        if required:
            raise AgreementError(f"{key}: missing (an ISO 8601 time with a UTC offset)")
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise AgreementError(f"{key}: {value!r} is not an ISO 8601 time") from exc
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise AgreementError(f"{key}: needs a UTC offset, e.g. 2027-01-01T00:00:00Z")
    return value


def parse_agreement(doc: Mapping[str, Any], councils: set[str], now: datetime) -> Agreement:
    """An agreement from plain values (a file or CLI options); AgreementError if any is bad.

    ``councils`` are the registered council slugs: provider and recipient must be among
    them (the recipient may also be ``public``).
    """
    known = {"provider", "recipient", "kinds", "metrics", "sites", "sensors", "resolution",
             "purpose", "legal_basis", "legal_basis_text", "starts_at", "expires_at",
             "min_contributors", "operations"}  # fmt: skip
    unknown = sorted(set(doc) - known)
    if unknown:
        raise AgreementError(
            f"unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    try:
        provider = check_council_slug(str(doc.get("provider", "")))
        recipient = str(doc.get("recipient", ""))
        if recipient != PUBLIC:
            check_council_slug(recipient)
    except RegistryError as exc:
        raise AgreementError(str(exc)) from exc
    for role, slug in (("provider", provider), ("recipient", recipient)):
        if slug != PUBLIC and slug not in councils:
            raise AgreementError(f"{role}: no council {slug!r} is registered")
    if provider == recipient:
        raise AgreementError("recipient: a council needs no agreement with itself")
    kinds = _words(doc, "kinds")
    if bad := sorted(kinds - set(KINDS)):
        raise AgreementError(f"kinds: {', '.join(bad)} not in the catalogue")
    metrics = _words(doc, "metrics")
    known_metrics = {m for k in KINDS.values() for m in k.metrics}
    if bad := sorted(metrics - known_metrics):
        raise AgreementError(f"metrics: {', '.join(bad)} not in the catalogue")
    try:
        resolution = Resolution(str(doc.get("resolution", "1h")))
    except ValueError as exc:
        allowed = ", ".join(r.value for r in Resolution)
        raise AgreementError(f"resolution: one of {allowed}") from exc
    purpose = str(doc.get("purpose", "")).strip()
    if not purpose:
        raise AgreementError("purpose: say what the data will be used for")
    basis = str(doc.get("legal_basis", ""))
    if basis not in LEGAL_BASES:
        raise AgreementError(f"legal_basis: one of {', '.join(LEGAL_BASES)}")
    starts_at = _time(doc, "starts_at", required=False) or now
    expires_at = _time(doc, "expires_at", required=False)
    if expires_at is not None and expires_at <= starts_at:
        raise AgreementError("expires_at: must be after starts_at")
    k = doc.get("min_contributors", DEFAULT_MIN_CONTRIBUTORS)
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise AgreementError("min_contributors: a whole number of devices, at least 1")
    operations = _words(doc, "operations") or frozenset({"read"})
    if bad := sorted(operations - OPERATIONS):
        raise AgreementError(
            f"operations: {', '.join(bad)} (allowed: {', '.join(sorted(OPERATIONS))})"
        )
    return Agreement(
        provider=provider,
        recipient=recipient,
        scope=Scope(kinds, metrics, _words(doc, "sites"), _words(doc, "sensors")),
        resolution=resolution,
        purpose=purpose,
        legal_basis=basis,
        legal_basis_text=str(doc.get("legal_basis_text", "")).strip() or LEGAL_BASES[basis],
        starts_at=starts_at,
        expires_at=expires_at,
        min_contributors=k,
        operations=operations,
        granted_at=now,
    )


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.isoformat().replace("+00:00", "Z")


def to_staplus(agreement: Agreement, now: datetime) -> dict[str, Any]:
    """The agreement in the shape of the STAplus GDPR-profile Agreement entity (OGC 26-055)."""
    in_force = agreement.in_force(now)
    status = agreement.status if agreement.status == "withdrawn" or in_force else "expired"
    if agreement.status == "active" and now < agreement.starts_at:
        status = "pending"
    effective = f"{_iso(agreement.starts_at)}/{_iso(agreement.expires_at) or '..'}"
    s = agreement.scope
    return {
        "@iot.id": agreement.id,
        "name": f"{agreement.provider} → {agreement.recipient}",
        "description": agreement.purpose,
        "purpose": agreement.purpose,
        "legalBasis": {"code": agreement.legal_basis, "text": agreement.legal_basis_text},
        "status": status,
        "grantedTime": _iso(agreement.granted_at),
        "effectiveTime": effective,
        "expiryTime": _iso(agreement.expires_at),
        "permittedOperations": sorted(agreement.operations),
        "coveredProperties": sorted(s.metrics) or ["*"],
        "properties": {
            "provider": agreement.provider,
            "recipient": agreement.recipient,
            "kinds": sorted(s.kinds),
            "sites": sorted(s.sites),
            "sensors": sorted(s.sensors),
            "resolution": agreement.resolution.value,
            "minContributors": agreement.min_contributors,
        },
    }
