"""Anomaly labels: which rule should fire for which sensor and when (JSON Lines)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Label:
    """One injected (or derived) anomaly: ``rule`` should alert for ``sensor_id``.

    ``start`` is when the anomaly begins in event time (delays are measured from it), ``end``
    when it stops; ``window_s`` is how long the rule must wait by its own definition (an
    averaging window, N readings, 3 intervals of silence): the delay target is window + 5 s.
    """

    sensor_id: str
    kind: str
    rule: str
    anomaly: str
    start: datetime
    end: datetime
    window_s: float = 0.0

    def to_json(self) -> str:
        """One JSON line."""
        d = asdict(self)
        d["start"], d["end"] = self.start.isoformat(), self.end.isoformat()
        return json.dumps(d, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> Label:
        """Parse a line written by :meth:`to_json`."""
        d = json.loads(line)
        d["start"] = datetime.fromisoformat(d["start"])
        d["end"] = datetime.fromisoformat(d["end"])
        return cls(**d)


def labels_path(recording: str | Path) -> Path:
    """Where the labels of ``recording`` live: ``<recording>.labels.jsonl`` beside it."""
    p = Path(recording)
    return p.with_name(p.name + ".labels.jsonl")


def write_labels(path: str | Path, labels: Iterable[Label]) -> int:
    """Write labels as JSON Lines; returns how many."""
    n = 0
    with Path(path).open("w", encoding="utf-8", newline="\n") as fh:
        for label in labels:
            fh.write(label.to_json() + "\n")
            n += 1
    return n


def read_labels(path: str | Path) -> list[Label]:
    """Read labels; ``ValueError`` names the line of a corrupt one."""
    out = []
    with Path(path).open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                out.append(Label.from_json(line))
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not a label line: {exc}") from exc
    return out
