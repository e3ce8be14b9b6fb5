"""The ``$filter``/``$orderby`` expression parser: OData text to a syntax tree (pure)."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Final

from api.sensorthings.ast import ARITHMETIC, COMPARISONS, Binary, Call, Literal, Node, Path, Unary
from api.sensorthings.errors import BadRequest, NotSupported

MAX_LENGTH: Final = 8000
MAX_DEPTH: Final = 60

# name → allowed argument counts
FUNCTIONS: Final[dict[str, tuple[int, ...]]] = {
    "substringof": (2,),
    "contains": (2,),
    "endswith": (2,),
    "startswith": (2,),
    "length": (1,),
    "indexof": (2,),
    "substring": (2, 3),
    "tolower": (1,),
    "toupper": (1,),
    "trim": (1,),
    "concat": (2,),
    "year": (1,),
    "month": (1,),
    "day": (1,),
    "hour": (1,),
    "minute": (1,),
    "second": (1,),
    "fractionalseconds": (1,),
    "date": (1,),
    "time": (1,),
    "totaloffsetminutes": (1,),
    "now": (0,),
    "mindatetime": (0, 1),
    "maxdatetime": (0, 1),
    "round": (1,),
    "floor": (1,),
    "ceiling": (1,),
    "geo.distance": (2,),
    "st_within": (2,),
}
UNSUPPORTED_FUNCTIONS: Final = frozenset(
    {
        "geo.length",
        "geo.intersects",
        "st_equals",
        "st_disjoint",
        "st_touches",
        "st_overlaps",
        "st_crosses",
        "st_intersects",
        "st_contains",
        "st_relate",
        "any",
        "all",
        "cast",
        "isof",
    }
)

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<geo>(?:geography|geometry)'(?:[^']|'')*')
  | (?P<string>'(?:[^']|'')*')
  | (?P<datetime>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:\d{2}))
  | (?P<number>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
  | (?P<name>[A-Za-z_@$][A-Za-z0-9_.@$]*(?:/[A-Za-z_@$][A-Za-z0-9_.@$]*)*)
  | (?P<punct>[(),])
    """,
    re.VERBOSE,
)


def tokenize(text: str) -> list[tuple[str, str]]:
    """``(kind, text)`` pairs; a character no token starts with is a 400."""
    if len(text) > MAX_LENGTH:
        raise BadRequest(f"expression longer than {MAX_LENGTH} characters")
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise BadRequest(f"unexpected character {text[pos]!r} at position {pos}")
        kind = m.lastgroup or ""
        if kind != "ws":
            out.append((kind, m.group()))
        pos = m.end()
    return out


