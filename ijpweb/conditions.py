"""The job-option condition language of the original IJP (ijp-formats.md §2.3).

A hand-written recursive-descent parser, never ``eval``::

    LogicalExpression := BooleanTerm ( '||' BooleanTerm )*
    BooleanTerm       := BooleanFactor ( '&&' BooleanFactor )*
    BooleanFactor     := ['!'] ( '(' LogicalExpression ')' | Predicate )
    Predicate         := 'True' | 'False' | ArithExpr COMPOP ArithExpr
    ArithExpr         := Term ( ('+'|'-') Term )*
    Term              := Factor ( ('*'|'/'|'%') Factor )*
    Factor            := ['-'] ( '(' ArithExpr ')' | NAME | 'string' | INTEGER | REAL | null )

Values follow the Java original: integers are 64-bit Longs (arithmetic wraps, ``/``
truncates toward zero, ``%`` takes the sign of the dividend), reals are Doubles, and
``==`` is Java ``equals`` (so ``1 == 1.0`` is false). A name missing from the map is an
error; a name present with the value ``None`` is ``null``.

One deliberate difference: the original lexed ``-`` directly before a digit as part of
the number even after an operand, so ``n-1 > 0`` was a syntax error. Here ``-`` after an
operand is the binary operator; every expression the original accepted means the same.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["ConditionError", "Expression", "parse", "evaluate", "is_true"]


class ConditionError(ValueError):
    """A condition that cannot be parsed or evaluated; ``position`` is 0-based."""

    def __init__(self, message: str, position: int | None = None):
        super().__init__(message if position is None else f"{message} (at character {position + 1})")
        self.position = position


# --- values --------------------------------------------------------------------------

_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1


def _wrap(n: int) -> int:
    """Two's-complement wrap to 64 bits, as Java ``long`` arithmetic does."""
    return (n - _LONG_MIN) % 2**64 + _LONG_MIN


def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "long"
    if isinstance(v, float):
        return "double"
    if isinstance(v, str):
        return "string"
    raise ConditionError(f"unsupported value {v!r}")


def _widen(v: Any) -> Any:
    """Map values as the original widened them: Integer -> Long, Float -> Double."""
    kind = _kind(v)
    if kind == "long":
        return _wrap(int(v))
    if kind == "double":
        return float(v)
    return v


def _java_equals(a: Any, b: Any) -> bool:
    if _kind(a) != _kind(b):
        return False
    if isinstance(a, float):
        # Double.equals compares bit patterns: NaN equals NaN, 0.0 does not equal -0.0.
        if math.isnan(a) and math.isnan(b):
            return True
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return a == b


def _numeric(v: Any, op: str) -> int | float:
    if _kind(v) not in ("long", "double"):
        raise ConditionError(f"'{op}' needs numbers, got {_describe(v)}")
    return v


def _describe(v: Any) -> str:
    return "null" if v is None else f"{_kind(v)} {v!r}"


def _java_div(a: float, b: float) -> float:
    if b == 0:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1, b)
    return a / b


def _java_fmod(a: float, b: float) -> float:
    if b == 0 or math.isinf(a) or math.isnan(a) or math.isnan(b):
        return math.nan
    if math.isinf(b):
        return a
    return math.fmod(a, b)


def _arith(op: str, a: Any, b: Any) -> int | float:
    a, b = _numeric(a, op), _numeric(b, op)
    if isinstance(a, int) and isinstance(b, int):
        if op == "+":
            return _wrap(a + b)
        if op == "-":
            return _wrap(a - b)
        if op == "*":
            return _wrap(a * b)
        if b == 0:
            raise ConditionError(f"division by zero in '{op}'")
        q = abs(a) // abs(b)
        q = q if (a >= 0) == (b >= 0) else -q
        return _wrap(q) if op == "/" else _wrap(a - b * q)
    a, b = float(a), float(b)
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        return _java_div(a, b)
    return _java_fmod(a, b)


def _compare(op: str, a: Any, b: Any) -> bool:
    if op == "==":
        return _java_equals(a, b)
    if op == "!=":
        return not _java_equals(a, b)
    a, b = _numeric(a, op), _numeric(b, op)
    if not (isinstance(a, int) and isinstance(b, int)):
        a, b = float(a), float(b)
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


# --- syntax tree ---------------------------------------------------------------------


@dataclass(frozen=True)
class Const:
    value: Any


@dataclass(frozen=True)
class Name:
    name: str


@dataclass(frozen=True)
class Neg:
    operand: Any


@dataclass(frozen=True)
class BinOp:
    op: str
    left: Any
    right: Any


@dataclass(frozen=True)
class Compare:
    op: str
    left: Any
    right: Any


@dataclass(frozen=True)
class BoolConst:
    value: bool


