"""Issue 10: one user's load on the embedded catalog cannot stop everyone else, as carol
attacking bob. A create is bounded (ijp.catalog.max_writes, the time limit, its rules
checked in one go); a database locked by another's write is a 503 with Retry-After in
each face's format, never a 500; one user runs at most ijp.catalog.user_queries catalog
statements at once, more are refused at once while bob is answered.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import urllib.parse

import pytest
import sqlalchemy as sa

from ijpweb import main
from ijpweb.catalog.embedded import SLOTS
from ijpweb.catalog.icatdb import TABLES
from ijpweb.models import Base, WebSession, get_engine
from ijpweb.models.catalog import CatalogSession

from ..conftest import TestApp, make_testapp, serving
from .test_api import API, token
from .test_query_limits import LONG, _call

WAIT = 30  # seconds at most for a thread to reach a state (never reached when it works)


def icat_login(app, user="carol"):
    body = {"plugin": "db", "credentials": [{"username": user}, {"password": f"{user}-demo"}]}
    return app.post("/icat/session", {"json": json.dumps(body)}).json["sessionId"]


def create(app, sid, entities, **kw):
    return app.post("/icat/entityManager", {"sessionId": sid, "entities": json.dumps(entities)}, **kw)


def datafiles_named(dbengine, prefix: str) -> int:
    """As committed (the portal's requests here commit, as in production, or roll back)."""
    df = TABLES["Datafile"]
    with dbengine.connect() as conn:
        return conn.scalar(sa.select(sa.func.count()).select_from(df).where(df.c.name.like(prefix + "%")))


@pytest.fixture
def committing(app_settings, dbengine):
    """A portal whose requests commit or roll back as in production (not joined to the
    test's transaction), with some settings changed; what they create is removed after."""

    def make(**settings):
        return TestApp(main({}, dbengine=dbengine, **{**app_settings, **settings}))

    yield make
    df = TABLES["Datafile"]
    with dbengine.begin() as conn:
        conn.execute(
            df.delete().where(sa.or_(*(df.c.name.like(p + "%") for p in ("flood", "batch", "slow"))))
        )
    forget_logins(dbengine)


def forget_logins(dbengine) -> None:
    """The logins a committing portal made stay in the database: later tests count
    a user's web sessions, so they go with the test that made them."""
    with dbengine.begin() as conn:
        conn.execute(sa.delete(WebSession.__table__))
        conn.execute(sa.delete(CatalogSession.__table__))


def carols_dataset(dbengine) -> int:
    ds, inv = TABLES["Dataset"], TABLES["Investigation"]
    q = sa.select(ds.c.id).join(inv, ds.c.investigation_id == inv.c.id).where(inv.c.name == "LMF-2026-003")
    with dbengine.connect() as conn:
        return conn.scalars(q.order_by(ds.c.id)).first()


def test_a_create_of_more_entities_than_max_writes_is_refused_and_writes_nothing(committing, dbengine):
    app = committing(**{"ijp.catalog.max_writes": "5"})
    sid = icat_login(app)
    mine = carols_dataset(dbengine)
    six = [{"Datafile": {"name": f"flood{i}", "dataset": {"id": mine}}} for i in range(6)]
    err = create(app, sid, six, status=400).json
    assert err == {
        "code": "VALIDATION",
        "message": "attempt to process more than 5 entities "
        "(ijp.catalog.max_writes, the most one create may hold)",
    }
    # children given inline count too: one collection and five links are six entities
    links = [{"dataset": {"id": mine}} for _ in range(5)]
    err = create(app, sid, {"DataCollection": {"dataCollectionDatasets": links}}, status=400).json
    assert err["code"] == "VALIDATION" and "more than 5 entities" in err["message"]
    assert datafiles_named(dbengine, "flood") == 0
    # five are allowed
    assert len(create(app, sid, six[:5]).json) == 5
    assert datafiles_named(dbengine, "flood") == 5


def test_a_batched_create_still_checks_the_rules_of_every_entity(committing, dbengine):
    """The C rules are checked for all the created entities at once: one that no rule lets
    carol create (a datafile in no dataset) refuses the whole create, the others too."""
    app = committing()
    sid = icat_login(app)
    mine = carols_dataset(dbengine)
    ok = [{"Datafile": {"name": f"batch{i}", "dataset": {"id": mine}}} for i in range(300)]
    err = create(app, sid, [*ok, {"Datafile": {"name": "batch-orphan"}}], status=403).json
    assert err == {"code": "INSUFFICIENT_PRIVILEGES", "message": "db/carol may not create this Datafile"}
    assert datafiles_named(dbengine, "batch") == 0
    assert len(create(app, sid, ok).json) == 300
    assert datafiles_named(dbengine, "batch") == 300


def test_a_create_is_stopped_at_the_time_limit(committing, dbengine):
    """5,000 datafiles take far longer than 20 ms: the create is refused at the limit, having
    written nothing, and the next request is answered."""
    app = committing(**{"ijp.catalog.max_writes": "5000", "ijp.catalog.query_seconds": "0.02"})
    sid = icat_login(app)
    mine = carols_dataset(dbengine)
    many = [{"Datafile": {"name": f"slow{i}", "dataset": {"id": mine}}} for i in range(5000)]
    err = create(app, sid, many, status=400).json
    assert err == {
        "code": "VALIDATION",
        "message": "the create took longer than 0.02 s (the limit is ijp.catalog.query_seconds)",
    }
    assert datafiles_named(dbengine, "slow") == 0
    assert app.get(f"/icat/session/{sid}").json["userName"] == "db/carol"


# --- a locked database: 503 with Retry-After on every face --------------------------------


@pytest.fixture
def short_wait_app(app_settings):
    """The portal with its own engine that waits 0.2 s for a lock another holds (SQLite's
    busy timeout, PostgreSQL's lock_timeout); its requests commit."""
    engine = get_engine({**app_settings, "ijp.db.busy_seconds": "0.2"})
    yield TestApp(main({}, dbengine=engine, **app_settings))
    engine.dispose()


@pytest.fixture
def hold_lock(dbengine):
    """Another writer holding the lock (as carol's long create did): SQLite's write lock,
    or on PostgreSQL every table locked against writes (reads go on)."""
    if dbengine.dialect.name == "sqlite":
        holder = sqlite3.connect(dbengine.url.database, isolation_level=None, timeout=10)
        begin, end = lambda: holder.execute("BEGIN IMMEDIATE"), lambda: holder.execute("ROLLBACK")
    else:
        holder = dbengine.raw_connection()
        names = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)

        def begin():
            holder.cursor().execute(f"LOCK TABLE {names} IN EXCLUSIVE MODE")

        end = holder.rollback

    class Lock:
        def __enter__(self):
            begin()

        def __exit__(self, *exc):
            end()

    yield Lock()
    holder.close()