def parse_datetime(text: str) -> datetime:
    """An ISO 8601 time with a zone; a bad date is a 400."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"bad date-time {text!r}") from None
    if value.tzinfo is None:
        raise BadRequest(f"date-time {text!r} needs a time zone (e.g. Z)")
    return value


class _Parser:
    """Recursive descent with OData precedence (``not`` binds looser than comparisons)."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.depth = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def peek_word(self) -> str | None:
        tok = self.peek()
        return tok[1] if tok is not None and tok[0] == "name" else None

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok is None:
            raise BadRequest("expression ends too early")
        self.pos += 1
        return tok

    def expect(self, punct: str) -> None:
        tok = self.take()
        if tok != ("punct", punct):
            raise BadRequest(f"expected {punct!r}, found {tok[1]!r}")

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise BadRequest("expression nested too deeply")

    def expression(self) -> Node:
        self.enter()
        node = self.and_()
        while self.peek_word() == "or":
            self.take()
            node = Binary("or", node, self.and_())
        self.depth -= 1
        return node

    def and_(self) -> Node:
        node = self.not_()
        while self.peek_word() == "and":
            self.take()
            node = Binary("and", node, self.not_())
        return node

    def not_(self) -> Node:
        if self.peek_word() == "not":
            self.take()
            self.enter()
            node = Unary("not", self.not_())
            self.depth -= 1
            return node
        return self.comparison()

    def comparison(self) -> Node:
        node = self.additive()
        word = self.peek_word()
        if word in COMPARISONS:
            self.take()
            node = Binary(word, node, self.additive())
            if self.peek_word() in COMPARISONS:
                raise BadRequest("comparisons cannot be chained; use 'and'")
        return node

    def additive(self) -> Node:
        node = self.multiplicative()
        while (word := self.peek_word()) in ("add", "sub"):
            self.take()
            node = Binary(str(word), node, self.multiplicative())
        return node

    def multiplicative(self) -> Node:
        node = self.primary()
        while (word := self.peek_word()) in ("mul", "div", "mod"):
            self.take()
            node = Binary(str(word), node, self.primary())
        return node

    def primary(self) -> Node:
        kind, text = self.take()
        if kind == "punct":
            if text != "(":
                raise BadRequest(f"unexpected {text!r}")
            node = self.expression()
            self.expect(")")
            return node
        if kind == "string":
            return Literal(text[1:-1].replace("''", "'"), "string")
        if kind == "geo":
            body = text[text.index("'") + 1 : -1].replace("''", "'")
            return Literal(body, "geography")
        if kind == "datetime":
            return Literal(parse_datetime(text), "datetime")
        if kind == "number":
            if re.fullmatch(r"-?\d+", text):
                value = int(text)
                if abs(value) >= 1 << 63:
                    raise BadRequest(f"integer {text} out of range")
                return Literal(value, "int")
            return Literal(float(text), "float")
        return self.name(text)

    def name(self, text: str) -> Node:
        if text in ("true", "false"):
            return Literal(text == "true", "bool")
        if text == "null":
            return Literal(None, "null")
        if text in COMPARISONS or text in ARITHMETIC or text in ("and", "or", "not"):
            raise BadRequest(f"operator {text!r} where a value was expected")
        if self.peek() == ("punct", "("):
            return self.call(text)
        return Path(tuple(text.split("/")))

    def call(self, name: str) -> Node:
        lowered = name.lower()
        self.expect("(")
        args: list[Node] = []
        if self.peek() != ("punct", ")"):
            args.append(self.expression())
            while self.peek() == ("punct", ","):
                self.take()
                args.append(self.expression())
        self.expect(")")
        if lowered in UNSUPPORTED_FUNCTIONS:
            raise NotSupported(f"function {name}() is not supported")
        if lowered not in FUNCTIONS:
            raise BadRequest(f"unknown function {name}()")
        if len(args) not in FUNCTIONS[lowered]:
            raise BadRequest(
                f"{name}() takes {' or '.join(map(str, FUNCTIONS[lowered]))} arguments"
            )
        return Call(lowered, tuple(args))


def parse_expression(text: str) -> Node:
    """The tree of one expression; any syntax error is a :class:`BadRequest`."""
    parser = _Parser(tokenize(text))
    if parser.peek() is None:
        raise BadRequest("empty expression")
    node = parser.expression()
    if parser.peek() is not None:
        raise BadRequest(f"unexpected {parser.peek()[1]!r} after the expression")  # type: ignore[index]
    return node


def parse_orderby(text: str) -> tuple[tuple[Node, bool], ...]:
    """``$orderby``: ``(expression, descending)`` pairs, comma-separated, each asc or desc."""
    parser = _Parser(tokenize(text))
    out: list[tuple[Node, bool]] = []
    while True:
        if parser.peek() is None:
            raise BadRequest("empty $orderby item")
        node = parser.expression()
        desc = False
        if parser.peek_word() in ("asc", "desc"):
            desc = parser.take()[1] == "desc"
        out.append((node, desc))
        tok = parser.peek()
        if tok is None:
            return tuple(out)
        if tok != ("punct", ","):
            raise BadRequest(f"unexpected {tok[1]!r} in $orderby")
        parser.take()
