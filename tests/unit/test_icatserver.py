"""The Catalog for a real ICAT, through python-icat.

No ICAT server can run here, so the client is replaced at that edge by a fake that
records the JPQL it is sent and answers like python-icat (entity objects with
attributes). One test uses python-icat for real, against a closed port."""

import re
import time
from types import SimpleNamespace as Obj

import pytest
from icat.exception import ICATPrivilegesError, ICATSessionError

from ijpweb.catalog import AuthenticationError, CatalogError, DatafileQuery, DatasetQuery, SessionError
from ijpweb.catalog.icatserver import IcatServerCatalog, jpql_string
from ijpweb.datasettypes import ParameterDef
from ijpweb.paging import COUNT_CAP


class FakeClient:
    """Stands in for icat.Client: answers searches from a table of (prefix, results)."""

    def __init__(self, answers=(), users=None, field_sets=True):
        self.answers = list(answers)
        self.field_sets = field_sets  # False: an ICAT before 4.11.1 (no SOAP fieldSet)
        self.users = users or {"sid-1": "db/jdoe"}
        self.sent = []
        self.sessionId = None
        self.autoLogout = True

    def search(self, query):
        self.sent.append(query)
        for prefix, results in self.answers:
            if query.startswith(prefix):
                return results(query) if callable(results) else results
        return []

    def _has_wsdl_type(self, name):  # python-icat's check of the server's WSDL
        return name == "fieldSet" and self.field_sets

    def getUserName(self):
        if self.sessionId not in self.users:
            raise ICATSessionError({"code": "SESSION", "message": "Unable to find user by sessionid"}, 403)
        return self.users[self.sessionId]

    def login(self, auth, creds):
        if creds.get("password") != "secret":
            raise ICATSessionError(
                {"code": "SESSION", "message": "The username and password do not match"}, 403
            )
        self.sessionId = "sid-1"
        return "sid-1"

    def getRemainingMinutes(self):
        return 119.5


def test_unreachable_icat_is_a_clear_error_not_a_hang():
    catalog = IcatServerCatalog("https://127.0.0.1:1", timeout=2)
    start = time.monotonic()
    with pytest.raises(CatalogError, match="cannot be reached"):
        catalog.login("db", {"username": "u", "password": "p"})
    assert catalog.authenticators() == ["db"]  # the login page still shows
    assert time.monotonic() - start < 10


def test_login_and_sessions_map_to_the_catalog_errors():
    fake = FakeClient()
    catalog = IcatServerCatalog("https://icat.example", client_factory=lambda: fake)
    with pytest.raises(AuthenticationError, match="do not match"):
        catalog.login("db", {"username": "jdoe", "password": "nope"})
    login = catalog.login("db", {"username": "jdoe", "password": "secret"})
    assert (login.session_id, login.user_name) == ("sid-1", "db/jdoe")
    assert fake.autoLogout is False  # the user's session is never logged out behind their back
    with pytest.raises(SessionError):
        catalog.user_name("expired")


def test_dataset_search_quotes_user_values():
    ds = Obj(id=7, name="e1", description=None, complete=True, fileCount=3, createTime=None,
             type=Obj(name="raw"), investigation=Obj(name="INV-1", title="t"))  # fmt: skip
    fake = FakeClient(
        [
            ("SELECT COUNT(ds)", [1]),
            ("SELECT df.dataset.id, COUNT(df)", [(7, 3, 30)]),
            ("SELECT ds ", [ds]),
            ("SELECT t.name", ["raw"]),
            ("SELECT i.name", ["INV-1"]),
        ]
    )
    catalog = IcatServerCatalog("https://icat.example", client_factory=lambda: fake)
    page = catalog.search_datasets("sid-1", DatasetQuery(name="x' OR '1'='1", type_name="raw"))
    assert [d.name for d in page.items] == ["e1"] and page.items[0].datafile_count == 3
    assert page.total == 1 and page.facets == {"types": ["raw"], "investigations": ["INV-1"]}
    sent = "\n".join(fake.sent)
    assert "ds.name LIKE '%x'' OR ''1''=''1%' ESCAPE '!'" in sent and "t.name = 'raw'" in sent
    assert jpql_string("a'b") == "'a''b'"


