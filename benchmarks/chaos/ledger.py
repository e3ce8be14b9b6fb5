"""The ledger: sent, acknowledged, stored, dead-lettered, lost, doubled; per-fault recovery."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg

from benchmarks.chaos.fleet import Message, ReadingKey
from sensors.deadletter import KEEP_BYTES

HEALTH_RULES = frozenset({"sensor_stale", "sensor_data_delayed"})  # wall-clock rules


@dataclass
class FaultRecord:
    """One injected fault as it happened (wall-clock epoch seconds) and what it cost."""

    kind: str
    target: str
    at: float  # injected
    until: float  # the target back (restarted, resumed, trigger dropped)
    how: str = ""
    back: str = ""
    error: str = ""
    recovered_s: float | None = None  # fault → backlog back to its level before the fault
    rate_back_s: float | None = None  # fault end → stored rows/s back to the offered rate
    backlog_peak: int = 0  # readings offered but not yet stored, at worst
    lost: int = 0  # acknowledged readings never stored, sent from this fault to the next

    @property
    def label(self) -> str:
        return f"{self.kind} {self.target}"


@dataclass
class Ledger:
    """The run's books; ``ok`` is false if anything acknowledged was lost or doubled."""

    engine: str
    seed: int
    duration_s: float
    rate: float
    started: float = 0.0  # wall clock (epoch) of the first message
    messages_sent: int = 0
    messages_acked: int = 0
    messages_unacked: int = 0
    readings_sent: int = 0
    readings_acked: int = 0
    readings_stored: int = 0
    readings_unexpected: int = 0  # stored rows the fleet never sent
    dead_letters_sent: int = 0  # deliberately bad messages acknowledged
    dead_lettered: int = 0  # of those, found in dead_letters
    dead_letters_missing: int = 0
    dead_letters_repeated: int = 0  # the same message dead-lettered more than once
    lost: int = 0  # acknowledged readings never stored
    lost_examples: list[str] = field(default_factory=list)
    duplicated: int = 0  # rows stored twice under the readings key
    aggregate_mismatches: int = 0  # readings_1m buckets whose n differs from the raw rows
    value_mismatches: int = 0  # stored value differs from the value sent
    puback_p50_ms: float = 0.0
    puback_p99_ms: float = 0.0
    puback_max_s: float = 0.0
    faults: list[FaultRecord] = field(default_factory=list)
    alerts: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (
            self.lost == 0
            and self.duplicated == 0
            and self.aggregate_mismatches == 0
            and (self.value_mismatches == 0)
        )

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        return out


def _percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def _truth(messages: Sequence[Message]) -> dict[ReadingKey, tuple[float, bool]]:
    """Every good reading's key → (value sent, its message was acknowledged)."""
    out: dict[ReadingKey, tuple[float, bool]] = {}
    for m in messages:
        if not m.good or m.sent_at is None:
            continue
        for s in m.samples:
            out[(m.sensor_id, s.metric, s.time)] = (float(s.value), m.acked_at is not None)
    return out


def book(ledger: Ledger, messages: Sequence[Message], database_url: str) -> list[float]:
    """Fill the ledger's counts from the publishers' records and the database.

    Returns when each lost reading was sent (to attribute losses to faults).
    """
    sent = [m for m in messages if m.sent_at is not None]
    acked = [m for m in sent if m.acked_at is not None]
    ledger.messages_sent, ledger.messages_acked = len(sent), len(acked)
    ledger.messages_unacked = len(sent) - len(acked)
    truth = _truth(messages)
    ledger.readings_sent = len(truth)
    ledger.readings_acked = sum(1 for _v, a in truth.values() if a)
    latencies = [m.acked_at - m.sent_at for m in acked if m.acked_at and m.sent_at]
    ledger.puback_p50_ms = round(_percentile(latencies, 0.50) * 1000, 1)
    ledger.puback_p99_ms = round(_percentile(latencies, 0.99) * 1000, 1)
    ledger.puback_max_s = round(max(latencies, default=0.0), 2)
    with psycopg.connect(database_url, connect_timeout=10) as conn:
        rows = conn.execute("SELECT sensor_id, metric, time, value FROM readings").fetchall()
        ledger.duplicated = int(
            conn.execute(
                "SELECT coalesce(sum(c - 1), 0) FROM (SELECT count(*) c FROM readings"
                " GROUP BY sensor_id, metric, time HAVING count(*) > 1) d"
            ).fetchone()[0]  # type: ignore[index]
        )
        ledger.aggregate_mismatches = int(
            conn.execute(
                "SELECT count(*) FROM readings_1m m FULL JOIN (SELECT sensor_id, metric,"
                " date_trunc('minute', time) AS bucket, count(*) AS c FROM readings"
                " GROUP BY 1, 2, 3) r USING (sensor_id, metric, bucket)"
                " WHERE m.n IS DISTINCT FROM r.c"
            ).fetchone()[0]  # type: ignore[index]
        )
        letters = conn.execute(
            "SELECT mqtt_topic, payload, count(*) FROM dead_letters GROUP BY 1, 2"
        ).fetchall()
    stored: dict[ReadingKey, float] = {(s, m, t): v for s, m, t, v in rows}
    ledger.readings_stored = sum(1 for k in stored if k in truth)
    ledger.readings_unexpected = sum(1 for k in stored if k not in truth)
    lost = [k for k, (_v, a) in truth.items() if a and k not in stored]
    ledger.lost = len(lost)
    ledger.lost_examples = [f"{s} {m} {t.isoformat()}" for s, m, t in sorted(lost)[:5]]
    ledger.value_mismatches = sum(
        1
        for k, v in stored.items()
        if k in truth and not math.isclose(v, truth[k][0], rel_tol=1e-9, abs_tol=1e-9)
    )
    # A dead letter keeps the first KEEP_BYTES of the payload: match on those.
    found: Counter[tuple[str, bytes]] = Counter()
    for t, p, c in letters:
        found[(t, bytes(p)[:KEEP_BYTES])] += int(c)
    bad = [m for m in sent if not m.good and m.acked_at is not None]
    ledger.dead_letters_sent = len(bad)
    shown = [found[(m.topic, m.payload[:KEEP_BYTES])] for m in bad]
    ledger.dead_lettered = sum(1 for c in shown if c > 0)
    ledger.dead_letters_missing = sum(1 for c in shown if c == 0)
    ledger.dead_letters_repeated = sum(1 for c in shown if c > 1)
    sent_at = {
        (m.sensor_id, s.metric, s.time): m.sent_at or 0.0 for m in sent if m.good for s in m.samples
    }
    return sorted(sent_at[k] for k in lost)


