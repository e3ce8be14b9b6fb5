"""``civicpulse simulate``: build the fleet's messages, then record and/or publish them."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from simulator import Fleet, bad_messages, publish, write_recording
from simulator.recording import Message


@dataclass(frozen=True, slots=True)
class SimulationSummary:
    """What a simulate run did."""

    messages: int
    bad_messages: int
    readings: int
    acked: int | None
    seconds: float | None
    recorded_to: str | None

    def __rich__(self) -> str:
        parts = [
            f"{self.messages} messages ({self.bad_messages} deliberately bad)",
            f"{self.readings} readings",
        ]
        if self.acked is not None and self.seconds is not None:
            parts.append(f"{self.acked} acknowledged in {self.seconds:.1f}s")
        if self.recorded_to:
            parts.append(f"recorded to {self.recorded_to}")
        return "simulated " + ", ".join(parts)


def mix_in(good: Iterable[Message], bad: Iterator[Message], every: int) -> Iterator[Message]:
    """Yield ``good`` with one ``bad`` message after every ``every`` good ones (0 = none)."""
    for i, message in enumerate(good, start=1):
        yield message
        if every and i % every == 0:
            extra = next(bad, None)
            if extra is not None:
                yield extra


def run_simulation(
    *,
    n_sensors: int,
    rate: float,
    duration: float,
    seed: int,
    speed: float,
    start: datetime,
    bad_ratio: float,
    record: Path | None,
    publish_to: str | None,
    console: Console,
) -> SimulationSummary:
    """Generate ``rate * duration`` good messages (plus bad ones), record and/or publish."""
    fleet = Fleet.build(n_sensors, seed=seed)
    n_good = max(1, round(rate * duration))
    every = round((1 - bad_ratio) / bad_ratio) if bad_ratio > 0 else 0
    n_bad = n_good // every if every else 0

    def stream() -> Iterator[Message]:
        good = fleet.emissions(n_good, start=start, rate=rate, speed=speed)
        bad = bad_messages(seed, n_bad, start, fleet.addresses)
        return mix_in(good, bad, every)

    readings = sum(len(e.samples) for e in fleet.emissions(n_good, start, rate, speed))
    total = n_good + n_bad
    if record is not None:
        write_recording(record, stream(), default_rate=rate)
    acked = seconds = None
    if publish_to is not None:
        with Progress(
            TextColumn("[bold]publishing"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[acked]} acked"),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not console.is_terminal,
        ) as bar:
            task = bar.add_task("publish", total=total, acked=0)
            stats = publish(
                islice(stream(), total),
                publish_to,
                rate=rate * (total / n_good),
                qos=1,
                progress=lambda sent, ack: bar.update(task, completed=sent, acked=ack),
            )
        acked, seconds = stats.acked, stats.elapsed
    return SimulationSummary(
        total, n_bad, readings, acked, seconds, str(record) if record else None
    )
