"""ICAT's query languages, compiled to SQLAlchemy over the embedded catalog's tables.

JPQL, the subset ICAT uses::

    SELECT [DISTINCT] o | o.path | COUNT|MIN|MAX|AVG|SUM([DISTINCT] o[.path])
    FROM Entity o [[LEFT [OUTER]|INNER] JOIN o.relation [AS] a]...
    [WHERE cond] [ORDER BY path [ASC|DESC], ...] [LIMIT offset, count] [INCLUDE o.rel, ...]

    cond: = <> != < > <= >= [NOT] LIKE [NOT] IN (...) [NOT] BETWEEN .. AND ..
          IS [NOT] NULL, AND OR NOT, parentheses; values: 'strings', numbers, TRUE,
          FALSE, :user, CURRENT_TIMESTAMP, other :parameters.

and the older concise syntax (``COUNT(Datafile) <-> Dataset [id=5] <-> Datafile [name
LIKE '%.h5']``), whose entities are the nodes of one join graph, the first being the
result. Every value is a bound parameter; nothing from the query text becomes SQL text.
Errors name the position (1-based character) and the problem.

A query is bounded before it runs (:class:`Limits`): its length, how deeply its
conditions nest (parentheses and NOT; the parser counts and refuses before it recurses)
and how many joins it needs; integers must fit in 64 bits.

Which entities the rules restrict follows icat.server (parser/SearchQuery.java and
FromClause.java): the entity the SELECT clause refers to (``o``, the owner of ``o.a.name``,
the target of ``o.a``), not the entities it is joined through, so ``SELECT COUNT(t) FROM
DatasetType t JOIN t.datasets ds`` counts datasets the user may not read, as ICAT does.
``restrict_joins`` restricts every entity of the query instead.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal

from .icatdb import TABLES, fk_column
from .icatschema import entities

KEYWORDS = {
    "SELECT", "DISTINCT", "FROM", "JOIN", "LEFT", "OUTER", "INNER", "AS", "WHERE", "AND", "OR",
    "NOT", "LIKE", "IN", "BETWEEN", "IS", "NULL", "ORDER", "BY", "ASC", "DESC", "LIMIT",
    "INCLUDE", "COUNT", "MIN", "MAX", "AVG", "SUM", "CURRENT_TIMESTAMP", "TRUE", "FALSE",
}  # fmt: skip
AGGREGATES = ("COUNT", "MIN", "MAX", "AVG", "SUM")
INT64 = 2**63 - 1
MAX_DEPTH = 100  # the most a facility may allow: Python and SQLAlchemy recurse per level


@dataclass(frozen=True)
class Limits:
    """How big a query may be (the ``ijp.catalog.query_max_*`` settings)."""

    length: int = 20_000  # characters
    depth: int = 40  # nested parentheses and NOTs
    joins: int = 20  # explicit JOINs, paths through relations and concise-syntax links

    def __post_init__(self):
        if not 1 <= self.depth <= MAX_DEPTH:
            raise ValueError(f"the query nesting limit must be between 1 and {MAX_DEPTH}")
        if self.length < 1 or self.joins < 0:
            raise ValueError("query limits must be positive")


LIMITS = Limits()


class QueryError(ValueError):
    def __init__(self, message: str, position: int | None = None):
        where = f" at character {position + 1}" if position is not None else ""
        super().__init__(f"{message}{where}")
        self.position = position


# --- lexer ------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""(?P<ws>\s+)|
    (?P<str>'(?:[^']|'')*')|
    (?P<num>\d+\.\d*(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\d+)|
    (?P<param>:[A-Za-z_][A-Za-z0-9_]*|\$\{[A-Za-z_][A-Za-z0-9_]*\})|
    (?P<op><->|<>|!=|<=|>=|=|<|>|\(|\)|\[|\]|,|\*)|
    (?P<word>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)""",
    re.X,
)


@dataclass(frozen=True)
class Tok:
    kind: str  # kw word value param op end
    value: Any
    pos: int


