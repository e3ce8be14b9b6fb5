"""Derive the simulator's small JSON profiles from the real Aberdeen air and Edinburgh bin data."""

from __future__ import annotations

import csv
import itertools
import json
import math
import statistics
import sys
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

AIR_SOURCE = (
    "Aberdeen City Council hourly reference monitors (Union Street roadside, Wellington Road) "
    "2017-2019 and Sensor.Community SDS011 nodes 5331/7789/8554 (February 2018), as collected "
    "by the watty62/abdn_air_quality repository"
)
AIR_LICENCE = (
    "Sensor.Community data: Open Database License (ODbL) 1.0; council data as given by "
    "watty62/abdn_air_quality (code MIT)"
)
BIN_SOURCE = (
    "City of Edinburgh Council Open Data, 'litter bin sensor data' (Enevo), 10,000 collections "
    "2016-06-03..2016-08-09, converted from the xlsx in aileenmcd/bin_project"
)
BIN_LICENCE = "Open Government Licence v3.0"
POLLUTANTS = {"no2": "Nitrogen Dioxide", "pm10": "PM10", "pm25": "PM2.5"}


def _quantiles(values: Sequence[float], n: int = 20) -> list[float]:
    """``n + 1`` cut points from the minimum to the maximum (inclusive), 2 decimals."""
    ordered = sorted(values)
    inner = statistics.quantiles(ordered, n=n, method="inclusive")
    return [round(v, 2) for v in (ordered[0], *inner, ordered[-1])]


def hourly_profile(rows: Iterable[Mapping[str, str]]) -> dict[str, Any]:
    """Hour-of-day means (local, hour-beginning), log-residual spread and hourly AR(1) by pollutant.

    ``rows`` are council CSV rows (``DateTime`` is local time, hour-ending). Missing and
    negative values (instrument noise around zero) are skipped.
    """
    series: dict[str, dict[datetime, float]] = {m: {} for m in POLLUTANTS}
    for row in rows:
        hour_start = datetime.strptime(row["DateTime"], "%Y-%m-%d %H:%M:%S") - timedelta(hours=1)  # noqa: DTZ007
        for metric, column in POLLUTANTS.items():
            text = (row.get(column) or "").strip()
            if text and float(text) >= 0:
                series[metric][hour_start] = float(text)
    out: dict[str, Any] = {"weekday": {}, "weekend": {}, "log_sd": {}, "ar1_hourly": {}}
    for metric, values in series.items():
        buckets: dict[tuple[bool, int], list[float]] = defaultdict(list)
        for t, v in values.items():
            buckets[(t.weekday() >= 5, t.hour)].append(v)
        means = {k: statistics.fmean(v) for k, v in buckets.items()}
        out["weekday"][metric] = [round(means[(False, h)], 2) for h in range(24)]
        out["weekend"][metric] = [round(means[(True, h)], 2) for h in range(24)]
        resid = {
            t: math.log(max(v, 1.0)) - math.log(max(means[(t.weekday() >= 5, t.hour)], 1.0))
            for t, v in values.items()
        }
        pairs = [
            (r, resid[t + timedelta(hours=1)])
            for t, r in resid.items()
            if t + timedelta(hours=1) in resid
        ]
        out["log_sd"][metric] = round(statistics.pstdev(resid.values()), 4)
        out["ar1_hourly"][metric] = round(statistics.correlation(*zip(*pairs, strict=True)), 4)
        out.setdefault("n_hours", {})[metric] = len(values)
    ratios = [
        series["pm25"][t] / p10
        for t, p10 in series["pm10"].items()
        if p10 >= 5 and t in series["pm25"]
    ]
    out["pm25_pm10_ratio_median"] = round(statistics.median(ratios), 3)
    return out


