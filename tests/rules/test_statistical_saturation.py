"""Issue 20 bench: humidity falling from saturation is weather, not a statistical outlier.

An air monitor in fog reads 99-100 %RH for hours (the value is clipped at saturation), so
the window's MAD is ~0.2 %RH, under the 0.5 floor; when the fog clears the humidity falls
~6 %RH in 15 minutes and the old floor made that |z| > 8 (the bench's one false
``statistical_outlier``, aq-005 at 19:22). The humidity floor is now the accuracy of RH
sensors (``statistical.humidity_min_scale``, 2 %RH); a failed sensor still alerts.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from rules.detectors import default_detectors, robust_z, run_detectors
from rules.thresholds import DEFAULTS, Thresholds
from sensors.reading import Reading

T0 = datetime(2026, 1, 6, 15, 0, tzinfo=UTC)
STEP = 150.0
# the bench's aq-005 from 19:02 (after ~2.5 h at saturation), one reading per 150 s
FOG_CLEARS = [99.5, 98.0, 98.5, 97.6, 97.1, 96.3, 95.8, 94.7, 93.7, 93.7, 93.9, 93.1, 93.0]


def rh(values: list[float], metric: str = "humidity") -> list[Reading]:
    unit = "%RH" if metric == "humidity" else "Cel"
    return [
        Reading(
            sensor_id="aq-1",
            council="aberdeen",
            kind="air_quality",
            metric=metric,
            value=v,
            unit=unit,
            time=T0 + timedelta(seconds=i * STEP),
            received_at=T0 + timedelta(seconds=i * STEP),
        )
        for i, v in enumerate(values)
    ]


def saturated(n: int = 60, seed: int = 3) -> list[float]:
    rng = random.Random(seed)
    return [round(min(99.0 + rng.random(), 100.0), 1) for _ in range(n)]


def outliers(values: list[float], metric: str = "humidity") -> list[int]:
    out = run_detectors(default_detectors(), {}, rh(values, metric), Thresholds(), T0).signals
    return [
        round((s.at - T0).total_seconds() / STEP)
        for s in out
        if s.rule == "statistical_outlier" and s.active
    ]


def test_fog_clearing_was_an_outlier_under_the_old_floor_and_is_none_now() -> None:
    window = saturated()
    old_floor = float(DEFAULTS["statistical.min_scale"])
    assert abs(robust_z(window[-96:], 93.7, old_floor)) >= 8.0  # what the bench saw
    assert outliers(window + FOG_CLEARS) == []


def test_a_failed_humidity_sensor_still_alerts() -> None:
    window = saturated()
    assert outliers([*window, 60.0, 99.4, 99.6]) == [len(window)]


def test_other_metrics_keep_their_floor() -> None:
    rng = random.Random(4)
    temps = [round(5.0 + rng.gauss(0, 0.05), 2) for _ in range(60)]
    assert outliers([*temps, 10.0, 5.0], "temperature") == [60]  # 5 °C over a 0.5 floor