def lex(text: str) -> list[Tok]:
    out, i = [], 0
    while i < len(text):
        m = _TOKEN.match(text, i)
        if not m:
            if text[i] == "'":
                raise QueryError("unterminated string", i)
            raise QueryError(f"unexpected character {text[i]!r}", i)
        kind, raw = m.lastgroup, m.group(m.lastgroup)
        if kind == "str":
            out.append(Tok("value", raw[1:-1].replace("''", "'"), i))
        elif kind == "num":
            out.append(Tok("value", _number(raw, i), i))
        elif kind == "param":
            out.append(Tok("param", raw.strip(":${}"), i))
        elif kind == "op":
            out.append(Tok("op", raw, i))
        elif kind == "word":
            up = raw.upper()
            out.append(Tok("kw", up, i) if up in KEYWORDS else Tok("word", raw, i))
        i = m.end()
    out.append(Tok("end", None, len(text)))
    return out


def _number(raw: str, pos: int) -> int | float:
    if re.search(r"[.eE]", raw):
        value = float(raw)
        if not math.isfinite(value):
            raise QueryError(f"the number {raw[:30]} is out of range", pos)
        return value
    digits = raw.lstrip("0") or "0"
    if len(digits) > 19 or int(digits) > INT64:
        raise QueryError(f"the number {raw[:30]} is out of range (at most {INT64})", pos)
    return int(digits)


# --- syntax tree ------------------------------------------------------------------------


@dataclass(frozen=True)
class Path:
    text: str  # o.dataset.name
    pos: int


@dataclass(frozen=True)
class Param:
    name: str
    pos: int


@dataclass(frozen=True)
class Now:
    pass


@dataclass(frozen=True)
class Cmp:
    op: str  # = != < > <= >= LIKE IN BETWEEN NULL
    left: Any
    right: Any = None
    negate: bool = False


@dataclass(frozen=True)
class Bool:
    op: str  # AND OR NOT
    args: tuple


@dataclass
class Join:
    path: Path
    alias: str
    outer: bool


@dataclass
class Query:
    entity: str
    alias: str
    select: Path | None  # None: the entity itself
    aggregate: str | None = None
    agg_distinct: bool = False
    distinct: bool = False
    joins: list[Join] = field(default_factory=list)
    where: Any = None
    order: list[tuple[Path, bool]] = field(default_factory=list)  # (path, descending)
    limit: tuple[int, int | None] | None = None  # (offset, count); count None: LIMIT n,*
    include: list[Path] = field(default_factory=list)
    # concise syntax: entity name -> its condition, joined as one graph
    nodes: list[tuple[str, Any, int]] = field(default_factory=list)


