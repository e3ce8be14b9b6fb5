"""Recordings: MQTT messages as JSON Lines ``{"topic", "payload_b64", "t"}`` for exact replays."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol


class Message(Protocol):
    """Anything with an MQTT topic and payload (Emission, BadMessage, RecordedMessage)."""

    @property
    def topic(self) -> str: ...

    @property
    def payload(self) -> bytes: ...


@dataclass(frozen=True, slots=True)
class RecordedMessage:
    """One line of a recording: ``t`` is the offset in seconds from the start of the run."""

    topic: str
    payload: bytes
    t: float

    @property
    def t_offset(self) -> float:
        """Alias so recordings and emissions pace the same way."""
        return self.t


def _offset(message: Message, index: int, default_rate: float) -> float:
    for name in ("t_offset", "t"):
        value = getattr(message, name, None)
        if isinstance(value, int | float):
            return float(value)
    return index / default_rate


def write_recording(
    path: str | Path, messages: Iterable[Message], *, default_rate: float = 1.0
) -> int:
    """Write ``messages`` to ``path`` (JSON Lines); return how many were written.

    A message without ``t_offset``/``t`` (a bad message) gets ``index / default_rate``.
    """
    count = 0
    with Path(path).open("w", encoding="utf-8", newline="\n") as fh:
        for i, message in enumerate(messages):
            line = {
                "topic": message.topic,
                "payload_b64": base64.b64encode(message.payload).decode("ascii"),
                "t": _offset(message, i, default_rate),
            }
            fh.write(json.dumps(line, separators=(",", ":")) + "\n")
            count += 1
    return count


def read_recording(path: str | Path) -> Iterator[RecordedMessage]:
    """Read a recording lazily; ``ValueError`` names the line of a corrupt entry."""
    with Path(path).open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                topic, payload, t = obj["topic"], obj["payload_b64"], obj["t"]
                if not isinstance(topic, str) or not isinstance(payload, str):
                    raise TypeError("topic and payload_b64 must be strings")
                if isinstance(t, bool) or not isinstance(t, int | float):
                    raise TypeError("t must be a number")
                data = base64.b64decode(payload, validate=True)
            except RecursionError as exc:  # JSON nested thousands deep
                why = "nested too deeply"
                raise ValueError(f"{path}:{number}: not a recording line: {why}") from exc
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not a recording line: {exc}") from exc
            yield RecordedMessage(topic, data, float(t))