@dataclass(frozen=True)
class Not:
    operand: Any


@dataclass(frozen=True)
class And:
    left: Any
    right: Any


@dataclass(frozen=True)
class Or:
    left: Any
    right: Any


@dataclass(frozen=True)
class Expression:
    """A parsed condition: its source text, its tree and the names it reads."""

    source: str
    tree: Any
    names: frozenset[str]

    def evaluate(self, values: Mapping[str, Any]) -> bool:
        return _eval_bool(self.tree, values)


# --- lexer ---------------------------------------------------------------------------

_NUMBER = re.compile(r"[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?|\.[0-9]+([eE][+-]?[0-9]+)?")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_OPERATORS = ("&&", "||", "==", "!=", ">=", "<=", ">", "<", "!", "+", "-", "*", "/", "%", "(", ")")
_OPERAND_END = {"name", "number", "string", "null", ")"}


@dataclass(frozen=True)
class _Token:
    kind: str  # name, number, string, null, true, false, op, end
    value: Any
    pos: int


def _number(text: str, pos: int) -> Any:
    if re.fullmatch(r"-?[0-9]+", text):
        n = int(text)
        if not _LONG_MIN <= n <= _LONG_MAX:
            raise ConditionError(f"integer {text} is out of range", pos)
        return n
    return float(text)


def _digit(c: str) -> bool:
    return "0" <= c <= "9"


def _tokens(source: str) -> list[_Token]:
    out: list[_Token] = []
    i, n = 0, len(source)
    while i < n:
        c = source[i]
        if c in " \t\r\n":
            i += 1
            continue
        prev = out[-1].kind if out else None
        prev_val = out[-1].value if out else None
        operand_before = prev in _OPERAND_END - {")"} or (prev == "op" and prev_val == ")")
        if c == "-" and not operand_before and i + 1 < n and _digit(source[i + 1]):
            m = _NUMBER.match(source, i + 1)
            text = "-" + m.group(0)
            out.append(_Token("number", _number(text, i), i))
            i += len(text)
            continue
        if _digit(c) or (c == "." and i + 1 < n and _digit(source[i + 1])):
            m = _NUMBER.match(source, i)
            out.append(_Token("number", _number(m.group(0), i), i))
            i = m.end()
            continue
        if c.isascii() and c.isalpha():
            m = _NAME.match(source, i)
            word = m.group(0)
            kind = {"True": "true", "False": "false", "null": "null"}.get(word, "name")
            out.append(_Token(kind, word, i))
            i = m.end()
            continue
        if c == "'":
            j, chars = i + 1, []
            while True:
                if j >= n:
                    raise ConditionError("unterminated string", i)
                if source[j] == "'":
                    if j + 1 < n and source[j + 1] == "'":
                        chars.append("'")
                        j += 2
                        continue
                    break
                chars.append(source[j])
                j += 1
            out.append(_Token("string", "".join(chars), i))
            i = j + 1
            continue
        for op in _OPERATORS:
            if source.startswith(op, i):
                out.append(_Token("op", op, i))
                i += len(op)
                break
        else:
            if c == "=":
                raise ConditionError("'=' is not an operator; use '=='", i)
            raise ConditionError(f"unexpected character {c!r}", i)
    out.append(_Token("end", None, n))
    return out


# --- parser --------------------------------------------------------------------------


_BOOL_NODES = (BoolConst, Not, And, Or, Compare)
_MAX_DEPTH = 50