# --- parser -----------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str, limits: Limits):
        self.text = text
        self.toks = lex(text)
        self.i = 0
        self.limits = limits
        self.depth = 0  # parentheses and NOTs open around the current condition

    @property
    def tok(self) -> Tok:
        return self.toks[self.i]

    def at(self, kind: str, *values) -> bool:
        t = self.tok
        return t.kind == kind and (not values or t.value in values)

    def take(self, kind: str, *values, what: str = "") -> Tok:
        if not self.at(kind, *values):
            found = "the end of the query" if self.tok.kind == "end" else repr(self.tok.value)
            raise QueryError(
                f"expected {what or ' or '.join(map(str, values)) or kind}, found {found}", self.tok.pos
            )
        t = self.tok
        self.i += 1
        return t

    def maybe(self, kind: str, *values) -> bool:
        if self.at(kind, *values):
            self.i += 1
            return True
        return False

    # JPQL
    def query(self) -> Query:
        limit = None
        if self.at("value") and isinstance(self.tok.value, int):  # concise: "0,200 Dataset ..."
            offset = self.count("an offset")
            self.take("op", ",")
            limit = (offset, self.count("a count"))
        if not self.at("kw", "SELECT"):
            q = self.concise()
            q.limit = q.limit or limit
            return q
        self.take("kw", "SELECT")
        distinct = self.maybe("kw", "DISTINCT")
        aggregate, agg_distinct = None, False
        if self.at("kw", *AGGREGATES):
            aggregate = self.take("kw").value
            self.take("op", "(")
            agg_distinct = self.maybe("kw", "DISTINCT")
            target = self.path()
            self.take("op", ")")
        else:
            target = self.path()
        self.take("kw", "FROM")
        entity = self.take("word", what="an entity name")
        self.maybe("kw", "AS")
        alias = self.take("word", what="an alias").value
        q = Query(entity.value, alias, None, aggregate, agg_distinct, distinct)
        if entity.value not in entities():
            raise QueryError(f"unknown entity {entity.value}", entity.pos)
        q.select = None if target.text == alias else target
        while self.at("kw", "JOIN", "LEFT", "INNER"):
            outer = False
            if self.maybe("kw", "LEFT"):
                self.maybe("kw", "OUTER")
                outer = True
            else:
                self.maybe("kw", "INNER")
            self.take("kw", "JOIN")
            path = self.path()
            self.maybe("kw", "AS")
            q.joins.append(Join(path, self.take("word", what="an alias").value, outer))
        # as in ICAT, the SELECT clause may name any alias of the FROM clause
        aliases = [alias] + [j.alias for j in q.joins]
        if target.text.split(".")[0] not in aliases:
            raise QueryError(
                f"{target.text.split('.')[0]} is not the alias {' or '.join(aliases)}", target.pos
            )
        if self.maybe("kw", "WHERE"):
            q.where = self.disjunction()
        if self.maybe("kw", "ORDER"):
            self.take("kw", "BY")
            while True:
                p = self.path()
                desc = self.maybe("kw", "DESC")
                if not desc:
                    self.maybe("kw", "ASC")
                q.order.append((p, desc))
                if not self.maybe("op", ","):
                    break
        if self.maybe("kw", "LIMIT"):
            a = self.count("an offset")
            if self.maybe("op", ","):
                q.limit = (a, None if self.maybe("op", "*") else self.count("a number or *"))
            else:
                q.limit = (0, a)
        if self.maybe("kw", "INCLUDE"):
            q.include = [self.path()]
            while self.maybe("op", ","):
                q.include.append(self.path())
        if not self.at("end"):
            raise QueryError(f"unexpected {self.tok.value!r}", self.tok.pos)
        return q

    def path(self) -> Path:
        t = self.take("word", what="a name")
        return Path(t.value, t.pos)

    def count(self, what: str) -> int:
        """A LIMIT offset or count: a whole number (the lexer has range-checked it)."""
        t = self.take("value", what=what)
        if not isinstance(t.value, int) or isinstance(t.value, bool):
            raise QueryError(f"expected {what}, found {t.value!r}", t.pos)
        return t.value

    # concise syntax
    def concise(self) -> Query:
        aggregate = None
        if self.at("kw", *AGGREGATES):
            aggregate = self.take("kw").value
            self.take("op", "(")
        first = self.take("word", what="an entity name")
        if aggregate:
            self.take("op", ")")
        entity, _, attribute = first.value.partition(".")
        if entity not in entities():
            raise QueryError(f"unknown entity {entity}", first.pos)
        q = Query(entity, "$0", Path(f"$0.{attribute}", first.pos) if attribute else None, aggregate)
        q.nodes.append((entity, self.bracket() if self.at("op", "[") else None, first.pos))
        while self.maybe("op", "<->"):
            t = self.take("word", what="an entity name")
            if t.value not in entities():
                raise QueryError(f"unknown entity {t.value}", t.pos)
            q.nodes.append((t.value, self.bracket() if self.at("op", "[") else None, t.pos))
        if self.maybe("kw", "INCLUDE"):
            while True:
                self.take("word")
                if not self.maybe("op", ","):
                    break
        if self.at("op", "[") or not self.at("end"):
            raise QueryError(f"unexpected {self.tok.value!r}", self.tok.pos)
        return q

    def bracket(self) -> Any:
        self.take("op", "[")
        cond = self.disjunction()
        self.take("op", "]")
        return cond

    # conditions
    def disjunction(self) -> Any:
        args = [self.conjunction()]
        while self.maybe("kw", "OR"):
            args.append(self.conjunction())
        return args[0] if len(args) == 1 else Bool("OR", tuple(args))

    def conjunction(self) -> Any:
        args = [self.negation()]
        while self.maybe("kw", "AND"):
            args.append(self.negation())
        return args[0] if len(args) == 1 else Bool("AND", tuple(args))

    def negation(self) -> Any:
        if not self.at("kw", "NOT") and not self.at("op", "("):
            return self.comparison()
        # count before recursing: nesting is bounded, so the parser never runs out of stack
        self.depth += 1
        if self.depth > self.limits.depth:
            raise QueryError(
                f"the conditions nest more than {self.limits.depth} levels deep (parentheses and NOT; "
                "the limit is ijp.catalog.query_max_depth)",
                self.tok.pos,
            )
        if self.maybe("kw", "NOT"):
            c = Bool("NOT", (self.negation(),))
        else:
            self.take("op", "(")
            c = self.disjunction()
            self.take("op", ")")
        self.depth -= 1
        return c

    def operand(self) -> Any:
        t = self.tok
        if t.kind == "word":
            return self.path()
        if t.kind == "value":
            self.i += 1
            return t.value
        if t.kind == "param":
            self.i += 1
            return Param(t.value, t.pos)
        if t.kind == "kw" and t.value in ("TRUE", "FALSE"):
            self.i += 1
            return t.value == "TRUE"
        if t.kind == "kw" and t.value == "CURRENT_TIMESTAMP":
            self.i += 1
            return Now()
        if t.kind == "kw" and t.value == "NULL":
            self.i += 1
            return None
        raise QueryError("expected a value or an attribute", t.pos)

    def comparison(self) -> Cmp:
        left = self.operand()
        negate = self.maybe("kw", "NOT")
        t = self.tok
        if t.kind == "op" and t.value in ("=", "<>", "!=", "<", ">", "<=", ">=") and not negate:
            self.i += 1
            return Cmp("!=" if t.value == "<>" else t.value, left, self.operand())
        if self.maybe("kw", "LIKE"):
            return Cmp("LIKE", left, self.operand(), negate)
        if self.maybe("kw", "IN"):
            self.take("op", "(")
            values = [self.operand()]
            while self.maybe("op", ","):
                values.append(self.operand())
            self.take("op", ")")
            return Cmp("IN", left, tuple(values), negate)
        if self.maybe("kw", "BETWEEN"):
            lo = self.operand()
            self.take("kw", "AND")
            return Cmp("BETWEEN", left, (lo, self.operand()), negate)
        if not negate and self.maybe("kw", "IS"):
            neg = self.maybe("kw", "NOT")
            self.take("kw", "NULL")
            return Cmp("NULL", left, None, neg)
        raise QueryError("expected a comparison", t.pos)


