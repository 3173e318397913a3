"""The JPQL and concise-syntax engine on python-icat's example dump."""

import contextlib

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from ijpweb.catalog.jpql import MAX_DEPTH, Limits, QueryError, compile_query, parse

from .test_icat_rules import loaded  # noqa: F401  (fixture)


def run(conn, text, **params):
    c = compile_query(text, params)
    rows = conn.execute(c.select).all()
    return [r[0] for r in rows] if c.kind != "entity" else rows


@pytest.mark.parametrize(
    "query, expected",
    [
        ("SELECT COUNT(ds) FROM Dataset ds WHERE ds.investigation.facility.name = 'ESNF'", [9]),
        ("SELECT ds.name FROM Dataset ds WHERE ds.name LIKE 'e2089%' ORDER BY ds.name DESC",
         ["e208947", "e208946", "e208945"]),
        ("SELECT ds.name FROM Dataset ds JOIN ds.investigation i WHERE i.name = '12100409-ST' ORDER BY ds.name",
         ["e208945", "e208946", "e208947", "pub-00027"]),
        ("SELECT ds.name FROM Dataset ds WHERE ds.investigation.name = '12100409-ST' ORDER BY ds.name LIMIT 1, 1",
         ["e208946"]),
        ("SELECT DISTINCT df.datafileFormat.name FROM Datafile df WHERE df.dataset.name IN ('e208339', 'e208341') ORDER BY df.datafileFormat.name",
         ["NeXus", "other"]),
        ("SELECT COUNT(DISTINCT df.dataset.id) FROM Datafile df JOIN df.dataset ds JOIN ds.investigation i WHERE i.facility.name = 'ESNF'", [6]),
        ("SELECT MAX(df.fileSize) FROM Datafile df WHERE df.fileSize BETWEEN 1 AND 400000", [396430]),
        ("SELECT ds.name FROM Dataset ds WHERE ds.description IS NULL AND NOT ds.complete = TRUE AND ds.name = 'e201216'",
         ["e201216"]),
        ("SELECT i.name FROM Investigation i LEFT JOIN i.investigationUsers iu WHERE iu.id IS NULL ORDER BY i.name", []),
        ("SELECT u.name FROM User u WHERE u.name = :user", ["db/jdoe"]),
        # the concise syntax the historical IJP dataset-type files use
        ("COUNT(Datafile) <-> Dataset [name='e208945'] <-> Datafile [name LIKE '%.dat']", [1]),
        ("DatasetParameter.stringValue <-> Dataset [name='e208945'] <-> DatasetParameter [type.name='Probe']", []),
        ("Dataset.name [complete=TRUE] <-> Investigation [name='12100409-ST']", ["e208947", "pub-00027"]),
    ],
)  # fmt: skip
def test_queries(loaded, query, expected):  # noqa: F811
    got = run(loaded, query, user="db/jdoe")
    if "ORDER BY" in query or len(expected) <= 1:
        assert got == expected
    else:
        assert sorted(got) == sorted(expected)


@pytest.mark.parametrize(
    "query, position, message",
    [
        ("SELECT ds FROM Dataset ds WHERE ds.nmae = 'x'", 33, "Dataset has no attribute 'nmae'"),
        ("SELECT ds FROM Datset ds", 16, "unknown entity Datset"),
        ("SELECT ds FROM Dataset ds WHERE", 32, "expected a value"),
        ("SELECT ds FROM Dataset ds JOIN ds.files f", 32, "no relation 'files'"),
        ("SELECT x FROM Dataset ds", 8, "not the alias"),
        ("SELECT ds FROM Dataset ds WHERE ds.name = 'open", 43, "unterminated string"),
        ("SELECT ds FROM Dataset ds WHERE ds.name = :nope", 43, "no value for parameter :nope"),
        ("Dataset <-> Spaceship", 13, "unknown entity Spaceship"),
    ],
)
def test_errors_name_position_and_problem(query, position, message):
    with pytest.raises(QueryError) as e:
        compile_query(query, {"user": "x"})
    assert message in str(e.value)
    assert f"at character {position}" in str(e.value)


