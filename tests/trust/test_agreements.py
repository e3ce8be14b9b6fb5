"""Sharing agreements: what they cover, when, and how a bad one is refused (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from trust import (
    PUBLIC,
    AgreementError,
    Resolution,
    SharedRow,
    covers,
    parse_agreement,
    to_staplus,
)

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
COUNCILS = {"aberdeen", "edinburgh", "fife"}
GOOD = {
    "provider": "aberdeen",
    "recipient": "edinburgh",
    "kinds": ["air_quality"],
    "metrics": ["no2", "pm10"],
    "resolution": "1h",
    "purpose": "cross-boundary air quality reporting",
    "legal_basis": "public_task",
    "starts_at": "2026-12-01T00:00:00Z",
    "expires_at": "2027-12-01T00:00:00Z",
}


def row(**over: object) -> SharedRow:
    base: dict[str, object] = {
        "council": "aberdeen",
        "kind": "air_quality",
        "metric": "no2",
        "site": "Union Street",
        "sensor_id": "aq-1",
        "resolution": Resolution.H1,
    }
    return SharedRow(**{**base, **over})  # type: ignore[arg-type]


def test_an_agreement_covers_its_scope_at_its_resolution_or_coarser() -> None:
    a = parse_agreement(GOOD, COUNCILS, NOW)
    assert covers(a, row(), NOW)
    assert covers(a, row(resolution=Resolution.D1), NOW)
    assert not covers(a, row(resolution=Resolution.M15), NOW)  # finer than granted
    assert not covers(a, row(resolution=Resolution.RAW), NOW)
    assert not covers(a, row(metric="o3"), NOW)  # outside the metrics
    assert not covers(a, row(kind="waste_bin", metric="fill_level"), NOW)
    assert not covers(a, row(council="fife"), NOW)  # someone else's data


def test_revocation_expiry_and_start_take_effect_at_once() -> None:
    a = parse_agreement(GOOD, COUNCILS, NOW)
    assert not covers(a, row(), datetime(2026, 11, 30, 23, 59, tzinfo=UTC))
    assert not covers(a, row(), datetime(2027, 12, 1, 0, 0, tzinfo=UTC))
    assert covers(a, row(), datetime(2027, 11, 30, 23, 59, tzinfo=UTC))
    from dataclasses import replace

    assert not covers(replace(a, status="withdrawn"), row(), NOW)


def test_personal_data_is_never_raw_and_aggregates_need_k_contributors() -> None:
    a = parse_agreement({**GOOD, "kinds": [], "metrics": [], "resolution": "raw"}, COUNCILS, NOW)
    meter = {"kind": "energy_meter", "metric": "power", "personal_data": True}
    assert not covers(a, row(**meter, resolution=Resolution.RAW), NOW)
    assert not covers(a, row(**meter, resolution=Resolution.H1, contributors=4), NOW)
    assert covers(a, row(**meter, resolution=Resolution.H1, contributors=5), NOW)
    three = parse_agreement(
        {**GOOD, "kinds": [], "metrics": [], "min_contributors": 3}, COUNCILS, NOW
    )
    assert covers(three, row(**meter, resolution=Resolution.D1, contributors=3), NOW)
    assert covers(a, row(resolution=Resolution.RAW), NOW)  # not personal: raw is fine


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"recipient": "dundee"}, "recipient: no council 'dundee' is registered"),
        ({"provider": "Aberdeen"}, "council 'Aberdeen' must match"),
        ({"recipient": "aberdeen"}, "needs no agreement with itself"),
        ({"expires_at": "2026-11-01T00:00:00Z"}, "expires_at: must be after starts_at"),
        ({"starts_at": "2026-12-01T00:00:00"}, "starts_at: needs a UTC offset"),
        ({"starts_at": "next tuesday"}, "is not an ISO 8601 time"),
        ({"resolution": "5m"}, "resolution: one of raw, 15m, 1h, 1d"),
        ({"purpose": "  "}, "purpose: say what the data will be used for"),
        ({"legal_basis": "because"}, "legal_basis: one of consent"),
        ({"kinds": ["toaster"]}, "kinds: toaster not in the catalogue"),
        ({"metrics": ["no3"]}, "metrics: no3 not in the catalogue"),
        ({"min_contributors": 0}, "min_contributors: a whole number"),
        ({"operations": ["delete"]}, "operations: delete"),
        ({"colour": "red"}, "unknown field(s) colour"),
    ],
)
def test_a_bad_agreement_is_refused_in_one_line(change: dict[str, object], message: str) -> None:
    with pytest.raises(AgreementError) as err:
        parse_agreement({**GOOD, **change}, COUNCILS, NOW)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_open_data_and_the_staplus_shape() -> None:
    a = parse_agreement({**GOOD, "recipient": PUBLIC, "expires_at": None}, COUNCILS, NOW)
    doc = to_staplus(a, NOW)
    assert doc["status"] == "active"
    assert doc["legalBasis"] == {"code": "public_task", "text": "Art. 6(1)(e) public task"}
    assert doc["effectiveTime"] == "2026-12-01T00:00:00Z/.."
    assert doc["coveredProperties"] == ["no2", "pm10"]
    assert doc["permittedOperations"] == ["read"]
    assert doc["properties"]["recipient"] == "public"
    later = to_staplus(parse_agreement(GOOD, COUNCILS, NOW), NOW + timedelta(days=400))
    assert later["status"] == "expired"
