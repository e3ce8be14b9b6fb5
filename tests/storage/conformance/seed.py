"""A deterministic seed for the read contract, its loaders (store, INSERTs) and numpy truth."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg

from sensors.reading import Reading
from storage.readings_store import STAGE_DDL, ReadingStore, apply_stage

START = datetime(2026, 3, 28, tzinfo=UTC)  # spans the UK clock change (buckets stay UTC)
ORIGIN = np.datetime64("2000-01-03T00:00:00", "us")
COUNCILS = ("aberdeen", "edinburgh", "glasgow")
# kind → (metrics with (unit, low, high), seconds between readings, sensors per council)
KINDS = {
    "air_quality": (
        (
            ("pm2_5", "ug/m3", 0, 80),
            ("pm10", "ug/m3", 0, 120),
            ("no2", "ug/m3", 0, 200),
            ("temperature", "Cel", -5, 25),
        ),
        600,
        2,
    ),
    "waste_bin": (
        (("fill_level", "%", 0, 100), ("battery", "%", 20, 100), ("tilt", "bool", 0, 1)),
        1800,
        2,
    ),
    "energy_meter": ((("energy_import", "kWh", 0, 1e6), ("power", "W", -5e3, 2e4)), 1800, 1),
}
CUMULATIVE = frozenset({"energy_import", "energy_export"})  # no council rollups for these


@dataclass(frozen=True)
class Seed:
    """Unique readings (the truth) and the batches that deliver them, late and replayed."""

    readings: list[Reading]
    batches: list[list[Reading]]


def make_seed(start: datetime = START, days: float = 2.5, rng_seed: int = 20261125) -> Seed:
    """Jittered readings with gaps, a sensor that stops early, late data and replays."""
    rng = np.random.default_rng(rng_seed)
    span = days * 86400
    out: list[Reading] = []
    for council in COUNCILS:
        for kind, (metrics, every, count) in KINDS.items():
            for i in range(count):
                sensor = f"{council[:3]}-{kind[:3]}-{i}"
                stop = span / 2.7 if (council, kind, i) == ("glasgow", "air_quality", 1) else span
                offsets = np.arange(rng.uniform(0, every), stop, every)
                offsets = offsets + rng.uniform(-every / 3, every / 3, offsets.size)
                offsets = offsets[(offsets >= 0) & (rng.random(offsets.size) > 0.05)]
                for metric, unit, low, high in metrics:
                    values = rng.uniform(low, high, offsets.size)
                    if unit == "bool":
                        values = np.round(values)
                    elif metric == "energy_import":
                        values = np.sort(values)
                    for off, value in zip(offsets, values, strict=True):
                        t = start + timedelta(microseconds=int(off * 1e6) // 1000 * 1000)
                        out.append(
                            Reading(
                                sensor_id=sensor,
                                council=council,
                                kind=kind,
                                metric=metric,
                                value=float(value),
                                unit=unit,
                                time=t,
                                received_at=t + timedelta(seconds=2),
                            )
                        )
    out.sort(key=lambda r: r.time)
    late_mask = rng.random(len(out)) < 0.03
    on_time = [r for r, late in zip(out, late_mask, strict=True) if not late]
    late = [r for r, is_late in zip(out, late_mask, strict=True) if is_late]
    replay = [out[i] for i in rng.choice(len(out), 300, replace=False)]
    batches = [on_time[i : i + 700] for i in range(0, len(on_time), 700)]
    batches += [late[i : i + 700] for i in range(0, len(late), 700)] + [replay]
    return Seed(out, batches)


def load_with_store(url: str, seed: Seed) -> None:
    """The production path: the readings store (COPY + upsert + rollups in one transaction)."""
    store = ReadingStore(url)
    try:
        for batch in seed.batches:
            store.write(batch)
    finally:
        store.close()


def load_with_inserts(url: str, seed: Seed) -> None:
    """The WASM server cannot take COPY: stage with INSERTs, then the store's own SQL."""
    insert_batches(url, seed.batches)


def insert_batches(url: str, batches: Iterable[Sequence[Reading]]) -> None:
    """Each batch staged with multi-row INSERTs (no COPY), then the store's own SQL."""
    with psycopg.connect(url) as conn:
        conn.execute(STAGE_DDL)
        for batch in batches:
            with conn.transaction(), conn.cursor() as cur:
                for part in _chunks(batch, 250):
                    values = ", ".join(["(%s, %s, %s, %s, %s, %s, %s, %s)"] * len(part))
                    params = [
                        x
                        for r in part
                        for x in (
                            r.time,
                            r.council,
                            r.sensor_id,
                            r.kind,
                            r.metric,
                            r.value,
                            r.unit,
                            r.received_at,
                        )
                    ]
                    cur.execute(f"INSERT INTO readings_stage VALUES {values}", params)
                apply_stage(cur, maintain_rollups=False)


def _chunks(rows: Sequence[Reading], size: int) -> Iterator[Sequence[Reading]]:
    for i in range(0, len(rows), size):
        yield rows[i : i + size]


def truth(readings: Sequence[Reading], width: timedelta, per_sensor: bool) -> dict[tuple, tuple]:
    """Rollup rows computed with numpy straight from the raw readings (no hierarchy)."""
    rows = readings if per_sensor else [r for r in readings if r.metric not in CUMULATIVE]
    t = np.array([r.time.replace(tzinfo=None) for r in rows], dtype="datetime64[us]")
    v = np.array([r.value for r in rows])
    step = np.timedelta64(int(width.total_seconds() * 1e6), "us")
    bucket = ORIGIN + ((t - ORIGIN) // step) * step
    if per_sensor:
        keys = [(r.council, r.sensor_id, r.kind, r.metric) for r in rows]
    else:
        keys = [(r.council, r.kind, r.metric) for r in rows]
    groups: dict[tuple, list[int]] = {}
    for i, (k, b) in enumerate(zip(keys, bucket.tolist(), strict=True)):
        groups.setdefault((b.replace(tzinfo=UTC), *k), []).append(i)
    out: dict[tuple, tuple] = {}
    for key, idx in groups.items():
        ix = np.array(idx)
        vals, times = v[ix], t[ix]
        total, n = float(np.sum(vals)), int(ix.size)
        stats = (n, total, float(vals.min()), float(vals.max()), total / n)
        if per_sensor:
            j = int(np.argmax(times))
            stats += (float(vals[j]), times[j].item().replace(tzinfo=UTC))
        else:
            stats = (len({rows[i].sensor_id for i in idx}), *stats)
        out[key] = stats
    return out