def test_job_parameters_run_per_dataset_with_the_original_rules():
    counts = {"5": [3], "6": [], "7": [1, 2]}
    fake = FakeClient([("COUNT(Datafile)", lambda q: counts[q.split("id=")[1].split("]")[0]])])
    catalog = IcatServerCatalog("https://icat.example", client_factory=lambda: fake)
    defs = [
        ParameterDef(
            "numHdf", "COUNT(Datafile) <-> Dataset [id=${datasetId}] <-> Datafile [name LIKE '%.h5']", "x.xml"
        )
    ]
    views = [Obj(id=i, type_name="raw") for i in (5, 6, 7)]
    params = catalog.job_parameters("sid-1", views, lambda t: defs)
    assert params == {5: {"numHdf": 3}, 6: {"numHdf": None}, 7: {"numHdf": None}}
    assert any("[id=5]" in q for q in fake.sent)


def test_privilege_errors_are_permission_errors():
    class Refusing(FakeClient):
        def search(self, query):
            raise ICATPrivilegesError({"code": "INSUFFICIENT_PRIVILEGES", "message": "no"}, 403)

    catalog = IcatServerCatalog("https://icat.example", client_factory=lambda: Refusing())
    with pytest.raises(PermissionError):
        catalog.datasets("sid-1", [1])


def test_dataset_pages_are_keyset_pages_with_icats_limit():
    """A page after a position: ICAT's JPQL has no row values, so the keyset is spelt out
    (quoted as every value), read with LIMIT 0, n+1 (never an offset ICAT would walk); the
    count is not asked again when the caller carries it."""
    inv = Obj(id=3, name="INV-1", title="t")
    rows = [Obj(id=i, name=f"d{i}", description=None, complete=False, fileCount=1, fileSize=10, createTime=None,
                type=Obj(name="raw"), investigation=inv) for i in range(1, 4)]  # fmt: skip
    fake = FakeClient(
        [("SELECT COUNT(ds)", [9]), ("SELECT ds ", rows), ("SELECT df.dataset.id", [(1, 1, 10)])]
    )
    catalog = IcatServerCatalog("https://icat.example", client_factory=lambda: fake)
    page = catalog.search_datasets(
        "sid-1", DatasetQuery(per_page=2, after=(3, "a'b", 7), count=False, facets=False)
    )
    sent = "\n".join(fake.sent)
    assert "(i.id > 3 OR (i.id = 3 AND (ds.name > 'a''b' OR (ds.name = 'a''b' AND ds.id > 7))))" in sent
    assert "ORDER BY i.id, ds.name, ds.id LIMIT 0, 3 INCLUDE" in sent and "COUNT(ds)" not in sent
    assert f"LIMIT {COUNT_CAP}" not in sent
    assert [d.name for d in page.items] == ["d1", "d2"] and page.next == (3, "d2", 2)
    assert page.previous == (3, "d1", 1) and page.items[0].datafile_size == 10
    fake.sent.clear()
    back = catalog.search_datasets("sid-1", DatasetQuery(per_page=2, before=(3, "d9", 9), facets=False))
    (page_query,) = [q for q in fake.sent if q.startswith("SELECT ds ")]
    assert "ds.name < 'd9'" in page_query and "ORDER BY i.id DESC, ds.name DESC, ds.id DESC" in page_query
    assert back.total == 9 and back.previous == (3, "d2", 2)  # (the fake's rows, reversed: d2, d1)


# --- what a user types is a literal text, never a LIKE pattern ICAT's database matches ---

LIKE = re.compile(r"\.name LIKE '((?:[^']|'')*)'(?: ESCAPE '(.)')?")


def _typed_part(sent: str) -> tuple[str, str | None]:
    m = LIKE.search(sent)
    assert m, sent
    pattern, escape = m.group(1), m.group(2)
    assert pattern.startswith("%") and pattern.endswith("%")
    return pattern[1:-1], escape