def attribute(faults: list[FaultRecord], lost_sent_at: Sequence[float]) -> None:
    """Each lost reading counts against the last fault injected before it was sent."""
    for at in lost_sent_at:
        before = [f for f in faults if f.at - 1.0 <= at]
        if before:
            max(before, key=lambda f: f.at).lost += 1


def stored_series(database_url: str) -> dict[int, int]:
    """Rows first stored in each wall-clock second (the database's ``stored_at``)."""
    with psycopg.connect(database_url, connect_timeout=10) as conn:
        rows = conn.execute(
            "SELECT floor(extract(epoch FROM stored_at))::bigint, count(*) FROM readings GROUP BY 1"
        ).fetchall()
    return {int(s): int(c) for s, c in rows}


def offered_series(messages: Sequence[Message]) -> dict[int, int]:
    """Good readings handed to the devices' clients in each wall-clock second."""
    out: Counter[int] = Counter()
    for m in messages:
        if m.good and m.sent_at is not None:
            out[int(m.sent_at)] += len(m.samples)
    return dict(out)


def recovery(
    faults: list[FaultRecord], offered: dict[int, int], stored: dict[int, int], end: float
) -> None:
    """Per fault: backlog peak, time until the backlog is back to its level before the fault,
    and time from the fault's end until the stored rate is back to the offered rate."""
    if not offered:
        return
    first = min(min(offered), min(stored, default=min(offered)))
    last = max(max(offered), max(stored, default=0), int(end))
    backlog: dict[int, int] = {}
    cum_o = cum_s = 0
    for t in range(first, last + 1):
        cum_o += offered.get(t, 0)
        cum_s += stored.get(t, 0)
        backlog[t] = max(0, cum_o - cum_s)
    per_s = sum(offered.values()) / max(1, len(offered))
    starts = sorted(f.at for f in faults)
    for f in faults:
        t0 = int(f.at)
        nxt = [s for s in starts if s > f.at]
        horizon = int(nxt[0]) if nxt else last
        before = [backlog[t] for t in range(max(first, t0 - 15), t0) if t in backlog]
        base = sorted(before)[len(before) // 2] if before else 0
        window = [backlog.get(t, 0) for t in range(t0, horizon + 1)]
        f.backlog_peak = max(window, default=0)
        margin = max(3 * per_s, 0.1 * base)
        for t in range(int(f.until), horizon + 1):
            if backlog.get(t, 0) <= base + margin:
                f.recovered_s = float(t - t0)
                break
        for t in range(int(f.until) + 1, horizon + 1):
            got = sum(stored.get(u, 0) for u in range(t - 5, t))
            want = sum(offered.get(u, 0) for u in range(t - 5, t))
            if want and got >= 0.9 * want:
                f.rate_back_s = float(t - int(f.until))
                break


def compare_alerts(
    chaos: Sequence[tuple[str, str]], reference: Sequence[tuple[str, str]]
) -> dict[str, Any]:
    """Alerts (sensor, rule) of the run against a fault-free run of the same seed."""
    got, want = Counter(chaos), Counter(reference)
    data = {k for k in set(got) | set(want) if k[1] not in HEALTH_RULES}
    missed = sorted(k for k in data if got[k] < want[k] and got[k] == 0)
    doubled = sorted(k for k in data if got[k] > want[k] > 0)
    invented = sorted(k for k in data if want[k] == 0)
    health = Counter(r for (_s, r), n in got.items() for _ in range(n) if r in HEALTH_RULES)
    return {
        "reference": sum(n for k, n in want.items() if k[1] not in HEALTH_RULES),
        "run": sum(n for k, n in got.items() if k[1] not in HEALTH_RULES),
        "missed": len(missed),
        "doubled": len(doubled),
        "invented": len(invented),
        "examples": [f"missed {s} {r}" for s, r in missed[:3]]
        + [f"doubled {s} {r}" for s, r in doubled[:3]]
        + [f"invented {s} {r}" for s, r in invented[:3]],
        "health_alerts_in_run": dict(health),
        "health_alerts_in_reference": dict(
            Counter(r for (_s, r), n in want.items() for _ in range(n) if r in HEALTH_RULES)
        ),
    }
