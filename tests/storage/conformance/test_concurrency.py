"""Two writers, one council: the plain-PostgreSQL council rollups lose no update."""

from __future__ import annotations

import threading

import pytest

from storage import ReadingStore, migrate
from storage.rollups import LEVELS
from tests.storage.conformance.contract import dump, same_rows
from tests.storage.conformance.seed import make_seed, truth

pytestmark = pytest.mark.integration


def test_concurrent_writers_of_one_council_keep_council_rollups_exact(fresh_db: str) -> None:
    seed = make_seed(days=0.5, rng_seed=5)
    migrate(fresh_db)
    # Sensor-keyed partitions: each writer owns half of every council's sensors.
    sensors = sorted({r.sensor_id for r in seed.readings})
    halves = [
        [r for r in seed.readings if sensors.index(r.sensor_id) % 2 == side] for side in (0, 1)
    ]
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def write(rows: list) -> None:
        store = ReadingStore(fresh_db)
        try:
            start.wait()
            for i in range(0, len(rows), 40):
                store.write(rows[i : i + 40])
        except BaseException as e:  # surfaced below
            errors.append(e)
        finally:
            store.close()

    threads = [threading.Thread(target=write, args=(half,)) for half in halves]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for level in LEVELS:
        expected = [
            (*k, *v) for k, v in sorted(truth(seed.readings, level.width, level.per_sensor).items())
        ]
        got = dump(fresh_db, level.name)
        assert same_rows(got, expected) is None, f"{level.name}: {same_rows(got, expected)}"