def _unescaped_wildcards(text: str, escape: str | None) -> list[str]:
    out, i = [], 0
    while i < len(text):
        if escape and text[i] == escape:
            i += 2
            continue
        if text[i] in "%_":
            out.append(text[i])
        i += 1
    return out


def _unescape(text: str, escape: str) -> str:
    return re.sub(re.escape(escape) + "(.)", r"\1", text.replace("''", "'"))


@pytest.mark.parametrize("typed", ["a_b", "100%", "%_%_" * 50, "no!wild", "it's_!%"])
def test_dataset_name_search_sends_wildcards_literally(typed):
    """carol's "a_b" must not find "axb", and 200 characters of "%_%_..." must not become
    a pattern ICAT's database backtracks through for every readable row (page and count)."""
    fake = FakeClient([("SELECT COUNT(ds)", [0])])
    catalog = IcatServerCatalog("https://icat.example", client_factory=lambda: fake)
    catalog.search_datasets("sid-1", DatasetQuery(name=typed, facets=False))
    likes = [q for q in fake.sent if "LIKE" in q]
    assert len(likes) == 3  # the bound probe, the count and the page
    for sent in likes:
        part, escape = _typed_part(sent)
        assert escape == "!" and not _unescaped_wildcards(part, escape), (
            f"{typed!r} is sent as a pattern: {sent}"
        )
        assert _unescape(part, escape) == typed  # the text itself, nothing dropped


@pytest.mark.parametrize("typed", ["a_b", "100%", "x!_"])
def test_datafile_name_search_sends_wildcards_literally(typed):
    fake = FakeClient([("SELECT COUNT(df)", [0])])
    catalog = IcatServerCatalog("https://icat.example", client_factory=lambda: fake)
    catalog.dataset_datafiles("sid-1", 7, DatafileQuery(name=typed))
    likes = [q for q in fake.sent if "LIKE" in q]
    assert likes and all("df.dataset.id = 7 AND df.name LIKE" in q for q in likes)
    for sent in likes:
        part, escape = _typed_part(sent)
        assert escape == "!" and not _unescaped_wildcards(part, escape), (
            f"{typed!r} is sent as a pattern: {sent}"
        )
        assert _unescape(part, escape) == typed


# --- counts stop at COUNT_CAP, as on the embedded catalog ---


def test_dataset_count_stops_at_the_cap_without_counting_everything():
    """Past 10,000 readable datasets: one id at offset 10,000 answers "more than 10,000";
    no COUNT(ds) over the whole readable set is sent."""
    fake = FakeClient([("SELECT ds.id ", [123]), ("SELECT COUNT(ds)", [5_000_000])])
    catalog = IcatServerCatalog("https://icat.example", client_factory=lambda: fake)
    page = catalog.search_datasets("sid-1", DatasetQuery(type_name="raw", facets=False))
    assert (page.total, page.exact, page.shown_total) == (COUNT_CAP, False, "more than 10,000")
    (probe,) = [q for q in fake.sent if q.startswith("SELECT ds.id ")]
    assert probe.endswith(f"WHERE t.name = 'raw' LIMIT {COUNT_CAP}, 1") and "ORDER BY" not in probe
    assert not any("COUNT(ds)" in q for q in fake.sent)


def test_dataset_count_below_the_cap_is_exact_and_made_only_on_the_first_page():
    fake = FakeClient([("SELECT COUNT(ds)", [42])])
    catalog = IcatServerCatalog("https://icat.example", client_factory=lambda: fake)
    page = catalog.search_datasets("sid-1", DatasetQuery(facets=False))
    assert (page.total, page.exact, page.shown_total) == (42, True, "42")
    fake.sent.clear()
    catalog.search_datasets("sid-1", DatasetQuery(facets=False, after=(1, "a", 1), count=False))
    assert not any("COUNT(ds)" in q or f"LIMIT {COUNT_CAP}" in q for q in fake.sent)


