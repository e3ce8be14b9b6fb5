"""Waste-bin rules: collection needed, fire risk, tilt, and fill drops with no round due."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from itertools import pairwise

from rules.alerts import Signal
from rules.detectors.base import Conditions, JsonDict, Params, emit, fresh
from sensors.reading import Reading

_KEEP_COLLECTIONS = 8


def _round_due(collections: list[float], since: float, t: float, params: Params) -> float | None:
    """The learnt collection round that fell in [since, t] (the drop happened somewhere
    between two readings), give or take the tolerance; None when none did. Needs at least
    two learnt collections.
    """
    # The smallest recent gap: a collection missed by the sensor (a small drop) doubles a
    # gap but never shortens one, so the minimum is the round interval.
    interval = min(b - a for a, b in pairwise(collections))
    if interval <= 0:
        return t
    tolerance = max(float(params["waste.collection_tolerance_s"]), 0.1 * interval)
    last = collections[-1]
    k = max(math.floor((since - tolerance - last) / interval), 1)
    while (due := last + k * interval) <= t + tolerance:
        if due >= since - tolerance:
            return due
        k += 1
    return None


class WasteDetector:
    """Rules for ``waste_bin`` sensors (see docs/alerts.md for each rule's definition)."""

    name = "waste"
    rules = frozenset(
        {"bin_collection_needed", "bin_fire_risk", "bin_tilted", "bin_fill_drop_review"}
    )
    kinds = frozenset({"waste_bin"})

    def step(
        self, state: JsonDict | None, readings: Sequence[Reading], params: Params, now: datetime
    ) -> tuple[JsonDict, list[Signal]]:
        """Evaluate the waste rules over one sensor's new readings."""
        s = fresh(state)
        cond = Conditions(s)
        out: list[Signal] = []
        for r in readings:
            t = r.time.timestamp()
            if r.metric == "fill_level":
                self._fill(s, cond, out, r, t, params)
            elif r.metric == "temperature":
                rise = self._rise(s, t, r.value, float(params["waste.fire_rise_window_s"]))
                s["temp"] = r.value
                hot = r.value >= float(params["waste.fire_temp_c"])
                fast = rise >= float(params["waste.fire_rise_c"])
                cond.update(
                    out,
                    r,
                    "bin_fire_risk",
                    violated=hot or fast,
                    cleared=r.value < float(params["waste.fire_clear_c"]) and not s.get("flag"),
                    temperature=r.value,
                    rise_c=round(rise, 2),
                )
            elif r.metric == "fire":
                s["flag"] = r.value >= 0.5
                cool = s.get("temp", 0.0) < float(params["waste.fire_clear_c"])
                cond.update(
                    out,
                    r,
                    "bin_fire_risk",
                    violated=s["flag"],
                    cleared=not s["flag"] and cool,
                    fire_flag=s["flag"],
                )
            elif r.metric == "tilt":
                cond.update(out, r, "bin_tilted", violated=r.value >= 0.5, cleared=r.value < 0.5)
        return s, out

    @staticmethod
    def _rise(s: JsonDict, t: float, value: float, window: float) -> float:
        """``value`` less the lowest temperature of the last ``window`` seconds (0 when there
        is none, negative when ``value`` is below them all), then ``value`` joins them.

        ``temps`` keeps only the readings that can still be a window's minimum — each newer
        and warmer than the one before it (a sliding-window minimum) — so the state stays a
        few pairs long whatever the cadence. (A state that kept every reading reads the same.)
        """
        temps = [p for p in s.get("temps", []) if t - p[0] <= window]
        rise = value - min((p[1] for p in temps), default=value)
        while temps and temps[-1][1] >= value:
            temps.pop()  # never a minimum again while this colder, newer reading is in window
        temps.append([t, value])
        s["temps"] = temps
        return rise

    @staticmethod
    def _fill(
        s: JsonDict, cond: Conditions, out: list[Signal], r: Reading, t: float, params: Params
    ) -> None:
        cond.update(
            out,
            r,
            "bin_collection_needed",
            violated=r.value >= float(params["waste.fill_threshold_pct"]),
            cleared=r.value < float(params["waste.fill_clear_pct"]),
            fill_pct=r.value,
        )
        last, since = s.get("fill"), s.get("fill_t", t)
        s["fill"], s["fill_t"] = r.value, t
        if last is None or last - r.value < float(params["waste.fill_drop_pct"]):
            return
        collections: list[float] = s.setdefault("collections", [])
        if len(collections) < max(int(params["waste.min_collections"]), 2):
            # Still learning the round: it happened between the two readings (a sensor may
            # have been silent across it), so take the midpoint.
            collections.append((since + t) / 2)
            return
        due = _round_due(collections, since, t, params)
        if due is None:
            out.append(emit(r, "bin_fill_drop_review", True, from_pct=last, to_pct=r.value))
            return
        collections.append(due)
        del collections[:-_KEEP_COLLECTIONS]
