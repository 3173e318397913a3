"""ICAT's concise query syntax, as the historical IJP dataset-type files use it::

    COUNT(Datafile) <-> Dataset [id=${datasetId}] <-> Datafile [datafileFormat.name IN ('a', 'b')]
    DatasetParameter.numericValue <-> Dataset [id=${datasetId}] <-> DatasetParameter [type.name='nchannels']

The first term is what is selected (an entity, ``Entity.attribute``, or ``COUNT(Entity)``);
each ``<-> Entity [condition]`` relates it to another entity with a condition on that
entity's own attributes. Conditions use ``= <> != < > <= >= LIKE IN IS [NOT] NULL AND OR
NOT`` and parentheses. Values are always bound parameters, never SQL text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

DATASET_ID_PARAM = "datasetId"


class ConciseError(ValueError):
    def __init__(self, message: str, position: int | None = None):
        super().__init__(message if position is None else f"{message} (at character {position + 1})")
        self.position = position


@dataclass(frozen=True)
class Cmp:
    path: str
    op: str  # = != < > <= >= LIKE IN NULL NOTNULL
    value: Any = None


@dataclass(frozen=True)
class BoolOp:
    op: str  # AND OR NOT
    args: tuple


@dataclass(frozen=True)
class Param:
    name: str


@dataclass(frozen=True)
class Term:
    entity: str
    condition: Any | None


@dataclass(frozen=True)
class ConciseQuery:
    aggregate: str | None  # COUNT or None
    entity: str
    attribute: str | None
    terms: tuple[Term, ...]  # including the selected entity's own conditions, if any


_TOKEN = re.compile(
    r"""\s*(?:
    (?P<str>'(?:[^']|'')*')|
    (?P<num>-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|
    (?P<param>\$\{[A-Za-z]+\}|:[A-Za-z]+)|
    (?P<op><->|<>|!=|<=|>=|=|<|>|\(|\)|\[|\]|,)|
    (?P<word>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.X,
)


def _lex(text: str) -> list[tuple[str, Any, int]]:
    out, i = [], 0
    text = text.rstrip()
    while i < len(text):
        m = _TOKEN.match(text, i)
        if not m or m.end() == i:
            raise ConciseError(f"unexpected {text[i:].strip()[:1]!r}", i)
        kind = m.lastgroup
        raw = m.group(kind)
        pos = m.start(kind)
        if kind == "str":
            out.append(("value", raw[1:-1].replace("''", "'"), pos))
        elif kind == "num":
            out.append(("value", float(raw) if re.search(r"[.eE]", raw) else int(raw), pos))
        elif kind == "param":
            out.append(("param", raw.strip("${}:"), pos))
        elif kind == "op":
            out.append(("op", raw, pos))
        else:
            up = raw.upper()
            if up in ("AND", "OR", "NOT", "IN", "LIKE", "IS", "NULL", "COUNT", "TRUE", "FALSE"):
                out.append(("kw", up, pos))
            else:
                out.append(("word", raw, pos))
        i = m.end()
    out.append(("end", None, len(text)))
    return out


class _Parser:
    def __init__(self, text: str):
        self.toks = _lex(text)
        self.i = 0

    def peek(self, kind: str, value: Any = None) -> bool:
        k, v, _ = self.toks[self.i]
        return k == kind and (value is None or v == value)

    def take(self, kind: str, value: Any = None, what: str = "") -> Any:
        k, v, pos = self.toks[self.i]
        if k != kind or (value is not None and v != value):
            shown = "end of query" if k == "end" else repr(v)
            raise ConciseError(f"expected {what or value or kind}, found {shown}", pos)
        self.i += 1
        return v

    def query(self) -> ConciseQuery:
        aggregate = None
        if self.peek("kw", "COUNT"):
            self.take("kw")
            self.take("op", "(")
            aggregate = "COUNT"
        first = self.take("word", what="an entity name")
        if aggregate:
            self.take("op", ")")
        entity, _, attribute = first.partition(".")
        terms = []
        if self.peek("op", "["):
            terms.append(Term(entity, self.bracket()))
        while self.peek("op", "<->"):
            self.take("op")
            name = self.take("word", what="an entity name")
            terms.append(Term(name, self.bracket() if self.peek("op", "[") else None))
        if not self.peek("end"):
            k, v, pos = self.toks[self.i]
            raise ConciseError(f"unexpected {v!r}", pos)
        return ConciseQuery(aggregate, entity, attribute or None, tuple(terms))

    def bracket(self) -> Any:
        self.take("op", "[")
        cond = self.disj()
        self.take("op", "]")
        return cond

    def disj(self) -> Any:
        args = [self.conj()]
        while self.peek("kw", "OR"):
            self.take("kw")
            args.append(self.conj())
        return args[0] if len(args) == 1 else BoolOp("OR", tuple(args))

    def conj(self) -> Any:
        args = [self.neg()]
        while self.peek("kw", "AND"):
            self.take("kw")
            args.append(self.neg())
        return args[0] if len(args) == 1 else BoolOp("AND", tuple(args))

    def neg(self) -> Any:
        if self.peek("kw", "NOT"):
            self.take("kw")
            return BoolOp("NOT", (self.neg(),))
        if self.peek("op", "("):
            self.take("op")
            c = self.disj()
            self.take("op", ")")
            return c
        return self.comparison()

    def value(self) -> Any:
        if self.peek("param"):
            return Param(self.take("param"))
        if self.peek("kw", "TRUE") or self.peek("kw", "FALSE"):
            return self.take("kw") == "TRUE"
        return self.take("value", what="a value")

    def comparison(self) -> Cmp:
        path = self.take("word", what="an attribute")
        k, v, pos = self.toks[self.i]
        if k == "op" and v in ("=", "<>", "!=", "<", ">", "<=", ">="):
            self.i += 1
            return Cmp(path, "!=" if v == "<>" else v, self.value())
        if k == "kw" and v == "LIKE":
            self.i += 1
            return Cmp(path, "LIKE", self.take("value", what="a pattern"))
        if k == "kw" and v == "NOT" and self.toks[self.i + 1][1] == "IN":
            self.i += 1
            return BoolOp("NOT", (self.in_list(path),))
        if k == "kw" and v == "IN":
            return self.in_list(path)
        if k == "kw" and v == "IS":
            self.i += 1
            negate = self.peek("kw", "NOT")
            if negate:
                self.take("kw")
            self.take("kw", "NULL")
            return Cmp(path, "NOTNULL" if negate else "NULL")
        raise ConciseError("expected a comparison", pos)

    def in_list(self, path: str) -> Cmp:
        self.take("kw", "IN")
        self.take("op", "(")
        values = [self.value()]
        while self.peek("op", ","):
            self.take("op")
            values.append(self.value())
        self.take("op", ")")
        return Cmp(path, "IN", tuple(values))


def parse_query(text: str) -> ConciseQuery:
    """Parse a concise query; ``${datasetId}`` becomes a named parameter."""
    return _Parser(text).query()
