"""The dashboards' view follows the thresholds the alert rules ran with (rule_settings, sql/037).

A thresholds file overrides the stale factor and the bin fill threshold for one council, a
site and single sensors; the real detection runs on stored readings and ticks (publishing its
thresholds), and ``dash_sensor_status`` must show the same threshold and staleness as the
alerts that opened. Every expected number below is worked out by hand from the TOML and the
catalogue's intervals (air quality every 150 s, bins every 900 s).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from rules.thresholds import DEFAULTS, Thresholds, parse_thresholds
from sensors.catalogue import KINDS
from sensors.reading import Reading, encode_reading
from storage import ReadingStore, migrate, publish_thresholds
from storage.alerts_store import load_sites
from stream_processors.detection import Detection
from stream_processors.pipeline import ReadingPipeline

pytestmark = pytest.mark.integration

FIRST = """
[councils.edinburgh.health]
stale_factor = 6            # stale after 6 x 150 s = 900 s (default 3 x 150 s = 450 s)
[councils.edinburgh.waste]
fill_threshold_pct = 70

[sites.leith.waste]
fill_threshold_pct = 72
[sites.bin-e6.waste]        # a sensor without a registry row is its own site
fill_threshold_pct = 77

[sensors.aq-e2.health]
stale_factor = 2            # 2 x 150 s = 300 s
[sensors.bin-e3.waste]
fill_threshold_pct = 90     # beats the bin's own 60 % in the registry
"""

SECOND = """
[defaults.waste]
fill_threshold_pct = 85
[councils.edinburgh.waste]
fill_threshold_pct = 75     # and no council stale factor any more: back to 3 x 150 s
[sensors.aq-e2.health]
stale_factor = 2
"""

REGISTRY = [  # sensor, site, the bin's own threshold
    ("bin-e2", "leith", 65.0),
    ("bin-e3", "leith", 60.0),
    ("bin-e4", "leith", None),
]


def _reading(sensor: str, council: str, kind: str, metric: str, value: float, t: datetime) -> bytes:
    return encode_reading(
        Reading(
            sensor_id=sensor,
            council=council,
            kind=kind,
            metric=metric,
            value=value,
            unit=KINDS[kind].metrics[metric].unit,
            time=t,
            received_at=t + timedelta(seconds=1),
        )
    )


def _air(sensor: str, council: str, silent_s: int, now: datetime) -> list[bytes]:
    """Three readings, 150 s apart, the last ``silent_s`` before ``now``."""
    last = now - timedelta(seconds=silent_s)
    return [
        _reading(
            sensor, council, "air_quality", "pm2_5", 5.0 + i, last - timedelta(seconds=150 * i)
        )
        for i in (2, 1, 0)
    ]


def _bin(sensor: str, council: str, fills: Sequence[float], now: datetime) -> list[bytes]:
    """Fill readings every 15 min, the last 15 min before ``now``."""
    n = len(fills)
    return [
        _reading(
            sensor, council, "waste_bin", "fill_level", v, now - timedelta(minutes=15 * (n - i))
        )
        for i, v in enumerate(fills)
    ]


def _run(store: ReadingStore, thresholds: Thresholds, values: list[bytes]) -> ReadingPipeline:
    """A Detection with ``thresholds``: stores ``values`` (detecting) and ticks once."""
    pipeline = ReadingPipeline(store, detection=Detection(thresholds))
    pipeline.process(values)
    pipeline.tick()  # the wall clock, as the view's now()
    return pipeline


def _view(url: str) -> dict[str, tuple[float, bool]]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT sensor_id, threshold_pct, stale FROM dash_sensor_status"
        ).fetchall()
    return {s: (pct, stale) for s, pct, stale in rows}


def _alerted(url: str, rule: str) -> set[str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT sensor_id FROM alerts WHERE rule = %s AND state <> 'resolved'", (rule,)
        ).fetchall()
    return {s for (s,) in rows}


def _params(url: str, thresholds: Thresholds, council: str, sensor: str) -> tuple[Any, Any]:
    with psycopg.connect(url) as conn, conn.cursor() as cur:
        sites = load_sites(cur, [sensor])
    p = thresholds.for_sensor(council, sensor, sites)
    return p["waste.fill_threshold_pct"], p["health.stale_factor"]


def test_view_and_alerts_use_the_same_thresholds_and_follow_a_change(fresh_db: str) -> None:
    migrate(fresh_db)
    with psycopg.connect(fresh_db) as conn:
        for sensor, site, pct in REGISTRY:
            conn.execute(
                "INSERT INTO sensor_sites (sensor_id, council, site, threshold_pct)"
                " VALUES (%s, 'edinburgh', %s, %s)",
                (sensor, site, pct),
            )
    first = parse_thresholds(FIRST)
    now = datetime.now(UTC).replace(microsecond=0)
    values = (
        _air("aq-a1", "aberdeen", 600, now)  # defaults: 600 s > 450 s, stale
        + _air("aq-e1", "edinburgh", 600, now)  # council: 600 s <= 900 s, not stale
        + _air("aq-e2", "edinburgh", 400, now)  # sensor: 400 s > 300 s, stale
        + _air("aq-e3", "edinburgh", 1200, now)  # council: 1200 s > 900 s, stale
        + _bin("bin-a1", "aberdeen", [40, 75, 82], now)  # default 80: due at 82
        + _bin("bin-e1", "edinburgh", [40, 65, 75], now)  # council 70: due at 75
        + _bin("bin-e2", "edinburgh", [40, 60, 67], now)  # own 65 beats site 72: due at 67
        + _bin("bin-e3", "edinburgh", [40, 70, 85], now)  # sensor 90 beats own 60: not due
        + _bin("bin-e4", "edinburgh", [40, 60, 71], now)  # site 72 beats council 70: not due
        + _bin("bin-e6", "edinburgh", [40, 60, 76], now)  # its own site 77: not due
    )
    store_one, store_two = ReadingStore(fresh_db), ReadingStore(fresh_db)
    try:
        one = _run(store_one, first, values)
        expected = {  # threshold %, stale
            "aq-a1": (80.0, True),
            "aq-e1": (70.0, False),
            "aq-e2": (70.0, True),
            "aq-e3": (70.0, True),
            "bin-a1": (80.0, False),
            "bin-e1": (70.0, False),
            "bin-e2": (65.0, False),
            "bin-e3": (90.0, False),
            "bin-e4": (72.0, False),
            "bin-e6": (77.0, False),
        }
        assert _view(fresh_db) == expected
        assert _alerted(fresh_db, "sensor_stale") == {"aq-a1", "aq-e2", "aq-e3"}
        assert _alerted(fresh_db, "bin_collection_needed") == {"bin-a1", "bin-e1", "bin-e2"}
        # the rule's own parameters are the same numbers
        rule = {
            ("aberdeen", "aq-a1"): (80.0, 3.0),
            ("edinburgh", "aq-e1"): (70.0, 6.0),
            ("edinburgh", "aq-e2"): (70.0, 2.0),
            ("edinburgh", "bin-e2"): (65.0, 6.0),
            ("edinburgh", "bin-e3"): (90.0, 6.0),
            ("edinburgh", "bin-e4"): (72.0, 6.0),
            ("edinburgh", "bin-e6"): (77.0, 6.0),
        }
        for (council, sensor), want in rule.items():
            assert _params(fresh_db, first, council, sensor) == want, sensor
        with psycopg.connect(fresh_db) as conn:
            got = conn.execute(
                "SELECT dash_rule('health.stale_factor', 'edinburgh', 'aq-e2'),"
                " dash_rule('waste.fill_clear_pct', 'edinburgh', 'bin-e2'),"  # min(50, 65 - 30)
                " dash_rule('waste.fill_clear_pct', 'edinburgh', 'bin-e3'),"  # min(50, 90 - 30)
                " dash_rule('waste.fill_clear_pct', 'edinburgh', 'bin-e1'),"
                " dash_rule('waste.min_collections', 'aberdeen', 'bin-a1'),"
                " dash_rule('energy.timezone', 'aberdeen', 'bin-a1')"  # a string: not numeric
            ).fetchone()
            assert got == (2.0, 35.0, 50.0, 50.0, 2.0, None)
            with conn.transaction(force_rollback=True):  # Grafana's role can read it all
                conn.execute("SET LOCAL ROLE civicpulse_reader")
                n = conn.execute("SELECT count(*) FROM dash_sensor_status WHERE stale").fetchone()
                assert n == (3,)

        # Another engine (or a restart) runs with changed thresholds: the view follows.
        second = parse_thresholds(SECOND)
        more = _bin("bin-a7", "aberdeen", [40, 60, 83], now) + _bin(
            "bin-e8", "edinburgh", [40, 60, 76], now
        )
        _run(store_two, second, more)
        expected.update(
            {
                "aq-a1": (85.0, True),
                "aq-e1": (75.0, True),  # 600 s > 450 s now
                "aq-e2": (75.0, True),
                "aq-e3": (75.0, True),
                "bin-a1": (85.0, False),
                "bin-e1": (75.0, False),
                "bin-e2": (65.0, False),
                "bin-e3": (60.0, False),  # its own, with no sensor override
                "bin-e4": (75.0, False),
                "bin-e6": (75.0, False),
                "bin-a7": (85.0, False),
                "bin-e8": (75.0, False),
            }
        )
        assert _view(fresh_db) == expected
        assert _alerted(fresh_db, "sensor_stale") == {"aq-a1", "aq-e1", "aq-e2", "aq-e3"}
        due = _alerted(fresh_db, "bin_collection_needed")
        assert due == {"bin-a1", "bin-e1", "bin-e2", "bin-e8"}  # 83 < 85: bin-a7 not due
        assert _params(fresh_db, second, "edinburgh", "aq-e1") == (75.0, 3.0)
        assert _params(fresh_db, second, "edinburgh", "bin-e3") == (60.0, 3.0)
        # the first Detection published once: its later ticks do not undo the change
        one.tick()
        assert _view(fresh_db) == expected
    finally:
        store_one.close()
        store_two.close()


def test_publish_replaces_every_layer_in_the_callers_transaction(fresh_db: str) -> None:
    migrate(fresh_db)
    with psycopg.connect(fresh_db) as conn, conn.cursor() as cur:
        assert publish_thresholds(cur, parse_thresholds(FIRST)) == len(DEFAULTS) + 6
        n = publish_thresholds(cur, parse_thresholds(SECOND))
        rows = cur.execute(
            "SELECT scope, name, key, value FROM rule_settings WHERE scope <> 'default'"
            " ORDER BY 1, 2, 3"
        ).fetchall()
        assert rows == [
            ("council", "edinburgh", "waste.fill_threshold_pct", 75.0),
            ("sensor", "aq-e2", "health.stale_factor", 2.0),
        ]
        default = dict(
            cur.execute(
                "SELECT key, value FROM rule_settings WHERE scope = 'default' AND name = ''"
            ).fetchall()
        )
        assert n == len(default) + 2
        assert default["waste.fill_threshold_pct"] == 85.0
        assert default["health.stale_factor"] == 3.0
        assert default["energy.timezone"] == "Europe/London"
        assert default["health.flatline_metrics"][0] == "pm2_5"
        conn.rollback()
        assert cur.execute("SELECT count(*) FROM rule_settings").fetchone() == (0,)
