"""Backtest bin fill forecasts (MAE of time-to-full, hours) on Edinburgh data and the simulator.

Run: ``/tmp/venv/bin/python benchmarks/bin_backtest.py [--edinburgh-csv PATH] [--bins N]``.

Edinburgh (real, collection events only): each row is the Enevo fill just before a
collection, so a site gives one (interval, fill reached) pair per cycle and no curve inside
it. What that can test: the *history* path of the forecast — predict, at the moment a bin is
emptied, how long it takes to reach the level it was later found at, from the typical rate
of its previous cycles (``typical_rate`` + ``hours_to_reach``); truth is the interval. What
it cannot test: the Theil–Sen fit on the live fill curve (no intra-cycle reads), when a bin
crossed 80 % (never observed), or bins that hit 100 % (sensor scale; 100 = about 80 % real;
they are censored and left out). A time-to-level is independent of that 80/100 scale factor.

Simulator (simulator/bins.py): 15-minute fill reads of simulated bins; at origins
every 6 h the forecast sees the last 10 days of reads and predicts when the bin reaches the
threshold; truth is the model's exact crossing time (bisection on the noise-free fill).
Run clean and with ultrasonic noise (Gaussian 2 points + 2 % wild mis-reads).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import random
import statistics
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from rules.forecast import (
    DEFAULT_THRESHOLD,
    Cycle,
    forecast_bin,
    hours_to_reach,
    typical_rate,
)
from simulator.bins import BinModel, BinParams

LONDON = ZoneInfo("Europe/London")
FIXTURE = Path(__file__).resolve().parent.parent / "tests/fixtures/edinburgh"
DEFAULT_CSV = FIXTURE / "collections_princes_street_4_sites.csv"


def _mae(errors: list[float]) -> str:
    if not errors:
        return "n/a (no cases)"
    return f"{statistics.fmean(abs(e) for e in errors):7.2f} h  (n={len(errors)})"


def edinburgh(path: Path, min_history: int = 3) -> None:
    """History-path backtest on collection events."""
    sites: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    with path.open(newline="") as fh:
        for row in csv.DictReader(fh):
            local = datetime.fromisoformat(row["collected_at_europe_london"])
            t = local.replace(tzinfo=LONDON).timestamp()
            before, after = float(row["fill_before_pct"]), float(row["fill_after_pct"])
            sites[row["site_id"]].append((t, before, after))
    errors: list[float] = []
    naive: list[float] = []
    censored = 0
    for events in sites.values():
        events.sort()
        cycles: list[Cycle] = []
        intervals: list[float] = []
        for (t0, _, after0), (t1, before1, _) in itertools.pairwise(events):
            truth_h = (t1 - t0) / 3600.0
            rate = typical_rate(cycles)
            if before1 >= 100.0:
                censored += 1  # reached the sensor's 100 % at an unknown time before
            elif len(cycles) >= min_history and rate is not None and before1 > after0:
                pred = hours_to_reach(before1, after0, rate)
                if pred is not None:
                    errors.append(pred - truth_h)
                    naive.append(statistics.median(intervals[-8:]) - truth_h)
            cycles.append(Cycle((t0, t1), (after0, before1)))
            intervals.append(truth_h)
    print(f"Edinburgh {path.name}: {len(sites)} sites, {censored} cycles censored at 100 %")
    print(f"  forecast time-to-level (typical rate x level)  MAE {_mae(errors)}")
    print(f"  naive 'same interval as usual' baseline       MAE {_mae(naive)}")


def _truth_crossing(model: BinModel, origin: float, threshold: float) -> float | None:
    """Unix seconds the model's fill reaches ``threshold`` in the cycle of ``origin``."""
    k = model.cycle(origin)
    end = model.collection_time(k + 1) - 1.0
    if model.fill(end) < threshold:
        return None
    lo, hi = origin, end
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if model.fill(mid) >= threshold else (mid, hi)
    return hi


def simulator(
    n_bins: int, days: int, noise: bool, threshold: float, seed: int = 5
) -> dict[str, list[float]]:
    """Errors (predicted - true hours to threshold) by forecast method."""
    rng = random.Random(f"bin-backtest/{seed}")
    start = datetime(2026, 9, 1, tzinfo=UTC)
    step, history = 900, 10 * 86400
    out: dict[str, list[float]] = defaultdict(list)
    misses = {"never_full": 0, "never_full_but_forecast_due": 0, "full_but_no_forecast": 0}
    for b in range(n_bins):
        params = BinParams.draw(rng)
        model = BinModel(params, "edinburgh", random.Random(b), f"bt/{seed}/{b}", start)
        noise_rng = random.Random(f"noise/{seed}/{b}")
        ts = [start.timestamp() + i * step for i in range(days * 86400 // step)]
        fills = []
        for t in ts:
            f = model.fill(t)
            if noise:
                f += noise_rng.gauss(0.0, 2.0)
                if noise_rng.random() < 0.02:
                    f = noise_rng.uniform(0.0, 100.0)
            fills.append(min(max(f, 0.0), 100.0))
        origin = ts[0] + history
        while origin < ts[-1]:
            lo = int((origin - history - ts[0]) // step)
            hi = int((origin - ts[0]) // step) + 1
            origin_dt = datetime.fromtimestamp(origin, tz=UTC)
            if model.fill(origin) < threshold:
                times = [datetime.fromtimestamp(t, tz=UTC) for t in ts[lo:hi]]
                fc = forecast_bin(f"bin-{b}", times, fills[lo:hi], threshold=threshold)
                truth = _truth_crossing(model, origin, threshold)
                due = fc is not None and fc.full_at is not None
                if truth is None:
                    misses["never_full"] += 1
                    nxt = model.collection_time(model.cycle(origin) + 1)
                    if due and fc is not None and fc.full_at is not None:
                        misses["never_full_but_forecast_due"] += fc.full_at.timestamp() < nxt
                elif not due:
                    misses["full_but_no_forecast"] += 1
                elif fc is not None and fc.full_at is not None:
                    pred_h = (fc.full_at - origin_dt).total_seconds() / 3600.0
                    out[fc.method].append(pred_h - (truth - origin) / 3600.0)
            origin += 6 * 3600
    out["_misses"] = [float(v) for v in misses.values()]
    return out


def report_simulator(n_bins: int, days: int, threshold: float) -> None:
    """Print MAE overall and by method, clean and noisy."""
    for noise in (False, True):
        res = simulator(n_bins, days, noise, threshold)
        never, fa, nf = res.pop("_misses")
        allerr = [e for v in res.values() for e in v]
        label = "noisy (2-pt Gaussian + 2 % mis-reads)" if noise else "clean"
        print(f"Simulator {n_bins} bins x {days} d, threshold {threshold:g} %, {label}:")
        print(f"  all forecasts                                  MAE {_mae(allerr)}")
        for method, errs in sorted(res.items()):
            print(f"    method={method:<8}                               MAE {_mae(errs)}")
        short = [e for e in allerr if abs(e) < 1e9]
        print(
            f"  median |error| {statistics.median(abs(e) for e in short):.2f} h; "
            f"origins in cycles collected before reaching it: {never:.0f}, of which "
            f"forecast due before that collection: {fa:.0f}; reached but no forecast: {nf:.0f}"
        )


def main() -> None:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--edinburgh-csv", type=Path, default=DEFAULT_CSV)
    ap.add_argument("--bins", type=int, default=40)
    ap.add_argument("--days", type=int, default=35)
    ap.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    args = ap.parse_args()
    edinburgh(args.edinburgh_csv)
    report_simulator(args.bins, args.days, args.threshold)


if __name__ == "__main__":
    main()
