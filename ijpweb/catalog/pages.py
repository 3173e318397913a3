"""Cursors of the catalog's lists (a dataset search, a dataset's datafiles), the same on
every face (pages, /api/v1, the CLI through the API). No Pyramid here.

A cursor holds which way it goes (after or before a position), the number of the page it
leads to (for "page 3" on a page; it decides nothing), the list's count as the first page
found it (the pages after it do not count again, and say so) and the position, signed by
:class:`ijpweb.paging.Cursors` for the list's scope: the user and the filters. A cursor of
another user's list, of another search, or one that was changed, is an InputError naming
the field (a 400 on every face).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .. import paging
from ..inputs import InputError
from . import DATAFILE_ORDER, DATASET_ORDER, Page, Position

_AFTER, _BEFORE = "a", "b"
MAX_PAGE_NUMBER = 10**9


@dataclass(frozen=True)
class Where:
    """Where a cursor leads: the page after or before a position (both None: the first)."""

    after: Position | None = None
    before: Position | None = None
    number: int = 1  # the page's number, for showing
    total: tuple[int, bool] | None = None  # the count (and whether exact) the first page found

    @property
    def count(self) -> bool:
        """Whether this page must count its list (the first page does; the others carry it)."""
        return self.total is None


def dataset_scope(user: str, type_name: str, investigation: str, name: str) -> str:
    return paging.scope("datasets", user, {"type": type_name, "investigation": investigation, "name": name})


def datafile_scope(user: str, dataset_id: int, name: str) -> str:
    return paging.scope("datafiles", user, {"dataset": dataset_id, "name": name})


def _length(list_scope: str) -> int:
    return len(DATAFILE_ORDER if list_scope.startswith('["datafiles"') else DATASET_ORDER)


def decode(cursors: paging.Cursors, list_scope: str, token: str, field: str = "cursor") -> Where:
    """Where ``token`` leads in the list ``list_scope`` ('': the first page)."""
    if not token:
        return Where()
    try:
        values = cursors.decode(list_scope, token, field, length=_length(list_scope) + 4)
    except paging.CursorError as e:
        raise InputError(e.field, e.reason) from None
    way, number, total, exact, position = values[0], values[1], values[2], values[3], tuple(values[4:])
    if (
        way not in (_AFTER, _BEFORE)
        or type(number) is not int
        or not 1 <= number <= MAX_PAGE_NUMBER
        or type(total) is not int
        or type(exact) is not bool
    ):
        raise InputError(field, "is not valid for this list")
    if way == _AFTER:
        return Where(position, None, number, (total, exact))
    return Where(None, position, number, (total, exact))


def counted(page: Page, where: Where) -> Page:
    """``page`` with its list's count: its own, or the one the first page found."""
    if where.total is None:
        return page
    return replace(page, total=where.total[0], exact=where.total[1])


@dataclass(frozen=True)
class Links:
    """The cursors of the pages after and before a page (None: there is none)."""

    next: str | None
    previous: str | None


def links(cursors: paging.Cursors, list_scope: str, page: Page, where: Where) -> Links:
    """The cursors of the pages after and before ``page`` (counted: see :func:`counted`)."""
    known = (page.total, page.exact)
    nxt = page.next and cursors.encode(list_scope, (_AFTER, where.number + 1, *known, *page.next))
    before = max(1, where.number - 1)
    previous = page.previous and cursors.encode(list_scope, (_BEFORE, before, *known, *page.previous))
    return Links(nxt or None, previous or None)