def parse(text: str, limits: Limits = LIMITS) -> Query:
    if not text or not text.strip():
        raise QueryError("empty query")
    if len(text) > limits.length:
        raise QueryError(
            f"the query is {len(text)} characters long, more than {limits.length} "
            "(the limit is ijp.catalog.query_max_length)"
        )
    return _Parser(text, limits).query()


# --- compiler ---------------------------------------------------------------------------

# ``restrict(entity, id_column)``: the condition that keeps the objects of ``entity`` the
# user may read, or None when they may read them all (see EmbeddedCatalog).
Restrict = Callable[[str, Any], Any]


@dataclass
class Compiled:
    select: sa.Select
    entity: str  # the entity the SELECT clause refers to (what the rules restrict)
    root: Any  # its table alias
    kind: str  # entity | value | aggregate
    include: list[str] = field(default_factory=list)
    batch_column: Any = None  # with compile_query(batch=...): the column the values select
    aggregate: str | None = None
    number: int | None = None  # LIMIT's count, if any


class _Scope:
    """Table aliases and the joins they need, built while compiling one query."""

    def __init__(self, params: dict[str, Any], batch: str | None, limits: Limits):
        self.batch = batch  # a parameter that stands for a list of values (see compile_query)
        self.batch_column = None
        self.limits = limits
        self.aliases: dict[str, tuple[str, Any]] = {}  # name -> (entity, table alias)
        self.joins: list[list] = []  # [entity, table alias, on clause, outer]
        self.implicit: dict[tuple[str, str], tuple[str, Any]] = {}
        self.params = params
        self.n = 0

    def new_alias(self, entity: str):
        self.n += 1
        return TABLES[entity].alias(f"t{self.n}")

    def step(self, entity: str, table, relation: str, pos: int, outer: bool = False):
        """Join ``table.relation``; return (target entity, target alias)."""
        rel = entities()[entity].relations.get(relation)
        if rel is None:
            raise QueryError(f"{entity} has no relation {relation!r}", pos)
        if len(self.joins) >= self.limits.joins:
            raise QueryError(
                f"the query needs more than {self.limits.joins} joins "
                "(the limit is ijp.catalog.query_max_joins)",
                pos,
            )
        target = self.new_alias(rel.target)
        if rel.many:
            on = target.c[fk_column(rel.inverse)] == table.c.id
        else:
            on = table.c[fk_column(relation)] == target.c.id
        self.joins.append([rel.target, target, on, outer])
        return rel.target, target

    def walk(self, path: Path, parts: list[str]):
        """Follow ``parts`` (relations) from the alias that starts ``path``: (entity, alias)."""
        head = path.text.split(".")[0]
        if head not in self.aliases:
            raise QueryError(f"unknown alias {head!r}", path.pos)
        entity, table = self.aliases[head]
        prefix = head
        for part in parts:
            prefix = f"{prefix}.{part}"
            key = (prefix, "")
            if key not in self.implicit:
                self.implicit[key] = self.step(entity, table, part, path.pos)
            entity, table = self.implicit[key]
        return entity, table

    def resolve(self, path: Path, want_column: bool = True):
        """``a.b.c`` -> a column (or, with want_column False, an (entity, alias) pair)."""
        parts = path.text.split(".")
        entity, table = self.walk(path, parts[1:] if not want_column else parts[1:-1])
        if not want_column:
            return entity, table
        if len(parts) == 1:
            raise QueryError(f"{path.text} is an entity, not a value", path.pos)
        attr = parts[-1]
        if attr in entities()[entity].one():
            return table.c[fk_column(attr)]
        if attr not in entities()[entity].attributes:
            raise QueryError(f"{entity} has no attribute {attr!r}", path.pos)
        return table.c[attr]

    def selected(self, path: Path):
        """What the SELECT clause refers to, as icat.server's FromClause decides it:
        (entity, alias, column or None for the entity itself)."""
        parts = path.text.split(".")
        if len(parts) > 1 and parts[-1] in entities()[self.walk(path, parts[1:-1])[0]].one():
            parts.append("")  # o.dataset: the Dataset (ICAT answers with the entity)
        if len(parts) == 1 or parts[-1] == "":
            entity, table = self.walk(path, [p for p in parts[1:] if p])
            return entity, table, None
        entity, table = self.walk(path, parts[1:-1])
        return entity, table, self.resolve(path)

    def value(self, v: Any):
        if isinstance(v, Path):
            return self.resolve(v)
        if isinstance(v, Param):
            if v.name not in self.params:
                raise QueryError(f"no value for parameter :{v.name}", v.pos)
            return sa.bindparam(None, self.params[v.name], unique=True)
        if isinstance(v, Now):
            return sa.bindparam(None, datetime.now(UTC), unique=True, type_=sa.DateTime(timezone=True))
        return sa.bindparam(None, v, unique=True) if v is not None else sa.null()

    def condition(self, c: Any):
        if isinstance(c, Bool):
            parts = [self.condition(a) for a in c.args]
            if c.op == "NOT":
                return sa.not_(parts[0])
            return _chain(sa.and_ if c.op == "AND" else sa.or_, parts)
        if self.batch and c.op == "=" and not c.negate:
            for col, other in ((c.left, c.right), (c.right, c.left)):
                if isinstance(other, Param) and other.name == self.batch and isinstance(col, Path):
                    if self.batch_column is not None:
                        raise QueryError(f"${{{self.batch}}} may be used once", other.pos)
                    self.batch_column = self.resolve(col)
                    return self.batch_column.in_(sa.bindparam("batch_values", expanding=True))
        left = self.value(c.left)
        if c.op == "NULL":
            expr = left.is_(None)
        elif c.op == "IN":
            expr = left.in_([self.value(v) for v in c.right])
        elif c.op == "BETWEEN":
            expr = left.between(self.value(c.right[0]), self.value(c.right[1]))
        elif c.op == "LIKE":
            expr = left.like(self.value(c.right))
        else:
            right = self.value(c.right)
            expr = {
                "=": left == right,
                "!=": left != right,
                "<": left < right,
                ">": left > right,
                "<=": left <= right,
                ">=": left >= right,
            }[c.op]
        return sa.not_(expr) if c.negate else expr


