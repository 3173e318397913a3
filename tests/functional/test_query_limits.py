"""Issue 10, points 5 and 8: a catalog query is bounded in time and in the entities it
returns, on every face, as the hostile user who sends the expensive query.

The portal here has small limits (5 entities, 1 second); the long query is a cross join
through the facility: 545 datafiles cubed, minutes of work if nothing stopped it.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from ijpweb import main
from ijpweb.catalog import QueryLimitError
from ijpweb.catalog.embedded import CatalogLimits, EmbeddedCatalog, time_limit

from ..conftest import make_testapp, serving
from .test_api import API, check, token
from .test_flow import dataset_ids

SECONDS = 1
LONG = "SELECT COUNT(f) FROM Facility f " + " ".join(
    f"JOIN f.investigations i{n} JOIN i{n}.datasets d{n} JOIN d{n}.datafiles x{n}" for n in range(3)
)
TOO_LONG = f"the query took longer than {SECONDS} s (the limit is ijp.catalog.query_seconds)"
SLACK = 20  # seconds: the unbounded query runs for minutes; the bounded one stops at about 1 s


@pytest.fixture(scope="module")
def limited_settings(app_settings):
    return {**app_settings, "ijp.catalog.max_entities": "5", "ijp.catalog.query_seconds": str(SECONDS)}


@pytest.fixture(scope="module")
def limited_app(limited_settings, dbengine):
    return main({}, dbengine=dbengine, **limited_settings)


@pytest.fixture
def limited(limited_app, tm, dbsession):
    return make_testapp(limited_app, tm, dbsession)


def icat_login(app, user="carol"):
    body = {"plugin": "db", "credentials": [{"username": user}, {"password": f"{user}-demo"}]}
    return app.post("/icat/session", {"json": json.dumps(body)}).json["sessionId"]


def test_a_long_query_is_stopped_at_the_time_limit_and_the_next_one_runs(limited):
    sid = icat_login(limited)
    started = time.monotonic()
    res = limited.get("/icat/entityManager", {"sessionId": sid, "query": LONG}, status=400)
    took = time.monotonic() - started
    assert res.json == {"code": "VALIDATION", "message": TOO_LONG}
    assert took < SECONDS + SLACK
    # the same connection and transaction answer the next query
    count = limited.get(
        "/icat/entityManager", {"sessionId": sid, "query": "SELECT COUNT(ds) FROM Dataset ds"}
    )
    assert count.json == [12]
    assert limited.get(f"/icat/session/{sid}").json["userName"] == "db/carol"


def test_max_entities_is_the_setting_on_every_face(limited, dbsession, doc):
    sid = icat_login(limited, "bob")
    assert limited.get("/icat/properties").json["maxEntities"] == 5
    err = limited.get(
        "/icat/entityManager", {"sessionId": sid, "query": "SELECT ds FROM Dataset ds"}, status=400
    )
    assert err.json == {"code": "VALIDATION", "message": "attempt to process more than 5 entities"}
    few = "SELECT ds FROM Dataset ds ORDER BY ds.id LIMIT 0, 3"
    assert len(limited.get("/icat/entityManager", {"sessionId": sid, "query": few}).json) == 3
    # INCLUDE counts the related entities, as ICAT counts them: 3 datasets + 3 investigations
    err = limited.get(
        "/icat/entityManager", {"sessionId": sid, "query": few + " INCLUDE ds.investigation"}, status=400
    )
    assert err.json == {"code": "VALIDATION", "message": "attempt to return more than 5 entities"}
    # a dataset with more datafiles than that: its datafiles come in pages, on the API and
    # the page (no page holds more than the page size, whatever maxEntities is)
    (ds_id,) = dataset_ids(dbsession, investigation="LMF-2026-002")[:1]
    bob = token(limited, "bob")
    res = check(
        doc,
        limited.get(f"{API}/datasets/{ds_id}", {"per_page": 4}, headers=bob),
        "/api/v1/datasets/{dataset_id}",
        "get",
    )
    assert (
        len(res.json["datafiles"]) == 4 and res.json["datafiles_total"] == 10 and res.json["datafiles_next"]
    )
    limited.login("bob")
    assert limited.get(f"/datasets/{ds_id}").text.count('aria-label="Select datafile') == 10
    # the dataset search is paged: it answers
    assert limited.get(f"{API}/datasets", {"per_page": 5}, headers=bob).json["total"] == 26


def test_the_time_limit_on_sqlite_and_postgresql_leaves_the_connection_as_it_was(dbsession):
    """The progress handler is removed (SQLite) and statement_timeout restored (PostgreSQL):
    a statement after the limit, on the same pooled connection, runs unbounded."""
    catalog = EmbeddedCatalog(dbsession, limits=CatalogLimits(query_seconds=SECONDS))
    sid = catalog.login("db", {"username": "carol", "password": "carol-demo"}).session_id
    with pytest.raises(QueryLimitError, match="took longer than 1 s") as e:
        catalog.query(sid, LONG)
    assert e.value.status == 503
    conn = dbsession.connection()
    if conn.dialect.name == "postgresql":
        assert conn.exec_driver_sql("SHOW statement_timeout").scalar() == "0"
    # a statement of many steps after it, on the same connection, is not interrupted
    steps = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000) SELECT COUNT(*) FROM c"
    assert conn.exec_driver_sql(steps).scalar() == 200_000
    # a limit that is not reached changes nothing
    with time_limit(conn, 60):
        assert catalog.query(sid, "SELECT COUNT(ds) FROM Dataset ds") == [12]
        assert conn.exec_driver_sql(steps).scalar() == 200_000


@pytest.fixture(scope="module")
def limited_server(limited_settings, dbengine):
    """The limited portal served by waitress with 2 threads (the attack held all 8 of a
    real one), on the tests' committed database."""
    with serving(main({}, dbengine=dbengine, **limited_settings), threads=2) as url:
        yield url


def _call(url, method="GET", data=None, timeout=SECONDS + SLACK):
    req = urllib.request.Request(
        url, method=method, data=urllib.parse.urlencode(data).encode() if data else None
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout) as res:  # noqa: S310 - our own test server
            return res.status, res.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_concurrent_long_queries_do_not_hold_the_server(limited_server):
    """Six long queries at once on a 2-thread server: each is stopped at the limit, and an
    unrelated request made meanwhile is answered."""
    body = {"plugin": "db", "credentials": [{"username": "carol"}, {"password": "carol-demo"}]}
    status, raw = _call(f"{limited_server}/icat/session", "POST", {"json": json.dumps(body)})
    assert status == 200
    sid = json.loads(raw)["sessionId"]
    query = urllib.parse.urlencode({"sessionId": sid, "query": LONG})
    answers = []

    def attack():
        answers.append(_call(f"{limited_server}/icat/entityManager?{query}"))

    threads = [threading.Thread(target=attack) for _ in range(6)]
    try:
        for t in threads:
            t.start()
        time.sleep(0.2)
        status, raw = _call(f"{limited_server}/icat/session/{sid}")
        assert status == 200 and json.loads(raw)["userName"] == "db/carol"
        for t in threads:
            t.join(timeout=6 * SECONDS + SLACK)
        assert len(answers) == 6
        for status, raw in answers:
            assert (status, json.loads(raw)) == (400, {"code": "VALIDATION", "message": TOO_LONG})
    finally:
        for t in threads:
            t.join()
        _call(f"{limited_server}/icat/session/{sid}", "DELETE")
