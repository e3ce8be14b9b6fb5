"""Energy-meter rules: out-of-hours use and spikes against a learned baseline, register resets."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from rules.alerts import Signal
from rules.detectors.base import Conditions, JsonDict, Params, emit, fresh
from rules.energy_baseline import HourOfWeekBaseline, zone
from sensors.reading import Reading

_REGISTERS = ("energy_import", "energy_export")


class EnergyDetector:
    """Rules for ``energy_meter`` sensors, on the ``power`` metric and the registers.

    The baseline (``rules/energy_baseline.py``) is learnt from time-weighted hourly means per
    hour of the week, falling back to the same hour on the same day type (weekday / weekend)
    until a bucket is warm, and for an hour never seen to the working-hours level or the
    night base load. Readings that raise an alert are not learnt. Meters with an export
    (solar) register are not judged out of hours in weekend daylight, when net power says
    little about consumption. Nothing depends on how often the meter reports: the
    out-of-hours rule needs ``energy.ooh_readings`` readings running that span at least
    ``energy.ooh_hold_s`` of event time.
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
        tz = str(params["energy.timezone"])
        local = r.time.astimezone(zone(tz))
        hour, weekend = local.hour, local.weekday() >= 5
        open_h, close_h = int(params["energy.open_hour"]), int(params["energy.close_hour"])
        daytime = open_h <= hour < close_h
        cls = "in" if daytime and not weekend else "out"
        warm = float(params["energy.warmup_per_bucket"])
        alpha = float(params["energy.baseline_alpha"])
        baseline = HourOfWeekBaseline(s, tz)  # the shared learner, on this state
        baseline.advance(r.time, alpha)  # a finished hour is learnt before this reading is judged
        found = baseline.expected(local, cls, warm)
        base = baseline.base(warm)
        out_of_hours = weekend or not daytime
        if weekend and daytime and s.get("solar"):
            out_of_hours = False
        unusual = False
        if found is not None and base is not None:
            expected, dev = found
            excess = r.value - expected
            scale = abs(base[0])
            spike_at = max(
                (float(params["energy.spike_factor"]) - 1) * scale,
                float(params["energy.spike_dev_k"]) * dev,
                float(params["energy.spike_min_w"]),
            )
            ooh_at = max(
                (float(params["energy.ooh_factor"]) - 1) * scale,
                float(params["energy.ooh_dev_k"]) * dev,
                float(params["energy.ooh_min_w"]),
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
            t = r.time.timestamp()
            run = s.get("ooh_run", 0) + 1 if high else 0
            if run == 1 or (run and "ooh_t0" not in s):
                s["ooh_t0"] = t  # the first high reading of the run (or of this code's)
            elif not run:
                s.pop("ooh_t0", None)
            s["ooh_run"] = run
            held = t - float(s.get("ooh_t0", t))
            cond.update(
                out,
                r,
                "energy_out_of_hours",
                violated=run >= int(params["energy.ooh_readings"])
                and held >= float(params["energy.ooh_hold_s"]),
                cleared=not out_of_hours or excess < 0.5 * ooh_at,
                power_w=r.value,
                baseline_w=round(expected, 1),
            )
        baseline.add(r.time, r.value, cls, alpha, learn=not unusual)
