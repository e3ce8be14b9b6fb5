"""Forecast core on the simulator's bin model and on the real Edinburgh collection excerpt."""

from __future__ import annotations

import csv
import itertools
import random
import statistics
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from rules.forecast import Cycle, forecast_bin, hours_to_reach, typical_rate
from simulator.bins import BinModel, BinParams

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures/edinburgh"
LONDON = ZoneInfo("Europe/London")


def _crossing(model: BinModel, lo: float, hi: float, level: float) -> float:
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if model.fill(mid) >= level else (mid, hi)
    return hi


def test_simulated_bin_forecast_within_hours_of_the_model_crossing() -> None:
    start = datetime(2026, 9, 1, tzinfo=UTC)
    rng = random.Random(42)
    checked = 0
    for b in range(30):
        model = BinModel(BinParams.draw(rng), "edinburgh", random.Random(b), f"t/{b}", start)
        t0 = start.timestamp()
        k = model.cycle(t0 + 10 * 86400)
        c0, c1 = model.collection_time(k), model.collection_time(k + 1)
        origin = c0 + 0.6 * (c1 - c0)  # well into the cycle: the fit path
        if origin - c0 < 30 * 3600 or model.fill(c1 - 1) < 80 or model.fill(origin) >= 80:
            continue
        ts = [t0 + i * 900 for i in range(int((origin - t0) // 900) + 1)]
        times = [datetime.fromtimestamp(t, tz=UTC) for t in ts]
        fc = forecast_bin(f"b{b}", times, [model.fill(t) for t in ts])
        assert fc is not None and fc.method == "fit" and fc.full_at is not None
        truth = _crossing(model, origin, c1 - 1, 80.0)
        # The model's rate swings +-60 % over the day; a day-long linear fit stays close.
        assert abs(fc.full_at.timestamp() - truth) / 3600 < 4.0
        checked += 1
    assert checked >= 5


def test_edinburgh_site_typical_rate_is_median_of_cycle_rates_by_hand() -> None:
    with (FIXTURE / "collections_princes_street_4_sites.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["site_id"] == "325044"]
    events = sorted(
        (
            datetime.fromisoformat(r["collected_at_europe_london"]).replace(tzinfo=LONDON),
            float(r["fill_before_pct"]),
            float(r["fill_after_pct"]),
        )
        for r in rows
    )
    cycles, rates = [], []
    for (t0, _, after), (t1, before, _) in itertools.pairwise(events):
        hours = (t1.timestamp() - t0.timestamp()) / 3600  # real elapsed time
        cycles.append(Cycle((t0.timestamp(), t1.timestamp()), (after, before)))
        if before > after:
            rates.append((before - after) / hours)  # two points: slope by hand
    assert len(cycles) >= 20
    assert typical_rate(cycles, history=8) == pytest.approx(statistics.median(rates[-8:]))
    rate = statistics.median(rates[-8:])
    assert hours_to_reach(80.0, 0.0, rate) == pytest.approx(80.0 / rate)
