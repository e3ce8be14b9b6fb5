"""Late readings: a stream where devices send some messages hours late raises the same alerts.

The labelled scenario goes through the shared ``ReadingPipeline`` on real PostgreSQL twice:
once in event-time order (the reference), once in an arrival order where ~8 % of the
sensors' messages arrive up to three hours late. Late readings replay the detector from a
snapshot over the stored history, so condition alerts must match the reference row for
row, event alerts must first open at the same time, and detector state must be the same.
"""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from rules.alerts import RULES
from sensors.reading import Reading, decode_reading, encode_reading
from storage import ReadingStore, migrate
from stream_processors.detection import Detection
from stream_processors.pipeline import ReadingPipeline
from tests.stream_processors.test_alerts_restart import BATCH, END, scenario_values

pytestmark = pytest.mark.integration

EVENT_RULES = {name for name, p in RULES.items() if p.event}
WALL_CLOCK = {name for name, p in RULES.items() if p.wall_clock}


def arrival_order(values: list[bytes], rng: random.Random, share: float, max_delay_s: float):
    """Messages (a sensor's readings at one time) in arrival order: some held back."""
    messages: dict[tuple[str, float], list[bytes]] = defaultdict(list)
    for v in values:
        r = decode_reading(v)
        messages[(r.sensor_id, r.time.timestamp())].append(v)
    keyed = []
    for (sensor, t), batch in messages.items():
        delay = rng.uniform(60.0, max_delay_s) if rng.random() < share else 0.0
        keyed.append((t + delay, sensor, t, batch))
    keyed.sort()
    late = sum(1 for arrive, _s, t, _b in keyed if arrive > t)
    return [v for *_, batch in keyed for v in batch], late


def run(url: str, values: list[bytes], detection: Detection | None = None) -> Detection:
    migrate(url)
    store = ReadingStore(url)
    detection = detection or Detection()
    pipeline = ReadingPipeline(store, detection=detection)
    try:
        for i in range(0, len(values), BATCH):
            pipeline.process(values[i : i + BATCH])
        pipeline.tick(END)
    finally:
        store.close()
    return detection


def outcome(url: str) -> tuple[list[Any], list[Any], list[Any], int]:
    """(condition alerts in full, first opening per event rule, states, withdrawn count)."""
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT sensor_id, rule, severity, state, opened_at, resolved_at, last_seen_at,"
            " count, flaps, resolved_by FROM alert_events ORDER BY sensor_id, rule, opened_at"
        ).fetchall()
        states = conn.execute(
            "SELECT sensor_id, detector, state - 'cp' FROM detector_state ORDER BY 1, 2"
        ).fetchall()
    kept = [r for r in rows if r[9] != "withdrawn" and r[1] not in WALL_CLOCK]
    first: dict[tuple[str, str], Any] = {}
    for r in kept:
        if r[1] in EVENT_RULES:
            first[(r[0], r[1])] = min(r[4], first.get((r[0], r[1]), r[4]))
    condition = [r for r in kept if r[1] not in EVENT_RULES]
    withdrawn = sum(1 for r in rows if r[9] == "withdrawn")
    return condition, sorted(first.items()), states, withdrawn


def test_late_messages_raise_the_alerts_of_an_in_order_stream(
    fresh_db: str, database_url: str
) -> None:
    values = scenario_values()
    ref_url = fresh_db + "_ref"
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{ref_url.rsplit("/", 1)[1]}"')
    try:
        run(ref_url, sorted(values, key=lambda v: decode_reading(v).time))
        expected = outcome(ref_url)
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{ref_url.rsplit("/", 1)[1]}" WITH (FORCE)')
    assert len(expected[0]) >= 10 and len(expected[1]) >= 3, "the scenario raised too little"

    shuffled, late = arrival_order(values, random.Random(5), 0.08, 3 * 3600.0)
    assert late > 100
    stats = run(fresh_db, shuffled).stats
    assert stats.replays > 0 and stats.late_readings >= late and stats.too_late == 0
    got = outcome(fresh_db)

    assert got[0] == expected[0], "condition alerts differ with late readings"
    assert got[1] == expected[1], "event alerts first open at other times with late readings"
    assert got[2] == expected[2], "detector state differs with late readings"
    assert got[3] == expected[3] == 0


