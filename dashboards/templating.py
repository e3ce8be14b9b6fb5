"""Template variables in SQL, replaced as Grafana's frontend does for SQL datasources."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

# Grafana's variable regex: $var, [[var]] / [[var:fmt]], ${var} / ${var:fmt}
VARIABLE = re.compile(
    r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^\}]+))?(?::([^\}]+))?\}"
)


def quote_literal(value: str) -> str:
    """SQL string literal as the PostgreSQL datasource's ``quoteLiteral`` writes it."""
    return "'" + value.replace("'", "''") + "'"


def format_value(value: str | Sequence[str], multi: bool) -> str:
    """``interpolateVariable`` of the SQL datasources: quoted lists for multi-value variables."""
    if isinstance(value, str):
        return quote_literal(value) if multi else value.replace("'", "''")
    return ",".join(quote_literal(v) for v in value)


def interpolate(
    sql: str, values: Mapping[str, str | Sequence[str]], multi: frozenset[str] = frozenset()
) -> str:
    """Replace every known variable; unknown ones (and ``$__macros``) are left for the backend."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(4)
        if name not in values:
            return match.group(0)
        return format_value(values[name], name in multi)

    return VARIABLE.sub(replace, sql)