_FLAT = 64


class _Parens(ColumnElement):
    """A condition in parentheses that SQLAlchemy does not flatten into its neighbours."""

    __visit_name__ = "ijp_parens"
    _traverse_internals = [("inner", InternalTraversal.dp_clauseelement)]
    inherit_cache = True
    type = sa.Boolean()

    def __init__(self, inner):
        self.inner = inner


@compiles(_Parens)
def _render_parens(element, compiler, **kw):
    return f"({compiler.process(element.inner, **kw)})"


def _chain(fn, parts: list):
    """``a AND b AND ...``: flat when short; as a balanced tree of parenthesised groups when
    long, because SQLite parses a flat chain into a tree as deep as it is long (and refuses
    one deeper than 1000)."""
    while len(parts) > _FLAT:
        parts = [_Parens(fn(*parts[i : i + _FLAT])) for i in range(0, len(parts), _FLAT)]
    return parts[0] if len(parts) == 1 else fn(*parts)


def _connect_nodes(q: Query, scope: _Scope) -> list:
    """Concise syntax: join the distinct entities of the chain into one graph."""
    nodes: dict[str, tuple[str, Any]] = {}
    conditions = []
    root_entity = q.entity
    nodes[root_entity] = (root_entity, scope.aliases["$0"][1])
    for name, cond, pos in q.nodes:
        if name not in nodes:
            link = None
            for have, (_, table) in reversed(list(nodes.items())):
                rels = [r for r, rel in entities()[have].relations.items() if rel.target == name]
                if len(rels) == 1:
                    link = (have, table, rels[0])
                    break
            if link is None:
                raise QueryError(f"{name} is not related to {', '.join(nodes)}", pos)
            nodes[name] = scope.step(*link, pos)
        if cond is not None:
            alias = f"${len(scope.aliases)}"
            scope.aliases[alias] = nodes[name]
            conditions.append(scope.condition(_rebase(cond, alias)))
    return conditions


