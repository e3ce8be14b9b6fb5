"""Detection adapter: run the pure detectors on each stored batch and on a periodic tick."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from rules.alert_history import (
    Reconciled,
    alert_from_json,
    alert_to_json,
    fold,
    latest_before,
    operator_closed,
    reconcile,
)
from rules.alert_notify import notification_event
from rules.alerts import (
    RULES,
    Alert,
    AlertStatus,
    Signal,
    Sites,
    apply_signals,
    policy_for,
    quiet_resolutions,
    settle_due,
    settled,
)
from rules.detectors import (
    Detector,
    JsonDict,
    StateKey,
    default_detectors,
    run_detectors,
    stale_signals,
)
from rules.detectors.health import impossible_value_signals
from rules.detectors.replay import new_signals, replay, starting_snapshot
from rules.detectors.runner import CHECKPOINT_EVERY_S, DetectorRun, Snapshot
from rules.thresholds import Thresholds, parse_thresholds
from sensors.reading import Reading
from storage import alerts_store as db
from storage import snapshots_store as snaps
from storage.rule_settings import publish_thresholds
from storage.state_cache import StateCache

log = logging.getLogger(__name__)


def _epoch(value: object) -> float | None:
    """A detector state's epoch-seconds field, or None."""
    return float(value) if isinstance(value, int | float) else None


@dataclass(slots=True)
class DetectionStats:
    """Running totals for logs and the bench."""

    readings: int = 0
    signals: int = 0
    alerts_opened: int = 0
    alerts_changed: int = 0
    ticks: int = 0
    late_readings: int = 0  # arrived after a newer reading of their sensor: replayed
    replays: int = 0
    too_late: int = 0  # older than the oldest snapshot: stored, not seen by detectors


