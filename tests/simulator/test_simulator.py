"""Fleet simulator: determinism, kinds, ranges, model shapes, codec round trips, bad messages."""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest

from sensors.catalogue import KINDS
from sensors.codecs import decode_message
from sensors.errors import RejectedPayload, RejectReason
from simulator import BAD_KINDS, Emission, Fleet, PayloadFormat, bad_messages
from simulator.profiles import LONDON

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
WEEK_S = 7 * 86400


@pytest.fixture(scope="module")
def fleet() -> Fleet:
    return Fleet.build(12, seed=42)


@pytest.fixture(scope="module")
def week(fleet: Fleet) -> list[Emission]:
    """One simulated week: each sensor reports every 15 minutes."""
    per_sensor_s = 900
    speed = per_sensor_s / len(fleet.sensors)
    n = WEEK_S // per_sensor_s * len(fleet.sensors)
    return list(fleet.emissions(n, START, rate=1.0, speed=speed))


def _series(week: list[Emission], kind: str) -> dict[str, list[tuple[datetime, dict[str, float]]]]:
    out: dict[str, list[tuple[datetime, dict[str, float]]]] = defaultdict(list)
    for e in week:
        if e.kind == kind:
            out[e.sensor_id].append((e.time, {s.metric: float(s.value) for s in e.samples}))
    return out


def test_same_seed_same_bytes_different_seed_different_bytes() -> None:
    def run(seed: int) -> list[tuple[str, bytes, float]]:
        f = Fleet.build(9, seed=seed)
        return [(e.topic, e.payload, e.t_offset) for e in f.emissions(300, START, rate=10.0)]

    assert run(1) == run(1)
    assert Fleet.build(9, 1) == Fleet.build(9, 1)
    assert run(1) != run(2)


def test_fleet_mix_ids_councils_and_formats() -> None:
    f = Fleet.build(30, seed=5)
    kinds = Counter(s.kind for s in f.sensors)
    assert kinds == {"air_quality": 12, "waste_bin": 12, "energy_meter": 6}
    prefix = {"air_quality": "aq", "waste_bin": "bin", "energy_meter": "em"}
    for i, s in enumerate(f.sensors, start=1):
        assert s.sensor_id == f"{prefix[s.kind]}-{i:04d}"
    assert {s.council for s in f.sensors} == {"aberdeen", "edinburgh"}
    formats = Counter(s.payload_format for s in f.sensors)
    assert formats[PayloadFormat.CIVICPULSE_JSON] == 20
    assert formats[PayloadFormat.SENML] == 5 and formats[PayloadFormat.SENML_PRIMARY] == 5
    for n in (3, 4, 5):
        assert {s.kind for s in Fleet.build(n, seed=n).sensors} == set(KINDS)
    assert [s.kind for s in Fleet.build(1, 0).sensors] == ["air_quality"]
    assert Fleet.build(0, 0).sensors == ()


def test_timing_round_robin_and_metrics(fleet: Fleet) -> None:
    em = list(fleet.emissions(48, START, rate=4.0, speed=3.0))
    for i, e in enumerate(em):
        assert e.t_offset == i / 4.0
        assert e.time == START + timedelta(seconds=i * 0.75)
        assert all(s.time == e.time for s in e.samples)
        assert e.topic == f"civicpulse/{e.council}/{e.kind}/{e.sensor_id}"
    first = [e.sensor_id for e in em[:12]]
    assert sorted(first) == sorted(s.sensor_id for s in fleet.sensors)
    assert [e.sensor_id for e in em[12:24]] == first
    expected = {
        "air_quality": {"pm2_5", "pm10", "no2", "o3", "temperature", "humidity"},
        "waste_bin": {"fill_level", "temperature", "battery", "tilt", "fire"},
    }
    solar = {s.sensor_id for s in fleet.sensors if getattr(s.params, "has_solar", False)}
    for e in em:
        metrics = {s.metric for s in e.samples}
        if e.kind == "energy_meter":
            want = {"energy_import", "power"} | (
                {"energy_export"} if e.sensor_id in solar else set()
            )
            assert metrics == want
        else:
            assert metrics == expected[e.kind]


def test_microsecond_event_times() -> None:
    em = list(Fleet.build(3, 0).emissions(4, START, rate=3.0))
    assert em[1].time == START + timedelta(microseconds=333_333)
    assert em[2].time == START + timedelta(microseconds=666_667)


def test_values_inside_catalogue_ranges(week: list[Emission]) -> None:
    for e in week:
        for s in e.samples:
            m = KINDS[e.kind].metrics[s.metric]
            assert m.low <= float(s.value) <= m.high, (e.sensor_id, s)
            assert math.isfinite(float(s.value))
            assert isinstance(s.value, bool) == m.is_flag


