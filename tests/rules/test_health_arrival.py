"""Staleness from arrival, and data delayed (issue 20): a backlog upload is not a silence.

The engine is imitated as in ``stream_processors/detection.py``: batches go through
``run_detectors`` (states kept), and a tick every 5 s calls ``stale_signals`` on the health
states, its signals going to the alert state machine. Expected instants are worked out by
hand from the catalogue's intervals (air quality 150 s, bins 900 s, meters 1800 s).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson

from rules.alerts import Alert, Signal, apply_signals
from rules.detectors import HealthDetector, run_detectors, stale_signals
from rules.detectors.base import JsonDict
from rules.detectors.runner import StateKey
from rules.thresholds import Thresholds
from sensors.catalogue import KINDS
from sensors.reading import Reading

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # when the backlog starts to arrive
SENSORS = {"aq-1": ("air_quality", "pm2_5"), "bin-1": ("waste_bin", "fill_level")}
SENSORS["em-1"] = ("energy_meter", "power")


def reading(sensor: str, event: datetime, received: datetime) -> Reading:
    kind, metric = SENSORS[sensor]
    value = float(event.timestamp() // 150 % 7 + 10)  # moving: never a flatline
    return Reading(
        sensor_id=sensor,
        council="aberdeen",
        kind=kind,
        metric=metric,
        value=value,
        unit=KINDS[kind].metrics[metric].unit,
        time=event,
        received_at=received,
    )


class Engine:
    """Batches and 5-s ticks over the health detector; every alert opening is counted."""

    def __init__(self) -> None:
        self.states: dict[StateKey, JsonDict] = {}
        self.alerts: dict[tuple[str, str], Alert] = {}
        self.openings: list[tuple[str, str, datetime]] = []
        self.signals: list[Signal] = []

    def apply(self, signals: list[Signal]) -> None:
        self.signals += signals
        for alert in apply_signals(self.alerts, signals):
            before = self.alerts.get((alert.sensor_id, alert.rule))
            fresh = before is None or not before.live or before.opened_at != alert.opened_at
            if fresh and alert.live:
                self.openings.append((alert.sensor_id, alert.rule, alert.opened_at))
            self.alerts[(alert.sensor_id, alert.rule)] = alert

    def batch(self, rs: list[Reading], now: datetime) -> None:
        run = run_detectors([HealthDetector()], self.states, rs, Thresholds(), now)
        assert run.late == {}
        self.states.update(run.states)
        self.apply(run.signals)

    def tick(self, now: datetime) -> list[Signal]:
        health = [(k[0], s) for k, s in self.states.items()]
        changed, signals = stale_signals(health, Thresholds(), now)
        self.states.update({(sensor, "health"): st for sensor, st in changed.items()})
        self.apply(signals)
        return signals


def backlog(sensor: str, hours: float, upload_s: float) -> list[Reading]:
    """``hours`` of the sensor's readings before NOW, received in order within ``upload_s``."""
    every = KINDS[SENSORS[sensor][0]].expected_interval_s
    n = int(hours * 3600 / every)
    return [
        reading(
            sensor,
            NOW - timedelta(seconds=(n - i) * every),
            NOW + timedelta(seconds=upload_s * i / n),
        )
        for i in range(n)
    ]


def test_a_backlog_arriving_in_a_minute_opens_no_stale_during_or_after_it() -> None:
    engine = Engine()
    pending = sorted(
        (r for s in SENSORS for r in backlog(s, 2.0, 60.0)), key=lambda r: r.received_at
    )
    # the rule of before issue 20 (event time) would find each sensor stale at the first
    # tick: its newest event time then is ~2 h old, over 3 x its interval
    first_tick = NOW + timedelta(seconds=5)
    first_events = {r.sensor_id: r.time for r in pending if r.received_at <= first_tick}
    assert all(first_tick - t > timedelta(seconds=5400) for t in first_events.values())
    clock = NOW
    while clock < NOW + timedelta(hours=1):  # the upload, then live readings for an hour
        clock += timedelta(seconds=1)
        arrived = [r for r in pending if r.received_at <= clock]
        pending = pending[len(arrived) :]
        for sensor, (kind, _) in SENSORS.items():
            every = KINDS[kind].expected_interval_s
            if (
                clock > NOW + timedelta(seconds=60)
                and int((clock - NOW).total_seconds()) % every == 0
            ):
                arrived.append(reading(sensor, clock, clock))  # live again, on time
        if arrived:
            engine.batch(arrived, clock)
        if int((clock - NOW).total_seconds()) % 5 == 0:
            assert engine.tick(clock) == []
    assert [o for o in engine.openings if o[1] == "sensor_stale"] == []
    # each sensor's backlog is one data-delayed episode: opened by its first (oldest)
    # reading, cleared by its first live one
    delayed = sorted((s.sensor_id, s.active, s.at) for s in engine.signals)
    first_live = {
        "aq-1": NOW + timedelta(seconds=150),
        "bin-1": NOW + timedelta(seconds=900),
        "em-1": NOW + timedelta(seconds=1800),
    }
    assert delayed == sorted(
        [(s, True, NOW - timedelta(hours=2)) for s in SENSORS]
        + [(s, False, first_live[s]) for s in SENSORS]
    )
    assert {s.rule for s in engine.signals} == {"sensor_data_delayed"}


def test_a_sensor_that_stops_arriving_is_stale_after_three_intervals_of_wall_time() -> None:
    engine = Engine()
    last = NOW - timedelta(minutes=1)
    # event time 10 minutes behind arrival all along (a slow gateway): never stale by that
    engine.batch([reading("aq-1", last - timedelta(minutes=10), last)], last)
    stale_at = []
    clock = last
    while clock < last + timedelta(seconds=600):
        clock += timedelta(seconds=5)
        stale_at += [(s.rule, s.at) for s in engine.tick(clock)]
    # silent for more than 3 x 150 s: the first 5-s tick after last + 450 s
    assert stale_at == [("sensor_stale", last + timedelta(seconds=455))]
    # it arrives again (old readings): cleared at their arrival
    back = clock + timedelta(seconds=2)
    engine.batch([reading("aq-1", last, back)], back)
    cleared = [s for s in engine.signals if s.rule == "sensor_stale" and not s.active]
    assert [s.at for s in cleared] == [back]
    assert not engine.alerts[("aq-1", "sensor_stale")].live


def test_a_health_state_saved_before_arrival_times_still_loads() -> None:
    old = {"kind": "waste_bin", "council": "aberdeen", "t": NOW.timestamp(), "tm": "battery"}
    old |= {"last": {}, "flat": [], "active": {}}
    changed, out = stale_signals([("bin-1", old)], Thresholds(), NOW + timedelta(seconds=2701))
    assert [s.rule for s in out] == ["sensor_stale"]  # its event time stands in for arrival
    later = NOW + timedelta(hours=1)
    run = run_detectors(
        [HealthDetector()],
        {("bin-1", "health"): changed["bin-1"]},
        [reading("bin-1", later, later)],
        Thresholds(),
        later,
    )
    state = run.states[("bin-1", "health")]
    assert state["rx"] == later.timestamp()
    assert orjson.loads(orjson.dumps(state)) == state
    assert [(s.rule, s.active) for s in run.signals] == [("sensor_stale", False)]
