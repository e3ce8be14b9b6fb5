"""The syntax tree of a ``$filter`` or ``$orderby`` expression."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal as TypingLiteral

LiteralType = TypingLiteral["string", "int", "float", "bool", "null", "datetime", "geography"]


@dataclass(frozen=True, slots=True)
class Literal:
    """A constant: ``'text'``, ``42``, ``1.5``, ``true``, ``null``, a time, ``geography'…'``."""

    value: str | int | float | bool | datetime | None
    type: LiteralType


@dataclass(frozen=True, slots=True)
class Path:
    """A property, possibly through navigation: ``name``, ``Datastream/Thing/name``."""

    segments: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Unary:
    """``not x`` or ``-x``."""

    op: TypingLiteral["not", "neg"]
    operand: Node


@dataclass(frozen=True, slots=True)
class Binary:
    """Comparison (eq ne gt ge lt le), logical (and or) or arithmetic (add sub mul div mod)."""

    op: str
    left: Node
    right: Node


@dataclass(frozen=True, slots=True)
class Call:
    """A function call: ``substringof('a', name)``, ``year(phenomenonTime)``…"""

    name: str
    args: tuple[Node, ...]


Node = Literal | Path | Unary | Binary | Call

COMPARISONS = frozenset({"eq", "ne", "gt", "ge", "lt", "le"})
ARITHMETIC = frozenset({"add", "sub", "mul", "div", "mod"})
LOGICAL = frozenset({"and", "or"})
