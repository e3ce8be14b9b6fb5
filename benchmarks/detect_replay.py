"""Detection benchmark: scenario and Aberdeen messages, and their replay through the pipeline."""

from __future__ import annotations

import csv
import heapq
import random
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

from rules.alerts import policy_for
from rules.thresholds import Thresholds
from sensors.catalogue import KINDS
from sensors.intake import route_message
from sensors.reading import Sample
from sensors.topics import SensorAddress, topic_for
from sensors.validation import Limits
from simulator.anomalies import Scenario
from simulator.anomaly_labels import Label
from simulator.fleet import PayloadFormat, encode_samples
from storage import DeadLetterStore, ReadingStore, migrate
from stream_processors.detection import Detection
from stream_processors.pipeline import ReadingPipeline

# The detect bench replays years-old scenarios: its default window is wide. The chaos harness
# passes the engines' own limits, so what they dead-letter (a 60-day-old reading) is not
# scored as a missed alert.
LIMITS = Limits(max_past=timedelta(days=3650), max_future=timedelta(days=3650))
UPLOAD_BATCH_S = 5.0  # an engine's tick period: backlog uploads are cut into such batches


@dataclass(frozen=True, slots=True)
class Msg:
    """A message to replay: MQTT topic, payload, event time (and arrival, if held back).

    ``upload``: part of a backlog upload (many old readings within a minute), replayed in
    batches of ``UPLOAD_BATCH_S`` with a tick after each, as an engine would take them.
    """

    topic: str
    payload: bytes
    time: datetime
    sensor_id: str
    arrival: datetime | None = None  # None: arrives at its event time
    upload: bool = False

    @property
    def arrives(self) -> datetime:
        """When the platform receives it."""
        return self.arrival or self.time


def hold_back(messages: Sequence[Msg], share: float, max_s: float, seed: int) -> list[Msg]:
    """Messages in arrival order when ``share`` of them arrive 1 min … ``max_s`` late
    (a device buffering while offline, a redelivery after a crash)."""
    rng = random.Random(seed)
    out = []
    for m in messages:
        if rng.random() < share and not m.upload:  # an upload is late already
            m = replace(m, arrival=m.time + timedelta(seconds=rng.uniform(60.0, max_s)))
        out.append(m)
    return sorted(out, key=lambda m: m.arrives)


def delayed_labels(messages: Sequence[Msg], thresholds: Thresholds) -> list[Label]:
    """A ``sensor_data_delayed`` label for each held-back message that arrives more than
    ``health.delayed_factor`` intervals after its event time (from the hold-back, not from
    the rules' output)."""
    out = []
    for m in messages:
        if m.arrival is None or m.upload:
            continue  # an upload's labels come with the scenario
        kind = m.topic.split("/")[2]
        params = thresholds.for_sensor("aberdeen", m.sensor_id)
        limit = float(params["health.delayed_factor"]) * KINDS[kind].expected_interval_s
        if (m.arrival - m.time).total_seconds() > limit:
            out.append(Label(m.sensor_id, kind, "sensor_data_delayed", "held_back", m.time, m.time))
    return out


class StoredAlert(NamedTuple):
    sensor_id: str
    rule: str
    opened_at: datetime
    resolved_at: datetime | None
    count: int  # type: ignore[assignment]  # the column, shadowing tuple.count
    details: dict[str, Any]
    flaps: int = 0  # re-openings of this alert (each one an "opening" an operator sees)
    id: int = 0


class Transition(NamedTuple):
    """A transition of an alert (``alert_transitions``) and the notification it queued."""

    sensor_id: str
    rule: str
    transition: str  # opened, reopened, escalated, resolved, settled, withdrawn
    event: str | None  # the notification queued (None: held back, or a repeat)
    at: datetime  # event time (the engine clock for wall-clock rules)
    alert_id: int


class Notification(NamedTuple):
    """A queued notification (its ``alert_transitions`` row; ``alert_notifications``, the
    outbox a webhook is sent from, holds the same per alert and event: checked)."""

    sensor_id: str
    rule: str
    event: str
    alert_id: int


class Replayed(NamedTuple):
    """What a replay left in the database: alerts, transitions, notifications, and stats."""

    alerts: list[StoredAlert]
    stats: dict[str, float]
    transitions: list[Transition]
    notifications: list[Notification]