def sds011_noise(rows: Iterable[Mapping[str, str]]) -> dict[str, float]:
    """Robust short-term (reading-to-reading) log noise of an SDS011 node's PM10/PM2.5."""
    p10: list[float] = []
    p25: list[float] = []
    for row in rows:
        if row.get("P1") and row.get("P2"):
            p10.append(float(row["P1"]))
            p25.append(float(row["P2"]))

    def mad_sd(values: list[float]) -> float:
        diffs = [
            abs(math.log(max(b, 0.5)) - math.log(max(a, 0.5)))
            for a, b in itertools.pairwise(values)
        ]
        return round(statistics.median(diffs) * 1.4826 / math.sqrt(2), 4)

    return {"pm10_log_sd": mad_sd(p10), "pm25_log_sd": mad_sd(p25), "readings": len(p10)}


def bin_profile(
    rows: Iterable[Mapping[str, str]], min_street_collections: int = 60
) -> dict[str, Any]:
    """Fill-at-collection and collection-interval distributions, collection hours, per street."""
    by_site: dict[str, list[tuple[datetime, float, str]]] = defaultdict(list)
    hours = [0] * 24
    for row in rows:
        if not row["fill_before_pct"]:
            continue
        at = datetime.fromisoformat(row["collected_at_europe_london"])
        by_site[row["site_id"]].append((at, float(row["fill_before_pct"]), row["street"]))
        hours[at.hour] += 1
    fills: list[float] = []
    intervals: list[float] = []
    street_fill: dict[str, list[float]] = defaultdict(list)
    street_iv: dict[str, list[float]] = defaultdict(list)
    street_sites: dict[str, set[str]] = defaultdict(set)
    for site, events in by_site.items():
        events.sort()
        for _at, fill, street in events:
            fills.append(fill)
            street_fill[street].append(fill)
            street_sites[street].add(site)
        for (a, _, street), (b, _, _) in itertools.pairwise(events):
            gap_h = (b - a).total_seconds() / 3600
            intervals.append(gap_h)
            street_iv[street].append(gap_h)
    streets = [
        {
            "street": s,
            "collections": len(street_fill[s]),
            "sites": len(street_sites[s]),
            "median_interval_h": round(statistics.median(street_iv[s]), 2),
            "median_fill_pct": round(statistics.median(street_fill[s]), 2),
        }
        for s in sorted(street_fill, key=lambda s: (-len(street_fill[s]), s))
        if len(street_fill[s]) >= min_street_collections and len(street_iv[s]) >= 2
    ]
    return {
        "fill_at_collection_pct_quantiles": _quantiles(fills),
        "collection_interval_h_quantiles": _quantiles(intervals),
        "collection_hour_counts": hours,
        "collections": len(fills),
        "sites": len(by_site),
        "streets": streets,
    }


def _read(path: Path, delimiter: str) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh, delimiter=delimiter))


def derive(data_dir: Path, out_dir: Path) -> None:
    """Write ``air_profile.json`` and ``bin_profile.json`` from the shared data directory."""
    air = data_dir / "aberdeen-air"
    sites = {
        site: hourly_profile(_read(air / f"council_hourly_aberdeen-{site}.csv", ";"))
        for site in ("union-street-roadside", "wellington-road")
    }
    nodes = {
        n: sds011_noise(_read(air / f"sds011_sensor_{n}_2018-02.csv", ";"))
        for n in (5331, 7789, 8554)
    }
    air_doc = {
        "source": AIR_SOURCE,
        "licence": AIR_LICENCE,
        "derived_by": "python -m simulator.derive <shared/data> simulator/data",
        "units": "ug/m3; hours are local time (Europe/London), hour-beginning",
        "sites": sites,
        "sds011_noise": nodes,
    }
    bins = _read(data_dir / "edinburgh-bins" / "collections_2016-06-03_2016-08-09.csv", ",")
    bin_doc = {
        "source": BIN_SOURCE,
        "licence": BIN_LICENCE,
        "derived_by": "python -m simulator.derive <shared/data> simulator/data",
        "note": "fill is the sensor's reading before collection (the source says 100 % is ~80 % "
        "actual); hours are local time (Europe/London)",
        **bin_profile(bins),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, doc in (("air_profile.json", air_doc), ("bin_profile.json", bin_doc)):
        (out_dir / name).write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    derive(Path(sys.argv[1]), Path(sys.argv[2]))