def test_values_are_bound_never_sql_text(loaded):  # noqa: F811
    evil = "x' OR '1'='1"
    c = compile_query(
        f"SELECT ds.name FROM Dataset ds WHERE ds.name = '{evil.replace(chr(39), chr(39) * 2)}'"  # noqa: S608 - the point of the test
    )
    assert evil not in str(c.select.compile(compile_kwargs={}))
    assert loaded.execute(c.select).all() == []
    assert (
        loaded.execute(sa.text("SELECT COUNT(*) FROM icat_dataset")).scalar() == 42 + 9
    )  # demo + dump, untouched


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_any_text_parses_or_raises_query_error(text):
    with contextlib.suppress(QueryError):
        parse(text)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.sampled_from(["SELECT", "ds", "ds.name", "FROM", "Dataset", "JOIN", "ds.investigation", "i", "WHERE",
                         "=", "'x'", "AND", "OR", "(", ")", "IN", ",", "LIKE", "IS", "NOT", "NULL", "COUNT",
                         "ORDER", "BY", "LIMIT", "1", "<->", "[", "]", ":user"]),
        max_size=14,
    )
)  # fmt: skip
def test_token_soup_compiles_or_raises_query_error(words):
    with contextlib.suppress(QueryError):
        compile_query(" ".join(words), {"user": "u"})


# --- bounded queries (issue 10, point 5): never a RecursionError, every limit named --------

DEEP = [
    ("SELECT ds FROM Dataset ds WHERE " + "(" * 3000 + "ds.id = 1" + ")" * 3000, "query_max_depth"),
    ("SELECT ds FROM Dataset ds WHERE " + "NOT " * 4000 + "ds.id = 1", "query_max_depth"),
    ("Dataset [" + "NOT (" * 1000 + "id = 1" + ")" * 1000 + "]", "query_max_depth"),
    ("SELECT ds FROM Dataset ds WHERE ds.name = '" + "x" * 100_000 + "'", "query_max_length"),
    ("SELECT ds FROM Dataset ds WHERE " + " AND ".join(
        "ds" + ".investigation.datasets" * n + ".name = 'x'" for n in range(1, 12)), "query_max_joins"),
]  # fmt: skip


@pytest.mark.parametrize("query, limit", DEEP)
def test_too_big_queries_are_refused_naming_the_limit(query, limit):
    with pytest.raises(QueryError, match=limit):
        compile_query(query, {"user": "u"})


def test_fifty_joins_are_refused_before_the_database_sees_them():
    aliases = ["ds"]
    joins = []
    for i in range(25):  # Dataset -> Investigation -> Dataset ...: 50 joins
        joins += [f"JOIN {aliases[-1]}.investigation i{i}", f"JOIN i{i}.datasets d{i}"]
        aliases.append(f"d{i}")
    with pytest.raises(QueryError, match=r"more than 20 joins.*query_max_joins"):
        compile_query("SELECT COUNT(ds) FROM Dataset ds " + " ".join(joins))
    # within the limit they compile (the setting may allow more)
    compile_query("SELECT COUNT(ds) FROM Dataset ds " + " ".join(joins), limits=Limits(joins=50))


@pytest.mark.parametrize(
    "query, number",
    [
        (f"SELECT ds FROM Dataset ds LIMIT 0, {2**63}", str(2**63)),
        (f"SELECT ds FROM Dataset ds LIMIT {2**64}, 1", str(2**64)),
        (f"SELECT ds FROM Dataset ds WHERE ds.id = {2**63}", str(2**63)),
        (f"SELECT ds FROM Dataset ds WHERE ds.id IN (1, {'9' * 5000})", "9" * 5000),
        ("SELECT ds FROM Dataset ds WHERE ds.id = 1e999", "1e999"),
        (f"{2**63},10 Dataset", str(2**63)),
    ],
)
def test_numbers_out_of_range_are_refused(query, number):
    with pytest.raises(QueryError, match=f"out of range.*at character {query.index(number) + 1}$"):
        compile_query(query)


def test_limit_at_the_edge_of_64_bits_and_limit_star(loaded):  # noqa: F811
    biggest = 2**63 - 1
    assert run(loaded, f"SELECT ds.name FROM Dataset ds WHERE ds.id = {biggest}") == []
    assert run(loaded, f"SELECT ds.name FROM Dataset ds LIMIT {biggest}, {biggest}") == []
    names = run(
        loaded, "SELECT ds.name FROM Dataset ds WHERE ds.name LIKE 'e2089%' ORDER BY ds.name LIMIT 1,*"
    )
    assert names == ["e208946", "e208947"]
    with pytest.raises(QueryError, match="expected an offset"):
        compile_query("SELECT ds FROM Dataset ds LIMIT 1.5, 2")


