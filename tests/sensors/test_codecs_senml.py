"""SenML (RFC 8428): resolution against the RFC's examples, labels, versions, invalid packs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from sensors.codecs.senml import ResolvedRecord, resolve
from sensors.errors import RejectedPayload, RejectReason
from tests.sensors.senml_helpers import NOW_S, RFC_5_1_1, RFC_5_1_2_A, RFC_5_1_2_B, RFC_5_1_6

pytestmark = pytest.mark.adapter


def rr(name: str, unit: str | None, value: float, time: float, **extra: Any) -> ResolvedRecord:
    return ResolvedRecord(name=name, unit=unit, value=value, time=time, **extra)


def fields(record: ResolvedRecord) -> dict[str, Any]:
    # "index" is where the record stood in the pack as sent, not part of its resolved form
    return {slot: getattr(record, slot) for slot in ResolvedRecord.__slots__ if slot != "index"}


def check(got: list[ResolvedRecord], expected: list[ResolvedRecord]) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g.time == pytest.approx(e.time, abs=1e-6)
        assert {**fields(g), "time": 0} == {**fields(e), "time": 0}


def test_rfc_5_1_1_single_datapoint_is_now() -> None:
    expected = [rr("urn:dev:ow:10e2073a01080063", "Cel", 23.1, NOW_S)]
    check(resolve(orjson.loads(RFC_5_1_1), NOW_S), expected)


def test_rfc_5_1_2_multiple_datapoints_at_now() -> None:
    expected = [
        rr("urn:dev:ow:10e2073a01080063:voltage", "V", 120.1, NOW_S),
        rr("urn:dev:ow:10e2073a01080063:current", "A", 1.2, NOW_S),
    ]
    check(resolve(orjson.loads(RFC_5_1_2_A), NOW_S), expected)


def test_rfc_5_1_2_base_time_base_unit_and_version() -> None:
    # Tue Jun 8 18:01:16.001 UTC 2010 and each second for the 5 seconds before (RFC text).
    # Unit "A" for the currents comes from bu; bver 5 is kept in every resolved record
    # (RFC 8428 4.6: present in all resolved records when the version is not 10).
    bt = 1.276020076001e09
    name = "urn:dev:ow:10e2073a0108006:"
    expected = [
        rr(name + "current", "A", 1.2, 1276020071.001, version=5),
        rr(name + "current", "A", 1.3, 1276020072.001, version=5),
        rr(name + "current", "A", 1.4, 1276020073.001, version=5),
        rr(name + "current", "A", 1.5, 1276020074.001, version=5),
        rr(name + "current", "A", 1.6, 1276020075.001, version=5),
        rr(name + "voltage", "V", 120.1, bt, version=5),
        rr(name + "current", "A", 1.7, 1276020076.001, version=5),
    ]
    # Resolved records are in chronological order (RFC 8428 4.6); the sort is stable, so
    # the voltage stays ahead of the current taken at the same instant.
    check(resolve(orjson.loads(RFC_5_1_2_B), NOW_S), expected)
    assert datetime.fromtimestamp(bt, UTC) == datetime(2010, 6, 8, 18, 1, 16, 1000, UTC)


def test_rfc_5_1_6_collection_of_resources_changes_base_name() -> None:
    # The last record uses the base name of the 3rd record and the base time of the 1st.
    t = 1.320078429e09
    expected = [
        rr("2001:db8::2/temperature", "Cel", 25.2, t),
        rr("2001:db8::2/humidity", "%RH", 30.0, t),
        rr("2001:db8::1/temperature", "Cel", 12.3, t),
        rr("2001:db8::1/humidity", "%RH", 67.0, t),
    ]
    check(resolve(orjson.loads(RFC_5_1_6), NOW_S), expected)


def test_rfc_5_1_4_resolved_data() -> None:
    """RFC 8428 5.1.3 multiple measurements and its resolved form in 5.1.4."""
    pack = [
        {"bn": "urn:dev:ow:10e2073a01080063", "bt": 1.320067464e09, "bu": "%RH", "v": 20},
        {"u": "lon", "v": 24.30621},
        {"u": "lat", "v": 60.07965},
        {"t": 60, "v": 20.3},
        {"u": "lon", "t": 60, "v": 24.30622},
        {"u": "lat", "t": 60, "v": 60.07965},
        {"t": 120, "v": 20.7},
        {"u": "lon", "t": 120, "v": 24.30623},
        {"u": "lat", "t": 120, "v": 60.07966},
        {"u": "%EL", "t": 150, "v": 98},
        {"t": 180, "v": 21.2},
        {"u": "lon", "t": 180, "v": 24.30628},
        {"u": "lat", "t": 180, "v": 60.07967},
    ]
    n = "urn:dev:ow:10e2073a01080063"
    rows = [
        ("%RH", 1.320067464e09, 20), ("lon", 1.320067464e09, 24.30621),
        ("lat", 1.320067464e09, 60.07965), ("%RH", 1.320067524e09, 20.3),
        ("lon", 1.320067524e09, 24.30622), ("lat", 1.320067524e09, 60.07965),
        ("%RH", 1.320067584e09, 20.7), ("lon", 1.320067584e09, 24.30623),
        ("lat", 1.320067584e09, 60.07966), ("%EL", 1.320067614e09, 98),
        ("%RH", 1.320067644e09, 21.2), ("lon", 1.320067644e09, 24.30628),
        ("lat", 1.320067644e09, 60.07967),
    ]  # fmt: skip
    check(resolve(pack, NOW_S), [rr(n, u, float(v), t) for u, t, v in rows])


@pytest.mark.parametrize(
    ("bt", "t", "expected"),
    [
        (None, None, NOW_S),
        (None, -60, NOW_S - 60),
        (None, 30, NOW_S + 30),
        (-100, 40, NOW_S - 60),
        (2**28 - 1, None, NOW_S + 2**28 - 1),
        (2**28, None, 2**28),
        (1795600800, -900, 1795599900),
        (1795600800.25, None, 1795600800.25),
    ],
)
def test_time_resolution(bt: float | None, t: float | None, expected: float) -> None:
    record: dict[str, object] = {"n": "x", "v": 1}
    if bt is not None:
        record["bt"] = bt
    if t is not None:
        record["t"] = t
    assert resolve([record], NOW_S)[0].time == pytest.approx(expected)


def test_base_value_base_sum_and_other_value_types() -> None:
    pack = [
        {"bn": "dev:", "bv": 100, "bs": 5, "bu": "W", "n": "a", "v": 1, "s": 2, "ut": 60},
        {"n": "b", "v": 2},
        {"n": "c", "vs": "on", "u": "Cel"},
        {"n": "d", "vb": True},
        {"n": "e", "vd": "aGk"},
        {"n": "f", "s": 10, "bs": 0},
    ]
    got = {r.name: r for r in resolve(pack, NOW_S)}
    assert (got["dev:a"].value, got["dev:a"].sum, got["dev:a"].update_time) == (101, 7, 60)
    assert (got["dev:b"].value, got["dev:b"].sum, got["dev:b"].unit) == (102, 5, "W")
    assert (got["dev:c"].string_value, got["dev:c"].value, got["dev:c"].unit) == ("on", None, "Cel")
    assert got["dev:d"].bool_value is True and got["dev:d"].value is None
    assert got["dev:e"].data_value == "aGk"
    assert (got["dev:f"].sum, got["dev:f"].value) == (10, None)


def test_unknown_labels_are_ignored() -> None:
    assert resolve([{"n": "x", "v": 1, "foo": {"bar": 1}, "unit_x": 3}], NOW_S)[0].value == 1


@pytest.mark.parametrize(
    "pack",
    [
        [{"n": "x", "v": 1, "foo_": 1}],
        [{"n": "x", "v": 1}, {"n": "y", "v": 2, "bn_": "z"}],
        [{"n": "x", "v": 1, "_": 0}],
    ],
)
def test_must_understand_labels(pack: list[object]) -> None:
    with pytest.raises(RejectedPayload) as info:
        resolve(pack, NOW_S)
    assert info.value.reason is RejectReason.SENML_MUST_UNDERSTAND


@pytest.mark.parametrize(
    "pack",
    [
        {"n": "x", "v": 1},
        [1],
        [[{"n": "x", "v": 1}]],
        [{"v": 1}],
        [{"n": "", "v": 1}],
        [{"n": "-x", "v": 1}],
        [{"n": "a b", "v": 1}],
        [{"n": "temp°", "v": 1}],
        [{"n": "x", "v": 1, "vs": "1"}],
        [{"n": "x", "vb": True, "vd": "aGk"}],
        [{"n": "x"}],
        [{"n": "x", "v": "12"}],
        [{"n": "x", "v": True}],
        [{"n": "x", "vb": 1}],
        [{"n": "x", "vs": 1}],
        [{"n": "x", "vd": "a+b="}],
        [{"n": 7, "v": 1}],
        [{"bn": 7, "n": "x", "v": 1}],
        [{"n": "x", "v": 1, "t": "now"}],
        [{"n": "x", "v": 1, "u": 5}],
        [{"n": "x", "v": 1, "bver": 0}],
        [{"n": "x", "v": 1, "bver": 2.5}],
        [{"n": "x", "v": 1, "bver": 42}],  # feature code 5: not known to us (RFC 9100)
        [{"n": "x", "v": 1, "bver": 27}],  # reserved bits must read 0b1010
    ],
)
def test_invalid_packs(pack: object) -> None:
    with pytest.raises(RejectedPayload) as info:
        resolve(pack, NOW_S)
    assert info.value.reason is RejectReason.SENML_INVALID
    assert "\n" not in info.value.detail


@pytest.mark.parametrize("unit", ["ug/m3", "kWh", "/100", "Wh", "kW"])
@pytest.mark.parametrize("bver", [None, 10, 5])
def test_secondary_units_need_the_feature(unit: str, bver: int | None) -> None:
    for pack in ([{"n": "x", "u": unit, "v": 1}], [{"bu": unit, "n": "x", "v": 1}]):
        if bver is not None:
            pack[0]["bver"] = bver
        with pytest.raises(RejectedPayload) as info:
            resolve(pack, NOW_S)
        assert info.value.reason is RejectReason.SENML_INVALID
        assert "26" in info.value.detail


def test_secondary_units_with_bver_26() -> None:
    pack = [{"bver": 26, "n": "x", "u": "ug/m3", "v": 1}, {"n": "y", "u": "kWh", "v": 2}]
    assert [r.unit for r in resolve(pack, NOW_S)] == ["ug/m3", "kWh"]
    assert resolve(pack, NOW_S)[0].version == 26


def test_version_10_is_not_kept_in_resolved_records() -> None:
    assert resolve([{"bver": 10, "n": "x", "v": 1}], NOW_S)[0].version is None


def test_empty_pack_resolves_to_nothing() -> None:
    assert resolve([], NOW_S) == []
