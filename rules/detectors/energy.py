"""Energy-meter rules: out-of-hours use and spikes against a learned baseline, register resets."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rules.alerts import Signal
from rules.detectors.base import Conditions, JsonDict, Params, emit, fresh
from rules.energy_baseline import HourOfWeekBaseline, ewma, zone
from sensors.reading import Reading

_REGISTERS = ("energy_import", "energy_export")
_NIGHT = range(0, 5)  # local hours that teach the base load


class EnergyDetector:
    """Rules for ``energy_meter`` sensors, on the ``power`` metric and the registers.

    The baseline is learnt per hour of the week (EWMA), falling back to the same hour on the
    same day type (weekday / weekend) until a week has been seen. Readings that raise an
    alert are not learnt. Meters with an export (solar) register are not judged out of hours
    in weekend daylight, when net power says little about consumption.
    """

    name = "energy"
    rules = frozenset({"energy_out_of_hours", "energy_spike", "energy_register_reset"})
    kinds = frozenset({"energy_meter"})

    def step(
        self, state: JsonDict | None, readings: Sequence[Reading], params: Params, now: datetime
    ) -> tuple[JsonDict, list[Signal]]:
        """Evaluate the energy rules over one meter's new readings."""
        s = fresh(state)
        cond = Conditions(s)
        out: list[Signal] = []
        for r in readings:
            if r.metric in _REGISTERS:
                regs = s.setdefault("reg", {})
                prev = regs.get(r.metric)
                if r.metric == "energy_export":
                    s["solar"] = True
                if prev is not None and r.value < prev - float(
                    params["energy.register_tolerance_kwh"]
                ):
                    out.append(
                        emit(
                            r,
                            "energy_register_reset",
                            True,
                            register=r.metric,
                            previous_kwh=prev,
                            now_kwh=r.value,
                        )
                    )
                regs[r.metric] = r.value
            elif r.metric == "power":
                self._power(s, cond, out, r, params)
        return s, out

    @staticmethod
    def _power(
        s: JsonDict, cond: Conditions, out: list[Signal], r: Reading, params: Params
    ) -> None:
        local = r.time.astimezone(zone(str(params["energy.timezone"])))
        hour, weekend = local.hour, local.weekday() >= 5
        baseline = HourOfWeekBaseline(s)  # the shared hour-of-week learner, on this state
        warm = float(params["energy.warmup_per_bucket"])
        alpha = float(params["energy.baseline_alpha"])
        base = s.get("base")
        expected = baseline.expected(local, warm)
        open_h, close_h = int(params["energy.open_hour"]), int(params["energy.close_hour"])
        daytime = open_h <= hour < close_h
        out_of_hours = weekend or not daytime
        if weekend and daytime and s.get("solar"):
            out_of_hours = False
        unusual = False
        if expected is not None and base is not None and base[2] >= warm:
            excess = r.value - expected
            scale = abs(base[0])
            dev = baseline.typical_deviation(local, warm)
            spike_at = max(
                (float(params["energy.spike_factor"]) - 1) * scale,
                float(params["energy.spike_dev_k"]) * dev,
                float(params["energy.spike_min_w"]),
            )
            ooh_at = max(
                (float(params["energy.ooh_factor"]) - 1) * scale, float(params["energy.ooh_min_w"])
            )
            if excess > spike_at:
                unusual = True
                out.append(
                    emit(
                        r,
                        "energy_spike",
                        True,
                        power_w=r.value,
                        baseline_w=round(expected, 1),
                        threshold_w=round(spike_at, 1),
                    )
                )
            high = out_of_hours and excess > ooh_at
            unusual = unusual or high
            s["ooh_run"] = s.get("ooh_run", 0) + 1 if high else 0
            cond.update(
                out,
                r,
                "energy_out_of_hours",
                violated=s["ooh_run"] >= int(params["energy.ooh_readings"]),
                cleared=not out_of_hours or excess < 0.5 * ooh_at,
                power_w=r.value,
                baseline_w=round(expected, 1),
            )
        if not unusual:
            baseline.learn(local, r.value, alpha)
            if not weekend and hour in _NIGHT:
                s["base"] = ewma(base, r.value, alpha)