def test_a_locked_database_is_a_503_with_retry_after_in_each_faces_format(
    short_wait_app, hold_lock, dbengine
):
    app = short_wait_app
    sid, mine = icat_login(app), carols_dataset(dbengine)
    bob = token(app, "bob")
    app.login("bob")
    form = {"username": "bob", "password": "bob-demo", "csrf_token": app.get_csrf_token()}
    with hold_lock:
        icat = create(app, sid, {"Datafile": {"name": "locked", "dataset": {"id": mine}}}, status=503)
        api = app.post_json(f"{API}/submissions", {"job_type": "Date"}, headers=bob, status=503)
        jm = app.post("/ijp/rest/jm/submit", {"sessionId": sid, "jobName": "Date"}, status=503)
        ids = app.put(
            "/ids/put?" + urllib.parse.urlencode({"sessionId": sid, "datasetId": mine, "name": "locked.txt"}),
            b"data",
            content_type="application/octet-stream",
            status=503,
        )
        page = app.post("/login", form, status=503)
    message = "The database is busy with other work; nothing was changed. Try again in a moment."
    assert icat.json == {"code": "INTERNAL", "message": message}
    assert api.json == {"code": "database_busy", "message": message}
    assert jm.json == {"code": "InternalException", "message": message}
    assert ids.json == {"code": "InternalException", "message": message}
    assert page.content_type == "text/html" and message in page.text
    for res in (icat, api, jm, ids, page):
        assert res.headers["Retry-After"] == "2"
    # the lock gone, writes work again (what writes nothing lasting: a job would outlive the test)
    app.post("/login", {**form, "csrf_token": app.get_csrf_token()}, status=303)
    app.get(f"{API}/jobs", headers=bob, status=200)


# --- one user's concurrent catalog queries ------------------------------------------------