def test_the_deepest_and_longest_allowed_queries_run(loaded):  # noqa: F811
    """At the most a facility may allow (nesting 100), and with a condition chain as long
    as the length limit lets it be, the query compiles and the database runs it (SQLite's
    own expression depth limit is 1000)."""
    deep = (
        "SELECT ds.name FROM Dataset ds WHERE " + "(ds.id > 0 AND " * 50 + "NOT " * 50 + "ds.name = 'e208945'"
    )
    deep += ")" * 50
    assert run_limited(loaded, deep, Limits(depth=MAX_DEPTH)) == ["e208945"]
    with pytest.raises(QueryError, match="nest more than 100"):
        compile_query(deep.replace("NOT ", "NOT NOT ", 1), limits=Limits(depth=MAX_DEPTH))
    chain = " OR ".join(f"ds.id={i}" for i in range(1, 1400))  # 1399 terms
    assert len(chain) < 20_000 - 40
    assert len(run(loaded, f"SELECT ds.id FROM Dataset ds WHERE {chain}")) == 42 + 9
    chain = " AND ".join(["ds.id<>0"] * 1300)
    assert len(run(loaded, f"SELECT ds.id FROM Dataset ds WHERE {chain}")) == 42 + 9
    with pytest.raises(ValueError, match="between 1 and 100"):
        Limits(depth=MAX_DEPTH + 1)


def run_limited(conn, text, limits):
    c = compile_query(text, {}, limits=limits)
    return [r[0] for r in conn.execute(c.select)]


def test_select_clause_names_what_icat_returns(loaded):  # noqa: F811
    """As in ICAT: a join alias may be selected; a relation path selects its entity."""
    c = compile_query("SELECT df FROM Dataset ds JOIN ds.datafiles df WHERE ds.name = 'e208945'")
    assert (c.entity, c.kind) == ("Datafile", "entity")
    assert {r.name for r in loaded.execute(c.select)} == {
        "e208341.nxs",
        "e208945-2.nxs",
        "e208945.dat",
        "e208945.nxs",
    }
    c = compile_query("SELECT ds.investigation FROM Dataset ds WHERE ds.name = 'e208945'")
    assert (c.entity, c.kind) == ("Investigation", "entity")
    assert [r.name for r in loaded.execute(c.select)] == ["12100409-ST"]
    c = compile_query("SELECT df.dataset.investigation.name FROM Datafile df WHERE df.name = 'e208945.dat'")
    assert (c.entity, c.kind) == ("Investigation", "value")
    assert [r[0] for r in loaded.execute(c.select)] == ["12100409-ST"]
    # ORDER BY a path no other clause joins: joined, not a cross product
    c = compile_query(
        "SELECT df.name FROM Datafile df WHERE df.name LIKE 'e208945%' ORDER BY df.dataset.name, df.name"
    )
    assert [r[0] for r in loaded.execute(c.select)] == ["e208945-2.nxs", "e208945.dat", "e208945.nxs"]


QUERY_WORDS = ["SELECT", "ds", "ds.name", "FROM", "Dataset", "JOIN", "ds.investigation", "i", "WHERE", "=",
               "'x'", "AND", "OR", "(", ")", "IN", ",", "LIKE", "IS", "NOT", "NULL", "COUNT", "ORDER", "BY",
               "LIMIT", "1", "*", "<->", "[", "]", ":user", str(2**63), "1e999", "i.datasets", "DISTINCT",
               "ds.investigation.facility.name", "Datafile", "BETWEEN", "INCLUDE", "LEFT", "OUTER"]  # fmt: skip


@st.composite
def nested_queries(draw):
    """A query whose condition nests up to thousands of levels deep, or is very long."""
    depth = draw(st.integers(0, 5000))
    opener = draw(st.sampled_from(["(", "NOT ", "NOT (", "(ds.id = 1 OR "]))
    closer = {"(": ")", "NOT ": "", "NOT (": ")", "(ds.id = 1 OR ": ")"}[opener]
    middle = draw(st.sampled_from(["ds.id = 1", "ds.name LIKE 'a%'", "ds.id IN (1, 2)", ")", ""]))
    close = draw(st.integers(0, depth))
    return "SELECT ds FROM Dataset ds WHERE " + opener * depth + middle + closer * close


@settings(max_examples=200, deadline=None)
@given(st.one_of(nested_queries(), st.lists(st.sampled_from(QUERY_WORDS), max_size=40).map(" ".join)))
def test_any_query_compiles_or_raises_query_error_never_recursion(text):
    try:
        compile_query(text, {"user": "u"})
    except QueryError as e:
        assert str(e)