def test_datafile_count_of_a_dataset_stops_at_the_cap():
    fake = FakeClient([("SELECT df.id ", [9]), ("SELECT COUNT(df)", [10**6])])
    catalog = IcatServerCatalog("https://icat.example", client_factory=lambda: fake)
    page = catalog.dataset_datafiles("sid-1", 7, DatafileQuery())
    assert (page.total, page.exact) == (COUNT_CAP, False)
    assert f"SELECT df.id FROM Datafile df WHERE df.dataset.id = 7 LIMIT {COUNT_CAP}, 1" in fake.sent
    assert not any("COUNT(df)" in q for q in fake.sent)


# --- file counts and sizes are those of the datafiles the user may read ---


def _ds(i, file_count=99, file_size=9999):
    return Obj(id=i, name=f"d{i}", description=None, complete=False, createTime=None,
               fileCount=file_count, fileSize=file_size,  # ICAT's own: every user's datafiles
               type=Obj(name="raw"), investigation=Obj(id=1, name="INV-1", title="t"))  # fmt: skip


def test_file_counts_are_the_readable_datafiles_of_the_pages_datasets_in_one_query():
    """ICAT's Dataset.fileCount/fileSize count bob's datafiles too: carol sees the count of
    those she may read, asked for the page's datasets only in one grouped query (ICAT puts
    the Datafile rules on ``df`` before it groups); a dataset none of whose files she may
    read shows 0, not its stored 99."""
    from decimal import Decimal

    rows = [_ds(1), _ds(2), _ds(3)]
    grouped = [(1, 3, 300), (2, Decimal("1"), Decimal("7"))]  # Oracle's numbers come as Decimal
    fake = FakeClient([("SELECT ds ", rows), ("SELECT df.dataset.id, COUNT(df)", grouped)])
    catalog = IcatServerCatalog("https://icat.example", client_factory=lambda: fake)
    page = catalog.search_datasets("sid-1", DatasetQuery(per_page=5, facets=False, count=False))
    assert [(d.id, d.datafile_count, d.datafile_size) for d in page.items] == [
        (1, 3, 300),
        (2, 1, 7),
        (3, 0, 0),
    ]
    counts = [q for q in fake.sent if "FROM Datafile" in q]
    assert counts == [
        "SELECT df.dataset.id, COUNT(df), SUM(df.fileSize) FROM Datafile df "
        "WHERE df.dataset.id IN (1, 2, 3) GROUP BY df.dataset.id"
    ]
    fake.sent.clear()
    assert [(d.id, d.datafile_count) for d in catalog.datasets("sid-1", [3, 1])] == [(3, 0), (1, 3)]
    assert [q for q in fake.sent if "FROM Datafile" in q] == counts


def test_an_empty_page_asks_no_file_counts():
    fake = FakeClient()
    catalog = IcatServerCatalog("https://icat.example", client_factory=lambda: fake)
    assert catalog.search_datasets("sid-1", DatasetQuery(facets=False, count=False)).items == []
    assert not any("FROM Datafile" in q for q in fake.sent)


def test_file_counts_on_an_icat_without_field_sets_are_per_dataset_and_restricted():
    """ICAT before 4.11.1 cannot answer several values per row: a restricted COUNT (and,
    if any, a SUM) per dataset of the page; still never the stored fileCount."""
    counts = {"1": [2], "2": [0]}
    fake = FakeClient(
        [
            ("SELECT ds ", [_ds(1), _ds(2)]),
            ("SELECT COUNT(df)", lambda q: counts[q.rsplit("= ", 1)[1]]),
            ("SELECT SUM(df.fileSize)", [20]),
        ],
        field_sets=False,
    )
    catalog = IcatServerCatalog("https://icat.example", client_factory=lambda: fake)
    page = catalog.search_datasets("sid-1", DatasetQuery(facets=False, count=False))
    assert [(d.datafile_count, d.datafile_size) for d in page.items] == [(2, 20), (0, 0)]
    assert not any("GROUP BY" in q for q in fake.sent)
    assert [q for q in fake.sent if q.startswith("SELECT SUM")] == [
        "SELECT SUM(df.fileSize) FROM Datafile df WHERE df.dataset.id = 1"
    ]