@pytest.fixture(scope="module")
def capped_server(app_settings, dbengine):
    """The portal served by waitress with 4 threads, 2 catalog queries per user, and a
    3 s time limit (the long query runs that long)."""
    settings = {**app_settings, "ijp.catalog.query_seconds": "3", "ijp.catalog.user_queries": "2"}
    with serving(main({}, dbengine=dbengine, **settings), threads=4) as url:
        yield url
    forget_logins(dbengine)


def _until(condition) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():
        assert time.monotonic() < deadline, "the state was never reached"
        time.sleep(0.01)


def test_one_users_concurrent_queries_beyond_the_cap_are_refused_while_others_are_answered(capped_server):
    def login(user):
        body = {"plugin": "db", "credentials": [{"username": user}, {"password": f"{user}-demo"}]}
        status, raw = _call(f"{capped_server}/icat/session", "POST", {"json": json.dumps(body)})
        assert status == 200
        return json.loads(raw)["sessionId"]

    carol, bob = login("carol"), login("bob")
    long_query = f"{capped_server}/icat/entityManager?" + urllib.parse.urlencode(
        {"sessionId": carol, "query": LONG}
    )
    answers = []
    attackers = [threading.Thread(target=lambda: answers.append(_call(long_query))) for _ in range(2)]
    try:
        for t in attackers:
            t.start()
        _until(lambda: SLOTS.running("db/carol") == 2)
        # a third query of carol's: refused at once, in ICAT's format
        status, raw = _call(long_query)
        assert status == 429
        assert json.loads(raw) == {
            "code": "VALIDATION",
            "message": "too many catalog queries at once for db/carol (ijp.catalog.user_queries = 2); "
            "try again when one ends",
        }
        # bob is answered meanwhile, with carol's two long queries still running
        count = urllib.parse.urlencode({"sessionId": bob, "query": "SELECT COUNT(ds) FROM Dataset ds"})
        status, raw = _call(f"{capped_server}/icat/entityManager?{count}")
        assert status == 200 and json.loads(raw)[0] > 0
        assert SLOTS.running("db/carol") == 2 and not answers
    finally:
        for t in attackers:
            t.join()
    assert [status for status, _ in answers] == [400, 400]  # each stopped at the time limit
    assert SLOTS.running("db/carol") == 0


def test_the_cap_is_per_user_on_the_api_and_the_pages(capped_server, app_settings, dbengine, tm, dbsession):
    """While carol's two long queries run, her own requests on /api/v1 and the pages that ask
    the catalog are refused with 429 and the reason; bob's are answered."""
    settings = {**app_settings, "ijp.catalog.user_queries": "2"}
    app = make_testapp(main({}, dbengine=dbengine, **settings), tm, dbsession)
    # (the server's login first: the test's own transaction then holds SQLite's write lock)
    body = {"plugin": "db", "credentials": [{"username": "carol"}, {"password": "carol-demo"}]}
    status, raw = _call(f"{capped_server}/icat/session", "POST", {"json": json.dumps(body)})
    sid = json.loads(raw)["sessionId"]
    carol_api, bob_api = token(app, "carol"), token(app, "bob")
    app.login("carol")
    long_query = f"{capped_server}/icat/entityManager?" + urllib.parse.urlencode(
        {"sessionId": sid, "query": LONG}
    )
    attackers = [threading.Thread(target=_call, args=(long_query,)) for _ in range(2)]
    try:
        for t in attackers:
            t.start()
        _until(lambda: SLOTS.running("db/carol") == 2)
        res = app.get(f"{API}/datasets", headers=carol_api, status=429)
        assert res.json["code"] == "catalog_busy" and "ijp.catalog.user_queries = 2" in res.json["message"]
        assert res.headers["Retry-After"] == "2"
        page = app.get("/datasets", status=429)
        assert "too many catalog queries at once for db/carol" in page.text
        mine = carols_dataset(dbengine)
        jm = app.post(
            "/ijp/rest/jm/submit",
            {"jobName": "Test args - single dataset or datafile", "sessionId": sid,
             "parameter": f"--datasetIds={mine}"},
            status=429,
        )  # fmt: skip
        assert jm.json["code"] == "InternalException" and "ijp.catalog.user_queries = 2" in jm.json["message"]
        assert app.get(f"{API}/datasets", headers=bob_api).json["total"] > 0
        assert SLOTS.running("db/carol") == 2
    finally:
        for t in attackers:
            t.join()
