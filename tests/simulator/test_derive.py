"""Profile derivation on real-data excerpts, and the packaged profiles the models load."""

from __future__ import annotations

import csv
import json
from importlib import resources
from pathlib import Path

from simulator.derive import bin_profile, hourly_profile, sds011_noise
from simulator.profiles import air_sites, inverse_cdf
from simulator.profiles import bin_profile as packaged_bin_profile

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _rows(path: Path, delimiter: str) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter=delimiter))


def test_hourly_profile_of_two_real_weeks_has_a_morning_rush() -> None:
    rows = _rows(FIXTURES / "aberdeen" / "council_hourly_wellington-road.csv", ";")
    prof = hourly_profile(rows)
    no2 = prof["weekday"]["no2"]
    assert len(no2) == 24 and len(prof["weekend"]["pm10"]) == 24
    assert max(no2[7:10]) > 2 * min(no2[1:5])
    assert 0 < prof["log_sd"]["no2"] < 2 and 0 < prof["ar1_hourly"]["no2"] < 1
    assert 0.2 < prof["pm25_pm10_ratio_median"] < 1


def test_sds011_noise_and_bin_profile_from_excerpts() -> None:
    noise = sds011_noise(
        _rows(FIXTURES / "aberdeen" / "sds011_sensor_5331_2018-02-05_06-10.csv", ";")
    )
    assert noise["readings"] > 50 and 0 < noise["pm25_log_sd"] < 1
    bins = bin_profile(
        _rows(FIXTURES / "edinburgh" / "collections_princes_street_4_sites.csv", ","), 10
    )
    fills = bins["fill_at_collection_pct_quantiles"]
    assert len(fills) == 21 and fills == sorted(fills) and fills[-1] <= 100
    assert bins["sites"] == 4 and bins["streets"][0]["street"] == "Princes Street"
    assert 6 < bins["streets"][0]["median_interval_h"] < 120


def test_packaged_profiles_carry_source_and_licence() -> None:
    for name in ("air_profile.json", "bin_profile.json"):
        doc = json.loads(resources.files("simulator").joinpath("data", name).read_text("utf-8"))
        assert doc["source"] and doc["licence"] and doc["derived_by"]
    assert {s.name for s in air_sites()} == {"union-street-roadside", "wellington-road"}
    prof = packaged_bin_profile()
    assert 60 < prof.median_fill_pct < 95 and 20 < prof.median_interval_h < 60
    assert inverse_cdf((0.0, 10.0, 20.0), 0.25) == 5.0
