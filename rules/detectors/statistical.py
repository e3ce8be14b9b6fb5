"""Statistical rule: a robust rolling z-score (median / MAD) per sensor and metric."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import datetime

from rules.alerts import Signal
from rules.detectors.base import Conditions, JsonDict, Params, fresh
from sensors.reading import Reading

_MAD_TO_SD = 1.4826  # MAD of a normal distribution x this = its standard deviation


def robust_z(window: Sequence[float], value: float, floor: float = 1e-6) -> float:
    """(value - median) / (1.4826 x MAD) of ``window``; the MAD is floored to avoid x/0."""
    med = statistics.median(window)
    mad = statistics.median(abs(v - med) for v in window)
    return (value - med) / max(_MAD_TO_SD * mad, floor)


class StatisticalDetector:
    """Flags values far outside a metric's recent robust spread, after a warm-up.

    Applies to the metrics in ``statistical.metrics`` of air-quality monitors (bins and
    meters have domain rules for what matters there). Each value joins the window after it
    is judged, so a lasting level shift stops alerting once it becomes the new normal.
    """

    name = "statistical"
    rules = frozenset({"statistical_outlier"})
    kinds = frozenset({"air_quality"})

    def step(
        self, state: JsonDict | None, readings: Sequence[Reading], params: Params, now: datetime
    ) -> tuple[JsonDict, list[Signal]]:
        """Evaluate the z-score of each watched reading against its metric's window."""
        s = fresh(state)
        cond = Conditions(s)
        out: list[Signal] = []
        metrics = set(params["statistical.metrics"])
        size, warmup = int(params["statistical.window"]), int(params["statistical.warmup"])
        limit, clear = float(params["statistical.z"]), float(params["statistical.clear_z"])
        floor = float(params["statistical.min_scale"])
        # Humidity saturates (clipped at ~100 %RH in fog and rain): a window of saturated
        # values has a MAD far below the sensor's accuracy, and the weather clearing looks
        # like an outlier; its floor is the accuracy of RH sensors (±2 %RH), not 0.5.
        floors = {"humidity": float(params["statistical.humidity_min_scale"])}
        windows: dict[str, list[float]] = s.setdefault("w", {})
        outlying: list[str] = s.setdefault("out", [])
        for r in readings:
            if r.metric not in metrics:
                continue
            window = windows.setdefault(r.metric, [])
            if len(window) >= warmup:
                z = robust_z(window, r.value, floors.get(r.metric, floor))
                if abs(z) >= limit and r.metric not in outlying:
                    outlying.append(r.metric)
                elif abs(z) < clear and r.metric in outlying:
                    outlying.remove(r.metric)
                cond.update(
                    out,
                    r,
                    "statistical_outlier",
                    violated=abs(z) >= limit,
                    cleared=not outlying,
                    metric=r.metric,
                    value=r.value,
                    z=round(z, 2),
                )
            window.append(r.value)
            del window[:-size]
        return s, out