class _Parser:
    """Precedence climbing over the grammar above, then a type check: a node is either a
    condition (True/False, comparisons, ! && ||) or a value, and each operator demands
    one kind. Linear in the input, no backtracking."""

    def __init__(self, source: str):
        self.toks = _tokens(source)
        self.i = 0
        self.depth = 0
        self.names: set[str] = set()

    @property
    def tok(self) -> _Token:
        return self.toks[self.i]

    def _is_op(self, *ops: str) -> bool:
        return self.tok.kind == "op" and self.tok.value in ops

    def _take(self) -> _Token:
        t = self.tok
        self.i += 1
        return t

    @staticmethod
    def _want_bool(node: Any, pos: int, what: str) -> Any:
        if not isinstance(node, _BOOL_NODES):
            raise ConditionError(f"{what} needs a condition, not a value", pos)
        return node

    @staticmethod
    def _want_value(node: Any, pos: int, what: str) -> Any:
        if isinstance(node, _BOOL_NODES):
            raise ConditionError(f"{what} needs a value, not a condition", pos)
        return node

    def logical(self) -> Any:
        pos = self.tok.pos
        node = self.term()
        while self._is_op("||"):
            t = self._take()
            self._want_bool(node, pos, "'||'")
            node = Or(node, self._want_bool(self.term(), t.pos, "'||'"))
        return node

    def term(self) -> Any:
        pos = self.tok.pos
        node = self.factor()
        while self._is_op("&&"):
            t = self._take()
            self._want_bool(node, pos, "'&&'")
            node = And(node, self._want_bool(self.factor(), t.pos, "'&&'"))
        return node

    def factor(self) -> Any:
        if self._is_op("!"):
            t = self._take()
            return Not(self._want_bool(self.comparison(), t.pos, "'!'"))
        return self.comparison()

    def comparison(self) -> Any:
        if self.tok.kind in ("true", "false"):
            return BoolConst(self._take().kind == "true")
        pos = self.tok.pos
        left = self.arith()
        if self._is_op("==", "!=", "<", "<=", ">", ">="):
            t = self._take()
            self._want_value(left, pos, f"'{t.value}'")
            right_pos = self.tok.pos
            right = self._want_value(self.arith(), right_pos, f"'{t.value}'")
            return Compare(t.value, left, right)
        return left

    def arith(self) -> Any:
        pos = self.tok.pos
        node = self.mul()
        while self._is_op("+", "-"):
            t = self._take()
            self._want_value(node, pos, f"'{t.value}'")
            node = BinOp(t.value, node, self._want_value(self.mul(), t.pos, f"'{t.value}'"))
        return node

    def mul(self) -> Any:
        pos = self.tok.pos
        node = self.unary()
        while self._is_op("*", "/", "%"):
            t = self._take()
            self._want_value(node, pos, f"'{t.value}'")
            node = BinOp(t.value, node, self._want_value(self.unary(), t.pos, f"'{t.value}'"))
        return node

    def unary(self) -> Any:
        if self._is_op("-"):
            t = self._take()
            return Neg(self._want_value(self.primary(), t.pos, "'-'"))
        return self.primary()

    def primary(self) -> Any:
        t = self.tok
        if self._is_op("("):
            self._take()
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise ConditionError("parentheses nested too deeply", t.pos)
            node = self.logical()
            if not self._is_op(")"):
                raise ConditionError("expected ')'", self.tok.pos)
            self._take()
            self.depth -= 1
            return node
        if t.kind == "name":
            self._take()
            self.names.add(t.value)
            return Name(t.value)
        if t.kind in ("number", "string"):
            self._take()
            return Const(t.value)
        if t.kind == "null":
            self._take()
            return Const(None)
        if t.kind in ("true", "false"):
            raise ConditionError(f"{t.value} is a condition, not a value", t.pos)
        if t.kind == "end":
            raise ConditionError("unexpected end of condition", t.pos)
        raise ConditionError(f"unexpected {t.value!r}", t.pos)


def parse(source: str) -> Expression:
    """Parse a condition; raise :class:`ConditionError` naming the position."""
    if not source or not source.strip():
        raise ConditionError("empty condition")
    p = _Parser(source)
    tree = p.logical()
    if p.tok.kind != "end":
        raise ConditionError("trailing material after valid expression", p.tok.pos)
    _Parser._want_bool(tree, 0, "a condition")
    return Expression(source, tree, frozenset(p.names))


# --- evaluation ----------------------------------------------------------------------


def _eval_value(node: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(node, Const):
        return node.value
    if isinstance(node, Name):
        if node.name not in values:
            raise ConditionError(f"{node.name} has no value supplied in the map")
        return _widen(values[node.name])
    if isinstance(node, Neg):
        v = _numeric(_eval_value(node.operand, values), "-")
        return _wrap(-v) if isinstance(v, int) else -v
    if isinstance(node, BinOp):
        return _arith(node.op, _eval_value(node.left, values), _eval_value(node.right, values))
    raise ConditionError(f"not a value: {node!r}")


def _eval_bool(node: Any, values: Mapping[str, Any]) -> bool:
    if isinstance(node, BoolConst):
        return node.value
    if isinstance(node, Not):
        return not _eval_bool(node.operand, values)
    if isinstance(node, And):
        return _eval_bool(node.left, values) and _eval_bool(node.right, values)
    if isinstance(node, Or):
        return _eval_bool(node.left, values) or _eval_bool(node.right, values)
    if isinstance(node, Compare):
        return _compare(node.op, _eval_value(node.left, values), _eval_value(node.right, values))
    raise ConditionError(f"not a condition: {node!r}")


def evaluate(source: str | Expression, values: Mapping[str, Any]) -> bool:
    expr = parse(source) if isinstance(source, str) else source
    return expr.evaluate(values)


def is_true(source: str | Expression, values: Mapping[str, Any]) -> bool:
    """Like :func:`evaluate`, but an error counts as false (the GUI rule)."""
    try:
        return evaluate(source, values)
    except ConditionError:
        return False
