"""Detection adapter: run the pure detectors on each stored batch and on a periodic tick."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg

from sensors.errors import RejectedPayload
from sensors.reading import Reading
from sensors.topics import parse_topic
from stream_processors.core.alert_notify import notification_event
from stream_processors.core.alerts import (
    RULES,
    Alert,
    Signal,
    apply_signals,
    quiet_resolutions,
)
from stream_processors.core.detectors import (
    Detector,
    default_detectors,
    run_detectors,
    stale_signals,
)
from stream_processors.core.thresholds import Thresholds, parse_thresholds
from stream_processors.storage import alerts_store as db

log = logging.getLogger(__name__)

_LETTERS = "dead_letters.out_of_range"


@dataclass(slots=True)
class DetectionStats:
    """Running totals for logs and the bench."""

    readings: int = 0
    signals: int = 0
    alerts_opened: int = 0
    alerts_changed: int = 0
    ticks: int = 0


def impossible_value_signals(
    letters: Sequence[tuple[int, str, str, datetime]],
) -> list[Signal]:
    """Dead letters rejected as out of range → sensor-health signals (topic names the sensor)."""
    out = []
    for letter_id, topic, detail, received_at in letters:
        try:
            address = parse_topic(topic)
        except RejectedPayload:
            continue  # a bad topic names no sensor; the dead letter itself is the record
        out.append(
            Signal(
                address.sensor_id,
                address.council,
                address.kind,
                "sensor_impossible_value",
                True,
                received_at,
                details={"detail": detail[:300], "dead_letter_id": letter_id},
            )
        )
    return out


class Detection:
    """Runs inside the readings transaction (``on_inserted``) and in ``tick``.

    Both engines get it through :class:`ReadingPipeline`; state and alerts commit with the
    batch, so a crash at any point leaves them consistent with the stored readings.
    """

    def __init__(
        self,
        thresholds: Thresholds | None = None,
        detectors: Sequence[Detector] | None = None,
    ) -> None:
        self.thresholds = thresholds or Thresholds()
        self.detectors = tuple(detectors) if detectors is not None else default_detectors()
        self.stats = DetectionStats()

    @classmethod
    def from_file(cls, path: str | Path) -> Detection:
        """Detection with the thresholds in the TOML file at ``path`` (ThresholdError if bad)."""
        text = Path(path).read_text(encoding="utf-8")
        return cls(parse_thresholds(text, source=str(path)))

    def on_inserted(
        self,
        cur: psycopg.Cursor[Any],
        readings: list[Reading],
        now: datetime,
    ) -> list[Alert]:
        """Detect on the batch's newly inserted readings and save state and alerts."""
        db.lock_shared(cur)
        sensors = sorted({r.sensor_id for r in readings})
        states = db.load_states(cur, sensors)
        new_states, signals = run_detectors(self.detectors, states, readings, self.thresholds, now)
        db.save_states(cur, new_states)
        self.stats.readings += len(readings)
        return self._apply(cur, signals)

    def tick(self, cur: psycopg.Cursor[Any], now: datetime) -> list[Alert]:
        """Wall-clock rules: stale sensors, impossible values from dead letters, quiet
        resolution of event alerts. Engines call it periodically (Faust: ``app.timer``)."""
        db.lock_exclusive(cur)
        self.stats.ticks += 1
        changed, signals = stale_signals(db.states_of(cur, "health"), self.thresholds, now)
        db.save_states(cur, {(s, "health"): st for s, st in changed.items()})
        after = db.get_cursor(cur, _LETTERS)
        letters = db.out_of_range_letters(cur, after)
        if letters:
            signals += impossible_value_signals(letters)
            db.set_cursor(cur, _LETTERS, letters[-1][0])
        saved = self._apply(cur, signals)
        event_rules = [name for name, p in RULES.items() if p.event]
        live = {a.id: a for a in db.live_alerts(cur, event_rules)}
        quiet = db.save_alerts(cur, quiet_resolutions(list(live.values()), now))
        self._notify(cur, [(a, live[a.id], a) for a in quiet])
        return saved + quiet

    def _apply(self, cur: psycopg.Cursor[Any], signals: list[Signal]) -> list[Alert]:
        if not signals:
            return []
        self.stats.signals += len(signals)
        latest = db.latest_alerts(cur, ((s.sensor_id, s.rule) for s in signals))
        steps: list[tuple[int, Alert | None, Alert]] = []
        changed = apply_signals(latest, signals, steps)
        saved = db.save_alerts(cur, changed)
        self._notify(cur, [(saved[i], b, a) for i, b, a in steps])
        self.stats.alerts_opened += sum(1 for a in changed if a.id is None)
        self.stats.alerts_changed += len(changed)
        return saved

    @staticmethod
    def _notify(cur: psycopg.Cursor[Any], steps: list[tuple[Alert, Alert | None, Alert]]) -> None:
        """Queue webhook notifications for the transitions worth one (same transaction).

        Each step is (the saved episode, before, after); the payload is the alert as it was
        right after that step, with the episode's stored id.
        """
        events = []
        for saved, before, after in steps:
            event = notification_event(before, after)
            if event:
                events.append((replace(after, id=saved.id), event))
        db.enqueue_notifications(cur, events)