def _rebase(cond: Any, alias: str) -> Any:
    """Concise conditions name attributes of their own entity: prefix them."""
    if isinstance(cond, Bool):
        return Bool(cond.op, tuple(_rebase(a, alias) for a in cond.args))

    def fix(v):
        if isinstance(v, Path):
            return Path(f"{alias}.{v.text}", v.pos)
        if isinstance(v, tuple):
            return tuple(fix(x) for x in v)
        return v

    return Cmp(cond.op, fix(cond.left), fix(cond.right), cond.negate)


def compile_query(
    text: str | Query,
    params: dict[str, Any] | None = None,
    batch: str | None = None,
    *,
    limits: Limits = LIMITS,
    restrict: Restrict | None = None,
    restrict_joins: bool = False,
) -> Compiled:
    """Compile a query. With ``batch``, the one condition ``path = :batch`` becomes
    ``path IN :batch_values`` and ``path`` leads the select (grouped by, for
    aggregates), so one query answers for many values instead of one query each.

    With ``restrict``, the rules apply: to the entity the SELECT clause refers to, as in
    ICAT, or with ``restrict_joins`` to every entity the query reads (a joined one in its
    join's ON clause, so an outer join still keeps its row)."""
    q = parse(text, limits) if isinstance(text, str) else text
    scope = _Scope(params or {}, batch, limits)
    root = scope.new_alias(q.entity)
    scope.aliases[q.alias] = (q.entity, root)
    where = []
    for j in q.joins:
        if j.alias in scope.aliases:
            raise QueryError(f"alias {j.alias!r} is used twice", j.path.pos)
        parts = j.path.text.split(".")
        if len(parts) < 2:
            raise QueryError("JOIN needs alias.relation", j.path.pos)
        entity, table = scope.resolve(Path(".".join(parts[:-1]), j.path.pos), want_column=False)
        scope.aliases[j.alias] = scope.step(entity, table, parts[-1], j.path.pos, j.outer)
    if q.nodes:
        where += _connect_nodes(q, scope)
    if q.where is not None:
        where.append(scope.condition(q.where))
    sel_entity, sel_table, target = scope.selected(q.select or Path(q.alias, 0))
    kind = "entity" if target is None else "value"
    if target is None:
        target = sel_table.c.id
    lead = [scope.batch_column] if scope.batch_column is not None else []
    if batch and not lead:
        raise QueryError(f"the query must select by {batch} = ${{{batch}}}")
    for p, _ in q.order:
        scope.resolve(p)  # (its joins, before they are added to the select)
    if restrict is not None:
        cond = restrict(sel_entity, sel_table.c.id)
        if cond is not None:
            where.append(cond)
        if restrict_joins:
            if root is not sel_table and (cond := restrict(q.entity, root.c.id)) is not None:
                where.append(cond)
            for join in scope.joins:
                entity, table = join[0], join[1]
                if table is not sel_table and (cond := restrict(entity, table.c.id)) is not None:
                    join[2] = sa.and_(join[2], cond)
    if q.aggregate:
        if q.aggregate == "COUNT":
            expr = sa.func.count(sa.distinct(target) if q.agg_distinct else target)
        else:
            fn = getattr(sa.func, q.aggregate.lower())
            expr = fn(sa.distinct(target) if q.agg_distinct else target)
        select, kind = sa.select(*lead, expr), "aggregate"
        if lead:
            select = select.group_by(*lead)
    else:
        select = sa.select(*lead, *sel_table.c) if kind == "entity" else sa.select(*lead, target)
        if q.distinct:
            select = select.distinct()
    select = select.select_from(root)
    for _, table, on, outer in scope.joins:
        select = select.join(table, on, isouter=outer)
    if where:
        select = select.where(*where)
    for p, desc in q.order:
        col = scope.resolve(p)
        select = select.order_by(col.desc() if desc else col.asc())
    number = None
    if q.limit and not q.aggregate:
        offset, number = q.limit
        select = select.offset(offset) if number is None else select.offset(offset).limit(number)
    include = [p.text.split(".", 1)[1] for p in q.include if "." in p.text]
    return Compiled(select, sel_entity, sel_table, kind, include, scope.batch_column, q.aggregate, number)


def ids_query(text: str, params: dict[str, Any]) -> tuple[str, sa.Select]:
    """The ids of the entity a query (e.g. a rule's ``what``) selects, and that entity."""
    text = text.strip()
    if re.fullmatch(r"[A-Za-z]+", text):
        if text not in entities():
            raise QueryError(f"unknown entity {text}", 0)
        return text, sa.select(TABLES[text].c.id)
    c = compile_query(text, params)
    if c.kind == "aggregate":
        raise QueryError("a rule cannot select an aggregate")
    return c.entity, c.select.with_only_columns(c.root.c.id)