def database_conninfo(server_url: str, name: str) -> str:
    """``server_url`` (a URL, with ``?host=/socket/dir`` or not, or ``key=value`` conninfo)
    with its database replaced by ``name``: libpq parses it, so nothing is lost or guessed."""
    return make_conninfo(server_url, dbname=name)


def fresh_database(server_url: str, name: str) -> str:
    """Drop and create database ``name`` on the server of ``server_url``; return its conninfo."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = database_conninfo(server_url, name)
    migrate(url)
    return url


def replay(
    url: str,
    messages: Sequence[Msg],
    thresholds: Thresholds,
    batch_s: float = 1800.0,
    limits: Limits = LIMITS,
) -> tuple[list[StoredAlert], dict[str, float]]:
    """:func:`replay_full`'s alerts and stats (what the chaos harness compares)."""
    done = replay_full(url, messages, thresholds, batch_s, limits)
    return done.alerts, done.stats


def replay_full(
    url: str,
    messages: Sequence[Msg],
    thresholds: Thresholds,
    batch_s: float = 1800.0,
    limits: Limits = LIMITS,
) -> Replayed:
    """Replay ``messages`` (in arrival order) through the pipeline; the tick runs whenever a
    sensor's silence reaches its stale limit (as an engine ticking every second would).

    Readings are received at their message's arrival (``received_at``); a sensor's silence
    is counted from its newest arrival and, for the rules of before issue 20, from its
    newest event time: both instants get a tick.
    """
    sim_now = [messages[0].arrives]
    pipeline = ReadingPipeline(
        ReadingStore(url), detection=Detection(thresholds), clock=lambda: sim_now[0]
    )
    letters = DeadLetterStore(url)
    last_seen: dict[str, tuple[float, float]] = {}  # sensor -> (last arrival, stale after s)
    last_event: dict[str, float] = {}  # sensor -> newest event time
    started, n_readings, n_letters, ticks = time.perf_counter(), 0, 0, 0

    ticked = messages[0].arrives.timestamp()
    dues: list[tuple[float, str]] = []  # heap of (instant a silence reaches its limit, sensor)

    def earliest_due() -> float:
        while dues:
            d, sid = dues[0]
            last, after = last_seen[sid]
            if d != last + after + 1.0 or d <= ticked:
                heapq.heappop(dues)  # superseded by a later reading, or already ticked
                continue
            return d
        return float("inf")

    def tick_until(t: float) -> None:
        # Ticks in time order at each instant a sensor's silence reaches its stale limit.
        nonlocal ticks, ticked
        instants = {last + after + 1.0 for last, after in last_seen.values()}
        instants |= {last_event[s] + last_seen[s][1] + 1.0 for s in last_event}
        due = sorted(d for d in instants if ticked < d <= t)
        for d in due:
            pipeline.tick(datetime.fromtimestamp(d, tz=UTC))
            ticks += 1
        ticked = max(ticked, t)

    i = 0
    while i < len(messages):
        tick_until(messages[i].arrives.timestamp())
        upload = messages[i].upload
        span = UPLOAD_BATCH_S if upload else batch_s
        end = messages[i].arrives + timedelta(seconds=span)
        batch: list[Msg] = []
        # A batch ends early where some sensor's silence reaches its limit, so that tick
        # sees exactly the readings stored before that instant; an upload is its own batches.
        while (
            i < len(messages)
            and messages[i].arrives < end
            and messages[i].upload == upload
            and (not batch or messages[i].arrives.timestamp() < earliest_due())
        ):
            m = messages[i]
            batch.append(m)
            kind = m.topic.split("/")[2]
            factor = float(thresholds.for_sensor("aberdeen", m.sensor_id)["health.stale_factor"])
            newest = max(m.arrives.timestamp(), last_seen.get(m.sensor_id, (0.0, 0.0))[0])
            last_seen[m.sensor_id] = (newest, factor * KINDS[kind].expected_interval_s)
            last_event[m.sensor_id] = max(m.time.timestamp(), last_event.get(m.sensor_id, 0.0))
            heapq.heappush(dues, (sum(last_seen[m.sensor_id]) + 1.0, m.sensor_id))
            i += 1
        values, dead = [], []
        for m in batch:
            routed = route_message(m.topic, m.payload, m.arrives, limits)
            values += [v for _, v in routed.readings]
            if routed.deadletter is not None:
                dead.append((routed.deadletter, f"bench:{m.sensor_id}:{m.time.isoformat()}"))
        sim_now[0] = batch[-1].arrives
        if values:
            pipeline.process(values)
            n_readings += len(values)
        letters.write(dead)
        n_letters += len(dead)
        tick_until(sim_now[0].timestamp())
        pipeline.tick(sim_now[0])
        ticks += 1
    tick_until(messages[-1].arrives.timestamp())
    elapsed = time.perf_counter() - started
    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT a.sensor_id, a.rule, a.opened_at, a.resolved_at, a.count, a.details, e.flaps,"
            " a.id FROM alerts a JOIN alert_events e USING (id) ORDER BY a.opened_at, a.id"
        ).fetchall()
        moves = conn.execute(
            "SELECT e.sensor_id, e.rule, t.transition, t.event, t.at, t.alert_id"
            " FROM alert_transitions t JOIN alert_events e ON e.id = t.alert_id ORDER BY t.id"
        ).fetchall()
        queued = conn.execute(
            "SELECT e.sensor_id, e.rule, n.event, n.alert_id"
            " FROM alert_notifications n JOIN alert_events e ON e.id = n.alert_id ORDER BY n.id"
        ).fetchall()
    # A sensor whose part of the scenario has ended is silent, not stale: drop those alerts.
    last: dict[str, datetime] = {}
    last_arrival: dict[str, datetime] = {}
    for m in messages:
        last[m.sensor_id] = max(m.time, last.get(m.sensor_id, m.time))
        last_arrival[m.sensor_id] = max(m.arrives, last_arrival.get(m.sensor_id, m.arrives))
    alerts = [a for a in map(StoredAlert._make, rows) if a.opened_at <= last[a.sensor_id]]
    kept = {a.id for a in alerts}
    # every transition of a kept alert (opened/reopened even when its notification was held
    # back: the backlog check counts openings); ``event`` says which were notified
    transitions = [
        t
        for t in map(Transition._make, moves)
        if t.alert_id in kept
        # the silence after a sensor's part ends again: a stale re-open then is no finding
        and not (policy_for(t.rule).wall_clock and t.at > last_arrival[t.sensor_id])
    ]
    # the outbox holds exactly the notifications the history says were queued
    outbox = Counter((a, e) for _, _, e, a in queued)
    history = Counter((t[5], t[3]) for t in moves if t[3] is not None)
    notifications = [
        Notification(t.sensor_id, t.rule, t.event, t.alert_id)
        for t in transitions
        if t.event is not None
    ]
    stats = {
        "readings": n_readings,
        "dead_letters": n_letters,
        "ticks": ticks,
        "seconds": elapsed,
        "readings_per_s": n_readings / elapsed,
        "outbox_matches_history": float(outbox == history),
    }
    return Replayed(alerts, stats, transitions, notifications)


