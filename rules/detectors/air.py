"""Air-quality rules: site DAQI High / Very High, and legal-limit exceedances counted per year."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from rules.air_quality import DAILY, HOURLY, limit_for
from rules.alerts import Severity, Signal
from rules.daqi import POLLUTANTS, DaqiState
from rules.detectors.base import Conditions, JsonDict, Params, emit, fresh
from sensors.catalogue import AIR_QUALITY
from sensors.reading import Reading

_STEP_S = 900  # every DAQI averaging period ends on a 15-minute boundary (SO2's base)
_KEEP = timedelta(hours=25)  # longest window (PM 24 h) plus the hour being filled
_NO2_HOURLY = limit_for("no2", HOURLY)
_PM10_DAILY = limit_for("pm10", DAILY)


class AirDetector:
    """DAQI per monitor (each sensor its own index) via :class:`DaqiState`, evaluated at each
    15-min boundary the readings cross, so the result depends only on complete periods (DEFRA's
    averaging and data-capture rules live in ``core.daqi``). Exceedances of the hourly NO2
    and daily PM10 limits are counted per calendar year (UTC = GMT days) and become
    critical once the count passes the number allowed.
    """

    name = "air"
    rules = frozenset(
        {"daqi_high", "daqi_very_high", "no2_hourly_exceedance", "pm10_daily_exceedance"}
    )
    kinds = frozenset({AIR_QUALITY.name})

    def step(
        self, state: JsonDict | None, readings: Sequence[Reading], params: Params, now: datetime
    ) -> tuple[JsonDict, list[Signal]]:
        """Add pollutant readings and evaluate at every boundary crossed."""
        s = fresh(state)
        cond = Conditions(s)
        out: list[Signal] = []
        daqi = (
            DaqiState.from_json(s["daqi"])
            if "daqi" in s
            else DaqiState(AIR_QUALITY.expected_interval_s)
        )
        for r in readings:
            if r.metric not in POLLUTANTS:
                continue
            boundary = int(r.time.timestamp()) // _STEP_S * _STEP_S
            last = s.get("b")
            if last is not None and boundary > last:
                self._evaluate(s, cond, out, daqi, r, boundary, params)
            s["b"] = boundary if last is None else max(last, boundary)
            daqi.add(r.metric, r.time, r.value)
        if readings:
            daqi.prune(readings[-1].time - _KEEP)
        s["daqi"] = daqi.to_json()
        return s, out

    @staticmethod
    def _evaluate(
        s: JsonDict,
        cond: Conditions,
        out: list[Signal],
        daqi: DaqiState,
        r: Reading,
        boundary: int,
        params: Params,
    ) -> None:
        at = datetime.fromtimestamp(boundary, tz=UTC)
        result = daqi.evaluate(at)
        index = result.site_index or 0
        high, very = int(params["air.daqi_high"]), int(params["air.daqi_very_high"])
        details: dict[str, Any] = {
            "daqi": index,
            "band": result.band,
            "evaluated_at": at.isoformat(),
            "pollutants": {p: [round(c, 1), i] for p, (c, i) in result.per_pollutant.items()},
        }
        cond.update(out, r, "daqi_high", violated=index >= high, cleared=index < high, **details)
        cond.update(
            out, r, "daqi_very_high", violated=index >= very, cleared=index < very, **details
        )
        counts = s.setdefault("exceed", {})
        checks = []
        if boundary % 3600 == 0 and _NO2_HOURLY is not None:
            checks.append(
                (
                    "no2",
                    "no2_hourly_exceedance",
                    float(params["air.no2_hourly_limit"]),
                    _NO2_HOURLY.allowed_per_year,
                )
            )
        if boundary % 86400 == 0 and _PM10_DAILY is not None:
            checks.append(
                (
                    "pm10",
                    "pm10_daily_exceedance",
                    float(params["air.pm10_daily_limit"]),
                    _PM10_DAILY.allowed_per_year,
                )
            )
        for pollutant, rule, limit, allowed in checks:
            mean = result.per_pollutant.get(pollutant)
            if mean is None or mean[0] <= limit:
                continue
            key = f"{rule}:{(at - timedelta(seconds=1)).year}"
            counts[key] = counts.get(key, 0) + 1
            over = allowed is not None and counts[key] > allowed
            out.append(
                emit(
                    r,
                    rule,
                    True,
                    Severity.CRITICAL if over else None,
                    mean=round(mean[0], 1),
                    limit=limit,
                    count_this_year=counts[key],
                    allowed_per_year=allowed,
                    period_end=at.isoformat(),
                )
            )
