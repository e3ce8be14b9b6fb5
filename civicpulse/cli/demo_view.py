"""What ``run`` and ``demo`` show while they work: the 80×24 live view, plain lines, dead letters."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from rich import box
from rich.console import Group
from rich.table import Table
from rich.text import Text

from civicpulse.redact import redact

# What to do about each kind of dead letter, in a few words.
HINTS = {
    "time_out_of_range": "older than CIVICPULSE_MAX_PAST_S (7 days) or over "
    "CIVICPULSE_MAX_FUTURE_S ahead; widen CIVICPULSE_MAX_PAST_S to load history",
    "malformed_json": "the payload is not JSON",
    "payload_too_large": "over CIVICPULSE_MAX_PAYLOAD_BYTES",
    "unknown_device": "register it: civicpulse devices add",
    "device_disabled": "enable it: civicpulse devices enable",
    "bad_topic": "publish to civicpulse/<council>/<kind>/<sensor>",
    "unknown_metric": "see the sensor catalogue in the README",
    "unknown_unit": "see the units in the README",
}
LATEST_DEAD_LETTERS = """
SELECT DISTINCT ON (reason) reason, mqtt_topic, detail FROM dead_letters
 WHERE reason = ANY(%s) AND received_at > now() - interval '10 minutes'
 ORDER BY reason, id DESC
"""


class DeadLetterWatch:
    """One line per dead-letter reason as they happen, at most one per reason every ``every_s``."""

    def __init__(self, every_s: float = 10.0) -> None:
        self.every_s = every_s
        self._said: Counter[str] = Counter()
        self._said_at: dict[str, float] = {}

    def due(self, rejected: Counter[str], now: float) -> dict[str, int]:
        """Reasons to report now and how many new dead letters each has since its last line."""
        out = {}
        for reason, total in sorted(rejected.items()):
            new = total - self._said[reason]
            if new > 0 and now - self._said_at.get(reason, -math.inf) >= self.every_s:
                out[reason] = new
                self._said[reason] = total
                self._said_at[reason] = now
        return out

    @staticmethod
    def line(reason: str, new: int, total: int, latest: tuple[str, str] | None) -> str:
        """The log line for ``new`` more dead letters of ``reason`` (``latest``: topic, detail)."""
        text = f"dead-lettered {new} message(s) as {reason} ({total} so far)"
        if latest:
            topic, detail = latest
            text += f"; latest on {topic}" + (f": {detail}" if detail else "")
        hint = HINTS.get(reason)
        return " ".join((text + (f" — {hint}" if hint else "")).split())


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The figures a view shows, read from the engine once per refresh."""

    mqtt_url: str
    database_url: str
    messages: int
    stored: int
    per_s: float
    duplicates: int
    rejected: Counter[str]
    commits: int
    last_commit_ms: float
    alerts: Sequence[tuple[object, ...]]  # (opened_at, sensor_id, rule, severity, state)
    bad_every: int  # the demo's deliberate bad messages: one in N (0: none)
    cli: str  # how to call civicpulse from here
    api_url: str = ""  # the open-data API and its map page ("": not served)


def _reasons(rejected: Counter[str], width: int = 78, lines: int = 2) -> list[Text]:
    """Each reason and its count, packed into at most ``lines`` lines (the rest: "…")."""
    out = [""]
    for reason, n in rejected.most_common():
        part = f"{reason} {n:,}"
        if len(out[-1]) + len(part) + 3 <= width:
            out[-1] += (" · " if out[-1] else "") + part
        elif len(out) < lines:
            out.append(part)
        else:
            out[-1] += " …"
            break
    return [Text("  " + line, no_wrap=True, overflow="ellipsis") for line in out if line]


def view(s: Snapshot) -> Group:
    """The demo's live view: fits 80 columns × 24 lines, URLs at the top."""
    dead = sum(s.rejected.values())
    why = (
        f" — the simulator's deliberate bad messages (1 in {s.bad_every + 1})"
        if s.bad_every
        else ""
    )
    lines = [
        Text(
            f"civicpulse demo — `{s.cli} alerts list` finds it; Ctrl-C stops",
            style="bold",
            no_wrap=True,
            overflow="ellipsis",
        ),
        Text(f"MQTT        {redact(s.mqtt_url)}"),
        Text("PostgreSQL"),
        Text(f"  psql '{redact(s.database_url)}'", overflow="fold"),
        *(
            [Text(f"open data   {s.api_url}  (API docs {s.api_url}docs)", overflow="fold")]
            if s.api_url
            else []
        ),
        Text(
            f"stored      {s.stored:,} readings ({s.per_s:,.0f}/s) from {s.messages:,}"
            f" messages, {s.duplicates:,} duplicates",
            no_wrap=True,
            overflow="ellipsis",
        ),
        Text(f"dead letters {dead:,}{why}", no_wrap=True, overflow="ellipsis"),
        *_reasons(s.rejected),
        Text(f"commits     {s.commits:,}, the last took {s.last_commit_ms:.0f} ms"),
    ]
    return Group(*lines, alerts_table(s.alerts))


def alerts_table(alerts: Sequence[tuple[object, ...]]) -> Table:
    """The newest alerts, one line each, cut to fit rather than wrapped."""
    table = Table(
        title="latest alerts",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        padding=(0, 1, 0, 0),
    )
    for name, width in (("opened", 8), ("sensor", 12), ("rule", 24), ("severity", 8)):
        table.add_column(name, no_wrap=True, overflow="ellipsis", max_width=width)
    table.add_column("state", no_wrap=True, overflow="ellipsis", max_width=12)
    for opened, *rest in alerts:
        when = opened.strftime("%H:%M:%S") if isinstance(opened, datetime) else str(opened)
        table.add_row(when, *(str(v) for v in rest))
    if not alerts:
        table.add_row("", "none yet", "", "", "")
    return table


def plain_line(s: Snapshot) -> str:
    """One line for a log when the output is not a terminal (piped, redirected)."""
    dead = sum(s.rejected.values())
    why = " (the simulator's deliberate bad messages)" if s.bad_every and dead else ""
    return (
        f"demo: {s.stored:,} readings stored ({s.per_s:,.0f}/s) from {s.messages:,} messages,"
        f" {s.duplicates:,} duplicates, {dead:,} dead letters{why}, {len(s.alerts)} recent alerts"
    )
