"""Resource paths: ``Things(1)/Datastreams(5)/name/$value`` split into segments (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from api.sensorthings.errors import BadRequest, NotSupported

_SEGMENT = re.compile(r"(\$?[A-Za-z][A-Za-z0-9_]*)(?:\((.*)\))?")


@dataclass(frozen=True, slots=True)
class Segment:
    """One step of a path: an entity set, navigation property or property, maybe with an id."""

    name: str
    key: int | None = None


def parse_path(path: str) -> list[Segment]:
    """The segments of ``path`` (after ``/v1.1/``); ids must be integers."""
    out: list[Segment] = []
    for part in [p for p in path.strip("/").split("/") if p]:
        m = _SEGMENT.fullmatch(part)
        if m is None:
            raise BadRequest(f"bad path segment {part!r}")
        name, key = m.group(1), m.group(2)
        if name == "$ref":
            raise NotSupported("$ref is not supported")
        if key is None:
            out.append(Segment(name))
        elif re.fullmatch(r"\d{1,19}", key.strip()):
            out.append(Segment(name, int(key)))
        else:
            raise BadRequest(f"ids are integers, not {key!r}")
    return out
