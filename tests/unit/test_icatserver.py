"""The Catalog for a real ICAT, through python-icat.

No ICAT server can run here, so the client is replaced at that edge by a fake that
records the JPQL it is sent and answers like python-icat (entity objects with
attributes). One test uses python-icat for real, against a closed port."""

import time
from types import SimpleNamespace as Obj

import pytest
from icat.exception import ICATPrivilegesError, ICATSessionError

from ijpweb.catalog import AuthenticationError, CatalogError, DatasetQuery, SessionError
from ijpweb.catalog.icatserver import IcatServerCatalog, jpql_string
from ijpweb.datasettypes import ParameterDef


class FakeClient:
    """Stands in for icat.Client: answers searches from a table of (prefix, results)."""

    def __init__(self, answers=(), users=None):
        self.answers = list(answers)
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
    assert "ds.name LIKE '%x'' OR ''1''=''1%'" in sent and "t.name = 'raw'" in sent
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
    fake = FakeClient([("SELECT COUNT(ds)", [9]), ("SELECT ds ", rows)])
    catalog = IcatServerCatalog("https://icat.example", client_factory=lambda: fake)
    page = catalog.search_datasets(
        "sid-1", DatasetQuery(per_page=2, after=(3, "a'b", 7), count=False, facets=False)
    )
    sent = "\n".join(fake.sent)
    assert "(i.id > 3 OR (i.id = 3 AND (ds.name > 'a''b' OR (ds.name = 'a''b' AND ds.id > 7))))" in sent
    assert "ORDER BY i.id, ds.name, ds.id LIMIT 0, 3 INCLUDE" in sent and "COUNT" not in sent
    assert [d.name for d in page.items] == ["d1", "d2"] and page.next == (3, "d2", 2)
    assert page.previous == (3, "d1", 1) and page.items[0].datafile_size == 10
    fake.sent.clear()
    back = catalog.search_datasets("sid-1", DatasetQuery(per_page=2, before=(3, "d9", 9), facets=False))
    assert "ds.name < 'd9'" in fake.sent[1] and "ORDER BY i.id DESC, ds.name DESC, ds.id DESC" in fake.sent[1]
    assert back.total == 9 and back.previous == (3, "d2", 2)  # (the fake's rows, reversed: d2, d1)