def test_air_shape_rush_hours_ratios_and_ozone(week: list[Emission]) -> None:
    rush: list[float] = []
    night: list[float] = []
    pairs: list[tuple[float, float]] = []
    for series in _series(week, "air_quality").values():
        for t, v in series:
            local = t.astimezone(LONDON)
            if local.hour in (7, 8, 16, 17) and local.weekday() < 5:
                rush.append(v["no2"])
            elif local.hour == 3:
                night.append(v["no2"])
            assert 0.39 * v["pm10"] <= v["pm2_5"] <= 0.71 * v["pm10"] + 0.01
            pairs.append((v["no2"], v["o3"]))
    assert sum(rush) / len(rush) > 1.5 * sum(night) / len(night)
    no2, o3 = zip(*pairs, strict=True)
    mx, my = sum(no2) / len(no2), sum(o3) / len(o3)
    cov = sum((a - mx) * (b - my) for a, b in pairs)
    assert cov < 0  # ozone titrated by traffic NO2


def test_bins_fill_rises_then_drops_at_collections(week: list[Emission]) -> None:
    drops = 0
    for series in _series(week, "waste_bin").values():
        for (_, a), (_, b) in itertools.pairwise(series):
            if b["fill_level"] < a["fill_level"]:
                drops += 1
                assert b["fill_level"] <= 6.0 < a["fill_level"]  # emptied to ~0-5 %
            else:
                assert b["fill_level"] - a["fill_level"] < 10  # steady filling, no jumps
            assert b["battery"] <= a["battery"]
            assert not b["tilt"] and not b["fire"]
            assert abs(b["temperature"] - a["temperature"]) < 5
    assert drops >= 6  # collection rounds every ~12-120 h for six bins over a week


def test_energy_register_monotonic_and_equals_integrated_power(week: list[Emission]) -> None:
    meters = _series(week, "energy_meter")
    assert meters
    for series in meters.values():
        imported = 0.0
        exported = 0.0
        for (t0, a), (t1, b) in itertools.pairwise(series):
            assert b["energy_import"] >= a["energy_import"]
            hours = (t1 - t0).total_seconds() / 3600
            imported += (max(a["power"], 0) + max(b["power"], 0)) / 2 * hours / 1000
            exported += (max(-a["power"], 0) + max(-b["power"], 0)) / 2 * hours / 1000
            if "energy_export" in b:
                assert b["energy_export"] >= a["energy_export"]
        total = series[-1][1]["energy_import"] - series[0][1]["energy_import"]
        assert total == pytest.approx(imported, abs=1e-3)
        if "energy_export" in series[0][1]:
            total_x = series[-1][1]["energy_export"] - series[0][1]["energy_export"]
            assert total_x == pytest.approx(exported, abs=1e-3)
        weekday_day = [v["power"] for t, v in series if t.weekday() < 5 and t.hour == 11]
        night = [v["power"] for t, v in series if t.hour == 2]
        if "energy_export" not in series[0][1]:  # solar can hide the midday peak
            assert sum(weekday_day) / len(weekday_day) > 1.5 * sum(night) / len(night)


def test_every_emission_decodes_to_its_samples(week: list[Emission]) -> None:
    formats = set()
    for e in week:
        readings = decode_message(e.topic, e.payload, e.time + timedelta(seconds=2))
        assert [r.metric for r in readings] == [s.metric for s in e.samples]
        for r, s in zip(readings, e.samples, strict=True):
            assert (r.sensor_id, r.council, r.kind) == (e.sensor_id, e.council, e.kind)
            assert r.time == s.time
            assert r.value == pytest.approx(float(s.value), rel=1e-9, abs=0.0)
            assert r.unit == KINDS[e.kind].metrics[s.metric].unit
        formats.add(e.payload[:1])
    assert formats == {b"{", b"["}


def test_bad_messages_cover_every_fault_and_are_rejected_as_labelled(fleet: Fleet) -> None:
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    bad = list(bad_messages(7, 3 * len(BAD_KINDS), now, fleet.addresses))
    assert bad == list(bad_messages(7, 3 * len(BAD_KINDS), now, fleet.addresses))
    assert len(BAD_KINDS) >= 12
    assert {b.label for b in bad} == {k[0] for k in BAD_KINDS}
    assert {b.expected_reason for b in bad} >= {
        RejectReason.MALFORMED_JSON,
        RejectReason.NON_FINITE_VALUE,
        RejectReason.WRONG_TYPE,
        RejectReason.UNKNOWN_KIND,
        RejectReason.UNKNOWN_METRIC,
        RejectReason.OUT_OF_RANGE,
        RejectReason.TIME_OUT_OF_RANGE,
        RejectReason.PAYLOAD_TOO_LARGE,
        RejectReason.SENML_MUST_UNDERSTAND,
        RejectReason.INVALID_UTF8,
        RejectReason.BAD_TOPIC,
    }
    assert any(262_144 < len(b.payload) < 1_048_576 for b in bad)  # dead-lettered, not refused
    assert any(b.topic.startswith("civicpulse/") and "/toaster/" in b.topic for b in bad)
    for b in bad:
        with pytest.raises(RejectedPayload) as caught:
            decode_message(b.topic, b.payload, now)
        assert caught.value.reason == b.expected_reason, (b.label, caught.value.detail)


def test_bad_messages_without_pool() -> None:
    bad = list(bad_messages(0, len(BAD_KINDS), START, []))
    assert [b.label for b in bad] == [k[0] for k in BAD_KINDS]