def test_a_reading_past_the_horizon_is_stored_but_not_detected(fresh_db: str) -> None:
    values = sorted(scenario_values(), key=lambda v: decode_reading(v).time)
    start = decode_reading(values[0]).time
    at = next(
        i
        for i, v in enumerate(values)
        if decode_reading(v).kind == "air_quality"
        and decode_reading(v).time >= start + timedelta(hours=3)
    )
    held = decode_reading(values.pop(at))  # an air reading three hours into the run...
    last = max(
        decode_reading(v).time for v in values if decode_reading(v).sensor_id == held.sensor_id
    )
    assert last - held.time > timedelta(hours=2)
    detection = run(fresh_db, values, Detection(late_horizon_s=3600.0, snapshot_every_s=600.0))
    store = ReadingStore(fresh_db)
    try:
        ReadingPipeline(store, detection=detection).process([encode_reading(held)])  # ...last
    finally:
        store.close()
    # past every snapshot for each detector of an air sensor (health, statistical, air)
    assert detection.stats.too_late == 3
    with psycopg.connect(fresh_db) as conn:
        row = conn.execute(
            "SELECT count(*) FROM readings WHERE sensor_id = %s AND metric = %s AND time = %s",
            (held.sensor_id, held.metric, held.time),
        ).fetchone()
    assert row == (1,)


def test_a_late_reading_that_breaks_a_flatline_withdraws_its_alert(fresh_db: str) -> None:
    start = END - timedelta(hours=2)

    def pm(i: int, value: float) -> bytes:
        t = start + timedelta(seconds=60 * i)
        return encode_reading(
            Reading(
                sensor_id="aq-flat",
                council="aberdeen",
                kind="air_quality",
                metric="pm2_5",
                value=value,
                unit="ug/m3",
                time=t,
                received_at=t,
            )
        )

    held = pm(5, 30.0)  # the sixth of 14 readings: the only one that is not 12.0
    detection = run(fresh_db, [pm(i, 12.0) for i in range(14) if i != 5])
    with psycopg.connect(fresh_db) as conn:
        before = conn.execute(
            "SELECT state FROM alert_events WHERE rule = 'sensor_flatline'"
        ).fetchall()
    assert before == [("open",)], "13 equal readings in arrival order must flatline"
    store = ReadingStore(fresh_db)
    try:
        ReadingPipeline(store, detection=detection).process([held])
    finally:
        store.close()
    with psycopg.connect(fresh_db) as conn:
        after = conn.execute(
            "SELECT state, resolved_by FROM alert_events WHERE rule = 'sensor_flatline'"
        ).fetchall()
        events = conn.execute(
            "SELECT n.event FROM alert_notifications n JOIN alert_events a ON a.id = n.alert_id"
            " WHERE a.rule = 'sensor_flatline' ORDER BY n.id"
        ).fetchall()
    # in event-time order the longest run of 12.0 is 8 readings: never a flatline
    assert after == [("resolved", "withdrawn")]
    assert events == [("opened",), ("withdrawn",)]

    # Later: past the next hourly snapshot, another late reading replays from that snapshot.
    # The withdrawn episode is not part of the timeline any more: it is not re-created.
    varied = [pm(i, 12.0 + (i % 7)) for i in range(14, 90)]
    again = varied.pop(-5)
    store = ReadingStore(fresh_db)
    try:
        pipeline = ReadingPipeline(store, detection=detection)
        pipeline.process(varied)
        pipeline.process([again])
    finally:
        store.close()
    assert detection.stats.replays >= 4  # health, statistical and air, twice over
    with psycopg.connect(fresh_db) as conn:
        rows = conn.execute(
            "SELECT state, resolved_by FROM alert_events WHERE rule = 'sensor_flatline'"
        ).fetchall()
        snapshots = conn.execute(
            "SELECT count(*) FROM detector_snapshots WHERE sensor_id = 'aq-flat'"
        ).fetchone()
    assert rows == [("resolved", "withdrawn")]
    assert snapshots is not None and snapshots[0] >= 6  # two per detector: the replay used one
