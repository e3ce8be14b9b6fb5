"""Waste-bin rules: collection needed, fire risk, tilt, and fill drops with no round due."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import datetime
from itertools import pairwise

from sensors.reading import Reading
from stream_processors.core.alerts import Signal
from stream_processors.core.detectors.base import Conditions, JsonDict, Params, emit, fresh

_KEEP_COLLECTIONS = 8


def _round_due(collections: list[float], t: float, params: Params) -> bool | None:
    """Whether a collection round is due at ``t``; None until the schedule is learnt."""
    if len(collections) < max(int(params["waste.min_collections"]), 2):
        return None
    gaps = [b - a for a, b in pairwise(collections)]
    interval = statistics.median(gaps)
    if interval <= 0:
        return None
    last = collections[-1]
    rounds = max(round((t - last) / interval), 1)
    tolerance = max(float(params["waste.collection_tolerance_s"]), 0.1 * interval)
    return abs(t - (last + rounds * interval)) <= tolerance


class WasteDetector:
    """Rules for ``waste_bin`` sensors (see docs/alerts.md for each rule's definition)."""

    name = "waste"
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
                window = float(params["waste.fire_rise_window_s"])
                temps = [p for p in s.get("temps", []) if t - p[0] <= window]
                rise = r.value - min((p[1] for p in temps), default=r.value)
                temps.append([t, r.value])
                s["temps"] = temps
                s["temp"] = r.value
                hot = r.value >= float(params["waste.fire_temp_c"])
                fast = rise >= float(params["waste.fire_rise_c"])
                cond.update(
                    out, r, "bin_fire_risk", violated=hot or fast,
                    cleared=r.value < float(params["waste.fire_clear_c"]) and not s.get("flag"),
                    temperature=r.value, rise_c=round(rise, 2),
                )
            elif r.metric == "fire":
                s["flag"] = r.value >= 0.5
                cool = s.get("temp", 0.0) < float(params["waste.fire_clear_c"])
                cond.update(out, r, "bin_fire_risk", violated=s["flag"],
                            cleared=not s["flag"] and cool, fire_flag=s["flag"])
            elif r.metric == "tilt":
                cond.update(out, r, "bin_tilted", violated=r.value >= 0.5, cleared=r.value < 0.5)
        return s, out

    @staticmethod
    def _fill(
        s: JsonDict, cond: Conditions, out: list[Signal], r: Reading, t: float, params: Params
    ) -> None:
        cond.update(
            out, r, "bin_collection_needed",
            violated=r.value >= float(params["waste.fill_threshold_pct"]),
            cleared=r.value < float(params["waste.fill_clear_pct"]), fill_pct=r.value,
        )
        last = s.get("fill")
        s["fill"] = r.value
        if last is None or last - r.value < float(params["waste.fill_drop_pct"]):
            return
        collections: list[float] = s.setdefault("collections", [])
        due = _round_due(collections, t, params)
        if due is False:
            out.append(emit(r, "bin_fill_drop_review", True, from_pct=last, to_pct=r.value))
            return
        collections.append(t)
        del collections[:-_KEEP_COLLECTIONS]
