"""The running engine's alert thresholds, published to ``rule_settings`` for the dashboards.

The dashboards' SQL (``dash_rule()`` and the ``dash_sensor_status`` view, sql/037) reads the
thresholds from this table, so a council's override changes the alerts and the dashboards
alike.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import orjson
import psycopg

from rules.thresholds import Thresholds

_REPLACE = """
INSERT INTO rule_settings (scope, name, key, value)
SELECT u.scope, u.name, u.key, u.value
  FROM jsonb_to_recordset(%s::jsonb) AS u (scope text, name text, key text, value jsonb)
"""


def _rows(thresholds: Thresholds) -> Iterator[dict[str, Any]]:
    layers: tuple[tuple[str, Mapping[str, Mapping[str, Any]]], ...] = (
        ("default", {"": thresholds.defaults}),
        ("council", thresholds.councils),
        ("site", thresholds.sites),
        ("sensor", thresholds.sensors),
    )
    for scope, named in layers:
        for name, params in sorted(named.items()):
            for key, value in sorted(params.items()):
                yield {"scope": scope, "name": name, "key": key, "value": value}


def publish_thresholds(cur: psycopg.Cursor[Any], thresholds: Thresholds) -> int:
    """Replace ``rule_settings`` with every layer of ``thresholds``; returns the row count.

    Runs in the caller's transaction (the rows change when it commits). Every value is
    stored as JSON (numbers, strings, lists); ``dash_rule()`` reads the numeric ones.
    """
    rows = list(_rows(thresholds))
    cur.execute("DELETE FROM rule_settings")
    cur.execute(_REPLACE, (orjson.dumps(rows).decode(),))
    return len(rows)
