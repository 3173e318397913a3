"""ijpweb.paging's cursors (a parser of what clients send back): what encode gives,
decode gives back for the same list only; anything else is a CursorError, never another
exception and never a position."""

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ijpweb.paging import Count, CursorError, Cursors, bounded_count, page_size, scope

CURSORS = Cursors("test secret")
values = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.text(max_size=40),
    st.booleans(),
    st.none(),
    st.datetimes(timezones=st.just(UTC)),
)
positions = st.lists(values, max_size=6).map(tuple)
scopes = st.builds(scope, st.sampled_from(["jobs", "datasets"]), st.text(max_size=20),
                   st.dictionaries(st.sampled_from(["status", "tag", "name"]), st.text(max_size=10)))  # fmt: skip


@given(scopes, positions)
def test_a_cursor_gives_back_its_position_in_its_own_list(list_scope, position):
    assert CURSORS.decode(list_scope, CURSORS.encode(list_scope, position), length=len(position)) == position


@given(scopes, scopes, positions)
def test_a_cursor_of_another_list_is_refused(one, other, position):
    token = CURSORS.encode(one, position)
    if one != other:
        with pytest.raises(CursorError):
            CURSORS.decode(other, token)


@given(scopes, positions, st.data())
def test_a_changed_cursor_is_refused(list_scope, position, data):
    token = CURSORS.encode(list_scope, position)
    i = data.draw(st.integers(0, len(token) - 1))
    new = data.draw(st.sampled_from("ABCDEFabcdef0123456789-_.").filter(lambda c: c != token[i]))
    changed = token[:i] + new + token[i + 1 :]
    try:
        got = CURSORS.decode(list_scope, changed)
    except CursorError:
        return
    # base64's last character may carry unused bits: the same bytes, the same position
    assert got == position


@given(scopes, st.text(max_size=300))
def test_any_text_is_a_cursor_error_or_nothing_else(list_scope, text):
    with pytest.raises(CursorError) as refused:
        CURSORS.decode(list_scope, text, field="cursor")
    assert refused.value.field == "cursor" and "not valid for this list" in refused.value.reason


def test_another_secret_refuses_the_cursor_and_a_wrong_length_too():
    s = scope("jobs", "db/bob", {"status": "Failed"})
    token = CURSORS.encode(s, ("older", 5))
    with pytest.raises(CursorError):
        Cursors("another secret").decode(s, token)
    with pytest.raises(CursorError):
        CURSORS.decode(s, token, length=3)
    assert scope("jobs", "db/bob", {"status": "", "tag": None}) == scope("jobs", "db/bob", {})
    assert CURSORS.decode(s, CURSORS.encode(s, (datetime(2026, 1, 1), 1))) == (datetime(2026, 1, 1), 1)


@given(st.one_of(st.none(), st.integers(-(10**9), 10**9)))
def test_page_sizes_are_capped_and_say_so(asked):
    size, capped = page_size(asked, default=25, most=200)
    assert 1 <= size <= 200
    assert capped == (asked is not None and asked > 200)
    assert size == (25 if asked is None else min(max(asked, 1), 200))


def test_a_bounded_count_reads_at_most_one_more_than_its_cap():
    import sqlalchemy as sa

    engine = sa.create_engine("sqlite://")
    with engine.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO t (id) WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
                             "WHERE i < 50) SELECT i FROM n")  # fmt: skip
        rows = sa.select(sa.table("t", sa.column("id")).c.id)
        assert bounded_count(conn.execute, rows, cap=100) == Count(50, True)
        assert bounded_count(conn.execute, rows, cap=10) == Count(10, False)
        assert str(Count(10, False)) == "more than 10" and str(Count(1234, True)) == "1,234"
