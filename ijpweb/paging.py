"""Lists that cost what they show: keyset (cursor) paging, capped page sizes and bounded
counts, for every face (pages, /api/v1, the CLI, the console). No Pyramid here.

A cursor is the position after the last row shown (the values of the list's order, e.g.
``(submitted_at, id)``), signed with a key derived from the portal's secret together with
the list's *scope*: a canonical text of everything that decides which rows the list holds
(the user, the filters, the order). A cursor that was changed, or that was made for another
list (another user's, other filters), does not verify and is refused (:class:`CursorError`,
a 400 on every face); it can never move a list onto rows its query does not select.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

MAX_PER_PAGE = 200  # the most rows one page holds on any face
COUNT_CAP = 10_000  # counts stop here: "more than 10,000" costs what 10,000 cost
_SIG_BYTES = 16


class CursorError(ValueError):
    """A cursor that is not one this list gave out: its message is fit to show."""

    def __init__(self, field: str = "cursor"):
        self.field = field
        self.reason = (
            "is not valid for this list (it was changed, has expired with the portal's secret, "
            "or belongs to another search); start again from the first page"
        )
        super().__init__(f"{field} {self.reason}")


def scope(name: str, user: str, filters: Mapping[str, object]) -> str:
    """The canonical text of a list's query: its name, whose it is and its filters (empty
    values left out, so that ``?status=`` and no status are the same list)."""
    kept = {k: str(v) for k, v in sorted(filters.items()) if v not in (None, "")}
    return json.dumps([name, user, kept], separators=(",", ":"), ensure_ascii=True)


def _plain(value):
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"a cursor cannot hold {type(value).__name__}")


def _typed(value):
    if isinstance(value, dict):
        if set(value) != {"t"} or not isinstance(value["t"], str):
            raise ValueError("not a cursor value")
        return datetime.fromisoformat(value["t"])
    if isinstance(value, list):
        raise ValueError("not a cursor value")
    return value


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Cursors:
    """Signs and checks cursors with a key derived from ``secret`` (the portal's auth
    secret: every process of a deployment shares it, so a cursor from one process works on
    the others)."""

    def __init__(self, secret: str | bytes):
        raw = secret.encode() if isinstance(secret, str) else secret
        self._key = hmac.new(raw, b"ijpweb paging cursor v1", hashlib.sha256).digest()

    def _sign(self, list_scope: str, body: bytes) -> bytes:
        return hmac.new(self._key, list_scope.encode() + b"\0" + body, hashlib.sha256).digest()[:_SIG_BYTES]

    def encode(self, list_scope: str, position: Sequence) -> str:
        body = json.dumps([_plain(v) for v in position], separators=(",", ":")).encode()
        return _b64(body) + "." + _b64(self._sign(list_scope, body))

    def decode(self, list_scope: str, token: str, field: str = "cursor", length: int | None = None) -> tuple:
        """The position ``token`` holds, if it was made by :meth:`encode` for this very
        ``list_scope`` (and has ``length`` values); else CursorError naming ``field``."""
        try:
            body_text, sig_text = token.split(".")
            body, sig = _unb64(body_text), _unb64(sig_text)
        except (ValueError, TypeError):
            raise CursorError(field) from None
        if len(token) > 2048 or not hmac.compare_digest(sig, self._sign(list_scope, body)):
            raise CursorError(field)
        try:
            values = json.loads(body)
            if not isinstance(values, list):
                raise ValueError("not a list")
            position = tuple(_typed(v) for v in values)
        except ValueError:
            raise CursorError(field) from None
        if length is not None and len(position) != length:
            raise CursorError(field)
        return position


def page_size(asked: int | None, default: int = 25, most: int = MAX_PER_PAGE) -> tuple[int, bool]:
    """The page size to use for ``asked`` (None: the default) and whether it was capped
    (the face says so: "at most 200 per page")."""
    if asked is None:
        return default, False
    if asked < 1:
        return 1, False
    return (most, True) if asked > most else (asked, False)


@dataclass(frozen=True)
class Count:
    """How many rows a list holds, counted up to a cap: ``exact`` unless there are more
    than ``value`` (then the face shows "more than 10,000")."""

    value: int
    exact: bool

    def __str__(self) -> str:
        return f"{self.value:,}" if self.exact else f"more than {self.value:,}"


def counted(n: int, cap: int = COUNT_CAP) -> Count:
    """The Count of ``n`` rows counted by a statement that stops after ``cap`` + 1."""
    return Count(cap, False) if n > cap else Count(n, True)


def bounded_count_select(select: sa.Select, cap: int = COUNT_CAP) -> sa.Select:
    """The statement that counts the rows of ``select`` up to ``cap`` + 1 (reading at most
    that many): :func:`bounded_count`'s, reachable without running it (plans tests)."""
    limited = select.order_by(None).limit(cap + 1).subquery()
    return sa.select(sa.func.count()).select_from(limited)


def bounded_count(run, select: sa.Select, cap: int = COUNT_CAP) -> Count:
    """Count the rows of ``select`` up to ``cap`` with one statement that reads at most
    ``cap + 1`` of them (``run`` executes a statement: a Session's or Connection's
    ``execute``, or the catalog's ``run``)."""
    return counted(run(bounded_count_select(select, cap)).scalar() or 0, cap)


def keyset(columns: Sequence, position: Sequence, descending: bool = False):
    """The condition "after ``position``" for a list ordered by ``columns`` (all ascending,
    or all descending): a row-value comparison, which SQLite and PostgreSQL both serve
    from an index on the same columns. None in ``position`` is not supported: order only
    by columns that are never null (``coalesce`` them otherwise)."""
    if len(columns) != len(position):
        raise ValueError("a position needs one value per ordering column")
    if any(v is None for v in position):
        raise ValueError("a keyset position cannot hold null")
    left = sa.tuple_(*columns)
    right = sa.tuple_(*[sa.literal(v, type_=c.type) for c, v in zip(columns, position, strict=True)])
    return left < right if descending else left > right