class Detection:
    """Runs inside the readings transaction (:meth:`begin`, then its batch) and in ``tick``.

    Both engines get it through :class:`ReadingPipeline`; state and alerts commit with the
    batch, so a crash at any point leaves them consistent with the stored readings.
    """

    def __init__(
        self,
        thresholds: Thresholds | None = None,
        detectors: Sequence[Detector] | None = None,
        *,
        late_horizon_s: float = 24 * 3600.0,
        snapshot_every_s: float = CHECKPOINT_EVERY_S,
    ) -> None:
        self.thresholds = thresholds or Thresholds()
        self.detectors = tuple(detectors) if detectors is not None else default_detectors()
        self._by_name = {d.name: d for d in self.detectors}
        self.late_horizon_s = late_horizon_s
        self.snapshot_every_s = snapshot_every_s
        self.stats = DetectionStats()
        self._published = False  # self.thresholds written to rule_settings (tick)
        self.states = StateCache()  # checked against each row's version on every load

    @classmethod
    def from_file(cls, path: str | Path, *, late_horizon_s: float = 24 * 3600.0) -> Detection:
        """Detection with the thresholds in the TOML file at ``path`` (ThresholdError if bad)."""
        text = Path(path).read_text(encoding="utf-8")
        return cls(parse_thresholds(text, source=str(path)), late_horizon_s=late_horizon_s)

    @classmethod
    def configured(cls, thresholds_file: str, late_horizon_s: float) -> Detection:
        """What every engine runs: the thresholds file if one is set, else the defaults."""
        if thresholds_file:
            return cls.from_file(thresholds_file, late_horizon_s=late_horizon_s)
        return cls(late_horizon_s=late_horizon_s)

    def begin(
        self, cur: psycopg.Cursor[Any], readings: list[Reading], now: datetime
    ) -> DetectionBatch:
        """Read what detecting ``readings`` needs (detector states, sites): the batch's first
        part; :meth:`DetectionBatch.compute` (pure, no database) and
        :meth:`DetectionBatch.finish` (saves) follow in the same transaction."""
        db.lock_shared(cur)
        sensors = sorted({r.sensor_id for r in readings})
        states = self.states.load(cur, sensors)
        return DetectionBatch(self, readings, now, states, db.load_sites(cur, sensors))

    def _finish(
        self,
        cur: psycopg.Cursor[Any],
        readings: list[Reading],
        now: datetime,
        states: dict[StateKey, JsonDict],
        sites: Sites,
        run: DetectorRun,
    ) -> list[Alert]:
        """Save what a batch's detector run found: alerts, snapshots, late replays, states.

        A sensor's readings older than one its detector has seen (late) replay that
        detector from a snapshot over the stored history (see :meth:`_replay_late`).
        """
        anchors = db.latest_alerts(
            cur, ((s.key[0], r) for s in run.snapshots for r in self._remembered(s.key))
        )
        saved = self._apply(cur, run.signals, sites)
        self._save_snapshots(cur, run.snapshots, anchors, run.signals)
        new_states = dict(run.states)
        for key, group in run.late.items():
            state, changed = self._replay_late(cur, key, group, states[key], now, sites)
            if state is not None:
                new_states[key] = state
            saved += changed
        if run.late:
            late = {r.key for group in run.late.values() for r in group}
            log.info(
                "late readings: %d of %d sensors replayed from snapshots (%d alerts changed)",
                len(late),
                len({k[0] for k in run.late}),
                len(saved),
            )
        db.save_states(cur, new_states, self.states)
        snaps.prune_snapshots(
            cur, sorted({s.key for s in run.snapshots} | set(run.late)), self.late_horizon_s
        )
        self.stats.readings += len(readings)
        return saved

    def _remembered(self, key: StateKey) -> list[str]:
        """Condition rules of the key's detector: their episodes are re-derived on a replay."""
        det = self._by_name[key[1]]
        return sorted(
            r for r in det.rules if not policy_for(r).event and not policy_for(r).wall_clock
        )

    def _save_snapshots(
        self,
        cur: psycopg.Cursor[Any],
        taken: Iterable[Snapshot],
        anchors: dict[tuple[str, str], Alert | None] | dict[tuple[str, str], Alert],
        signals: Sequence[Signal],
    ) -> None:
        """Store snapshots with each remembered rule's latest episode at their time."""
        by_rule: dict[tuple[str, str], list[Signal]] = defaultdict(list)
        for sig in signals:
            by_rule[(sig.sensor_id, sig.rule)].append(sig)
        rows = []
        for snap in taken:
            episodes: JsonDict = {}
            for rule in self._remembered(snap.key):
                k = (snap.key[0], rule)
                latest = latest_before(anchors.get(k), by_rule.get(k, []), snap.t)
                episodes[rule] = alert_to_json(latest) if latest else None
            rows.append((snap.key, snap.t, snap.state, episodes))
        snaps.save_snapshots(cur, rows)

    def _replay_late(
        self,
        cur: psycopg.Cursor[Any],
        key: StateKey,
        group: list[Reading],
        current: JsonDict,
        now: datetime,
        sites: Sites,
    ) -> tuple[JsonDict | None, list[Alert]]:
        """Re-run one detector for a sensor from the latest snapshot before its late readings.

        Remembered (condition) rules get their episodes re-derived from the snapshot's
        episode and reconciled with the stored ones; the other rules (events, the tick's)
        get the signals the replay adds. Readings older than the oldest snapshot (past the
        late horizon) are stored but not seen by the detector.
        """
        det = self._by_name[key[1]]
        kept = snaps.load_snapshots(cur, key)
        start = starting_snapshot(kept, group[0].time.timestamp())
        if start is None:
            self.stats.too_late += len(group)
            log.warning("%d late readings of %s predate any snapshot", len(group), key[0])
            return None, []
        (t0, state0, episodes0), synthesised = start
        self.stats.too_late += sum(1 for r in group if r.time.timestamp() < t0)
        self.stats.late_readings += len(group)
        self.stats.replays += 1
        params = self.thresholds.for_sensor(group[0].council, key[0], sites)
        history = snaps.readings_since(cur, key[0], t0)
        later = [t0] * synthesised + [k[0] for k in kept if k[0] > t0]  # keep a synthesised one
        result = replay(
            det,
            key,
            Snapshot(key, t0, state0),
            later,
            history,
            {r.key for r in group},
            current,
            params,
            now,
            every=self.snapshot_every_s,
        )
        by_rule: dict[str, list[Signal]] = defaultdict(list)
        for sig in result.signals:
            by_rule[sig.rule].append(sig)
        anchors = {r: (alert_from_json(doc) if doc else None) for r, doc in episodes0.items()}
        changed: list[Alert] = []
        rederived: set[str] = set()
        for rule in self._remembered(key):
            if rule not in episodes0:
                continue  # a snapshot from before this rule was remembered
            anchor = anchors[rule]
            since = anchor.opened_at if anchor else datetime.fromtimestamp(t0, UTC)
            stored = snaps.episodes_since(cur, key[0], rule, since)
            if any(operator_closed(e) for e in stored):
                continue  # a person closed one: leave their record, add signals only
            derived = fold(anchor, by_rule[rule], sites)
            if anchor is not None and all(e.opened_at != anchor.opened_at for e in stored):
                derived = derived[1:]  # its episode is gone (withdrawn or pruned): context only
            changed += self._rewrite(cur, reconcile(stored, derived), now)
            rederived.add(rule)
        changed += self._apply(
            cur,
            new_signals(
                [s for s in result.signals if s.rule not in rederived],
                [s for s in result.already if s.rule not in rederived],
            ),
            sites,
        )
        self._save_snapshots(
            cur,
            result.snapshots,
            {(key[0], r): a for r, a in anchors.items() if a is not None},
            result.signals,
        )
        return result.state, changed

    def _rewrite(self, cur: psycopg.Cursor[Any], plan: Reconciled, now: datetime) -> list[Alert]:
        """Apply a reconciliation: withdraw, then close, then (re)open — one live per rule."""
        if not plan:
            return []
        snaps.withdraw_episodes(cur, [a.id for a in plan.deletes if a.id is not None], now)
        updates = sorted(plan.updates, key=lambda pair: pair[1].live)
        saved = db.save_alerts(cur, [new for _, new in updates])
        inserted = db.save_alerts(cur, sorted(plan.inserts, key=lambda a: a.live))
        steps: list[tuple[Alert, Alert | None, Alert, str | None]] = []
        for (old, _), new in zip(updates, saved, strict=True):
            steps.append((new, old, new, notification_event(old, new)))
        for new in inserted:  # one found already over: both its changes, opened then resolved
            opened = new if new.live else replace(
                new, state=AlertStatus.OPEN, resolved_at=None, resolved_by=None, notified="open"
            )  # fmt: skip
            steps.append((new, None, opened, "opened"))
            if not new.live:
                steps.append((new, opened, new, "resolved"))
        for gone in plan.deletes:
            withdrawn = replace(
                gone, state=AlertStatus.RESOLVED, resolved_by="withdrawn",
                resolved_at=gone.resolved_at or now,
            )  # fmt: skip
            steps.append((gone, gone, withdrawn, "withdrawn"))
        db.enqueue_notifications(cur, [(after, e) for _, _, after, e in steps if e])
        db.record_transitions(cur, steps)
        self.stats.alerts_opened += len(inserted)
        self.stats.alerts_changed += len(saved) + len(inserted) + len(plan.deletes)
        return saved + inserted

    def tick(self, cur: psycopg.Cursor[Any], now: datetime) -> list[Alert]:
        """Wall-clock rules: stale sensors, impossible values from dead letters, quiet
        resolution of event alerts. Engines call it periodically (Faust: ``app.timer``)."""
        db.lock_exclusive(cur)
        if not self._published:  # once: the dashboards' SQL reads them (sql/037)
            publish_thresholds(cur, self.thresholds)
            self._published = True
        self.stats.ticks += 1
        health = db.states_of(cur, "health")
        sites = db.load_sites(cur, (sensor for sensor, _ in health))
        changed, signals = stale_signals(health, self.thresholds, now, sites)
        db.save_states(cur, {(s, "health"): st for s, st in changed.items()}, self.states)
        signals += impossible_value_signals(db.take_out_of_range_letters(cur))
        saved = self._apply(cur, signals)
        event_rules = [name for name, p in RULES.items() if p.event]
        live = {a.id: a for a in db.live_alerts(cur, event_rules)}
        quiet = db.save_alerts(cur, quiet_resolutions(list(live.values()), now))
        self._notify(cur, [(a, live[a.id], a) for a in quiet])
        return saved + quiet + self._settle(cur, health, now)

    def _settle(
        self, cur: psycopg.Cursor[Any], health: list[tuple[str, JsonDict]], now: datetime
    ) -> list[Alert]:
        """Notify the held-back resolutions of flapping alerts that have proved final."""
        watermark = {s: st.get("t") for s, st in health}
        arrival = {s: st.get("rx", st.get("t")) for s, st in health}
        due = [
            a
            for a in db.held_alerts(cur)
            if settle_due(
                a, now, _epoch(watermark.get(a.sensor_id)), _epoch(arrival.get(a.sensor_id))
            )
        ]
        final = db.save_alerts(cur, [settled(a) for a in due])
        self._notify(cur, list(zip(final, due, final, strict=True)))
        return final

    def _apply(
        self, cur: psycopg.Cursor[Any], signals: list[Signal], sites: Sites | None = None
    ) -> list[Alert]:
        if not signals:
            return []
        self.stats.signals += len(signals)
        if sites is None:
            sites = db.load_sites(cur, (s.sensor_id for s in signals))
        latest = db.latest_alerts(cur, ((s.sensor_id, s.rule) for s in signals))
        steps: list[tuple[int, Alert | None, Alert]] = []
        changed = apply_signals(latest, signals, steps, sites)
        saved = db.save_alerts(cur, changed)
        self._notify(cur, [(saved[i], b, a) for i, b, a in steps])
        self.stats.alerts_opened += sum(1 for a in changed if a.id is None)
        self.stats.alerts_changed += len(changed)
        return saved

    @staticmethod
    def _notify(cur: psycopg.Cursor[Any], steps: list[tuple[Alert, Alert | None, Alert]]) -> None:
        """Queue webhook notifications for the transitions worth one, and log every transition
        (same transaction).

        Each step is (the saved episode, before, after); the payload is the alert as it was
        right after that step, with the episode's stored id.
        """
        events = []
        logged: list[tuple[Alert, Alert | None, Alert, str | None]] = []
        for saved, before, after in steps:
            event = notification_event(before, after)
            if event:
                events.append((replace(after, id=saved.id), event))
            logged.append((saved, before, after, event))
        db.enqueue_notifications(cur, events)
        db.record_transitions(cur, logged)


class DetectionBatch:
    """One batch's detection after its reads: ``compute`` runs the detectors (pure: it may
    overlap the database's own work on the batch), ``finish`` saves what they found."""

    def __init__(
        self,
        detection: Detection,
        readings: list[Reading],
        now: datetime,
        states: dict[StateKey, JsonDict],
        sites: Sites,
    ) -> None:
        self._detection, self._readings, self._now = detection, readings, now
        self._states, self._sites = states, sites
        self._run: DetectorRun | None = None

    def compute(self) -> None:
        """Run every detector over the batch (no database access)."""
        d = self._detection
        self._run = run_detectors(
            d.detectors,
            self._states,
            self._readings,
            d.thresholds,
            self._now,
            every=d.snapshot_every_s,
            sites=self._sites,
        )

    def finish(self, cur: psycopg.Cursor[Any]) -> list[Alert]:
        """Save alerts, snapshots, late replays and states (after ``compute``)."""
        if self._run is None:
            self.compute()
        assert self._run is not None
        return self._detection._finish(
            cur, self._readings, self._now, self._states, self._sites, self._run
        )