def scenario_messages(scenario: Scenario) -> list[Msg]:
    """The scenario's messages in arrival order (a backlog arrives after newer ones)."""
    msgs = [
        Msg(m.topic, m.payload, m.time, m.sensor_id, m.arrival, m.arrival is not None)
        for m in scenario.messages
    ]
    return sorted(msgs, key=lambda m: m.arrives)


def aberdeen_messages(data_dir: Path) -> tuple[list[Msg], dict[str, float]]:
    """Sensor.Community SDS011 files (P1 = PM10, P2 = PM2.5) as civicpulse JSON messages."""
    msgs = []
    days: dict[str, float] = {}
    for path in sorted(data_dir.glob("sds011_sensor_*.csv")):
        sid = "sc-" + path.name.split("_")[2]
        topic = topic_for(SensorAddress("aberdeen", "air_quality", sid))
        times = []
        with path.open(newline="") as fh:
            for row in csv.DictReader(fh, delimiter=";"):
                try:
                    t = datetime.fromisoformat(row["timestamp"]).replace(tzinfo=UTC)
                    samples = (
                        Sample(metric="pm10", value=float(row["P1"]), time=t),
                        Sample(metric="pm2_5", value=float(row["P2"]), time=t),
                    )
                except (KeyError, ValueError):
                    continue
                msgs.append(
                    Msg(topic, encode_samples(PayloadFormat.CIVICPULSE_JSON, sid, samples), t, sid)
                )
                times.append(t)
        days[sid] = (max(times) - min(times)).total_seconds() / 86400 if times else 0.0
    msgs.sort(key=lambda m: (m.time, m.sensor_id))
    return msgs, days
