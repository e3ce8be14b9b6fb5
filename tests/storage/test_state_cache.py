"""The detector-state cache on real PostgreSQL: a cached state is used until its row changes."""

from __future__ import annotations

import psycopg
import pytest

from storage import alerts_store as db
from storage import migrate
from storage.state_cache import StateCache


@pytest.fixture
def url(fresh_db: str) -> str:
    migrate(fresh_db)
    return fresh_db


def _save(url: str, states: dict, cache: StateCache | None = None) -> None:
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        db.save_states(cur, states, cache)


def _load(url: str, cache: StateCache, sensors: list[str]) -> dict:
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        return cache.load(cur, sensors)


def test_saved_states_come_from_memory_until_their_row_changes(url: str) -> None:
    cache = StateCache()
    a, b = {"t": 1.0, "n": 1}, {"t": 2.0, "n": [1, 2]}
    _save(url, {("s1", "air"): a, ("s2", "health"): b}, cache)

    first = _load(url, cache, ["s1", "s2", "s3"])
    assert first == {("s1", "air"): a, ("s2", "health"): b}
    assert first[("s1", "air")] is a  # not re-read, not re-parsed
    assert (cache.hits, cache.misses) == (2, 0)

    _save(url, {("s1", "air"): {"t": 9.0, "n": 2}})  # another writer: no cache of its own
    second = _load(url, cache, ["s1", "s2"])
    assert second[("s1", "air")] == {"t": 9.0, "n": 2}
    assert second[("s2", "health")] is b
    assert (cache.hits, cache.misses) == (3, 1)


def test_a_rolled_back_save_is_not_believed(url: str) -> None:
    cache = StateCache()
    _save(url, {("s1", "air"): {"t": 1.0}}, cache)
    with psycopg.connect(url) as conn:
        with conn.cursor() as cur:
            db.save_states(cur, {("s1", "air"): {"t": 5.0}}, cache)  # cached at its new xmin...
        conn.rollback()  # ...which never commits
    assert _load(url, cache, ["s1"]) == {("s1", "air"): {"t": 1.0}}


def test_a_state_deleted_elsewhere_is_gone_and_one_added_elsewhere_is_read(url: str) -> None:
    cache = StateCache()
    _save(url, {("s1", "air"): {"t": 1.0}}, cache)
    with psycopg.connect(url) as conn:
        conn.execute("DELETE FROM detector_state WHERE sensor_id = 's1'")
    _save(url, {("s1", "health"): {"t": 3.0}})
    assert _load(url, cache, ["s1"]) == {("s1", "health"): {"t": 3.0}}


def test_the_bound_empties_the_cache_instead_of_growing(url: str) -> None:
    cache = StateCache(max_entries=3)
    _save(url, {(f"s{i}", "air"): {"t": float(i)} for i in range(5)}, cache)
    assert len(cache) <= 3
    loaded = _load(url, cache, [f"s{i}" for i in range(5)])
    assert loaded == {(f"s{i}", "air"): {"t": float(i)} for i in range(5)}


def test_a_json_null_state_written_elsewhere_is_read_not_mistaken_for_a_hit(url: str) -> None:
    cache = StateCache()
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO detector_state (sensor_id, detector, state, updated_at)"
            " VALUES ('s1', 'air', 'null'::jsonb, now())"
        )
    assert _load(url, cache, ["s1"]) == {("s1", "air"): None}
    assert (cache.hits, cache.misses) == (0, 1)
