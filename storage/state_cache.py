"""Detector states kept in memory between batches, re-read only when their row changed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from rules.detectors import JsonDict, StateKey

# Only the rows whose version (xmin: the transaction that last wrote them) differs from the
# cached one carry their state; the others come back as NULL and are taken from memory.
_LOAD = """
SELECT d.sensor_id, d.detector, d.xmin::text, k.version IS DISTINCT FROM d.xmin::text,
       CASE WHEN k.version IS DISTINCT FROM d.xmin::text THEN d.state END
FROM detector_state AS d
LEFT JOIN unnest(%s::text[], %s::text[], %s::text[]) AS k(sensor_id, detector, version)
  ON k.sensor_id = d.sensor_id AND k.detector = d.detector
WHERE d.sensor_id = ANY(%s)
"""


class StateCache:
    """Detector states by (sensor, detector), each with the row version it was read or saved at.

    Whatever else writes a state (another engine or worker, the tick, an operator) gives its
    row a new ``xmin``, so a cached copy is used only while the row is the one it came from;
    a rolled-back save leaves the row's old ``xmin``, so the cache then re-reads it too. The
    states handed out are shared: detectors never change a state in place (``fresh``).
    """

    def __init__(self, max_entries: int = 200_000) -> None:
        self._entries: dict[StateKey, tuple[str, JsonDict]] = {}
        self._by_sensor: dict[str, set[str]] = {}
        self._max = max_entries
        self.hits = 0
        self.misses = 0

    def load(self, cur: psycopg.Cursor[Any], sensor_ids: Sequence[str]) -> dict[StateKey, JsonDict]:
        """The states of ``sensor_ids``, as stored now (one round trip, stale ones re-read)."""
        known = dict(kv for s in sensor_ids for kv in self._entries_of(s))
        cur.execute(
            _LOAD,
            (
                [k[0] for k in known],
                [k[1] for k in known],
                [v[0] for v in known.values()],
                list(sensor_ids),
            ),
        )
        states: dict[StateKey, JsonDict] = {}
        for sensor_id, detector, version, stale, state in cur.fetchall():
            key = (sensor_id, detector)
            if not stale:
                states[key] = known[key][1]
                self.hits += 1
            else:
                states[key] = state
                self._put(key, version, state)
                self.misses += 1
        return states

    def saved(self, rows: Sequence[tuple[str, str, str]], states: dict[StateKey, JsonDict]) -> None:
        """Remember ``states`` at the versions their upsert returned (sensor, detector, xmin)."""
        for sensor_id, detector, version in rows:
            key = (sensor_id, detector)
            self._put(key, version, states[key])

    def clear(self) -> None:
        """Forget everything (the next load reads every state)."""
        self._entries.clear()
        self._by_sensor.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def _put(self, key: StateKey, version: str, state: JsonDict) -> None:
        if key not in self._entries and len(self._entries) >= self._max:
            self.clear()  # a bound, not an eviction policy: the next batches re-read
        self._entries[key] = (version, state)
        self._by_sensor.setdefault(key[0], set()).add(key[1])

    def _entries_of(self, sensor_id: str) -> list[tuple[StateKey, tuple[str, JsonDict]]]:
        return [
            ((sensor_id, d), self._entries[(sensor_id, d)])
            for d in self._by_sensor.get(sensor_id, ())
        ]
