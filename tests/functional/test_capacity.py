"""Capacity settings (issue 12, point 5; docs/capacity.md): the shipped ini files' database
pools fit their waitress threads and the background work, production's processes fit
PostgreSQL's default connections, the pool settings are read as written, and a request
that finds every connection in use gets a 503 with Retry-After in its face's format."""

from __future__ import annotations

import configparser
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa

from ijpweb import main
from ijpweb.models import get_engine
from ijpweb.settings import BACKGROUND_TASKS, LOCK_CONNECTIONS, pool_problems, server_threads

from ..conftest import TestApp

ROOT = Path(__file__).resolve().parents[2]
INIS = ("production.ini", "development.ini", "testing.ini")
PG_MAX_CONNECTIONS = 100  # PostgreSQL's default
PG_RESERVED = 3 + 5  # superuser_reserved_connections, and room for ijp-admin, psql, backups


def ini(name: str) -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False)
    parser.read(ROOT / name, encoding="utf-8")
    return parser


def servers(parser) -> dict[str, int]:
    return {s: int(parser[s].get("threads", "4")) for s in parser.sections() if s.startswith("server:")}


@pytest.mark.parametrize("name", INIS)
def test_each_shipped_pool_serves_its_threads_and_the_background_work(name):
    parser = ini(name)
    app = dict(parser["app:main"])
    threads = servers(parser)
    assert threads, f"{name} has no [server:...] section"
    assert server_threads(str(ROOT / name)) == max(threads.values())
    for section, n in threads.items():
        assert pool_problems(app, n) == [], f"{name} [{section}]"
        size = int(app["sqlalchemy.pool_size"])
        assert size >= n + 2, f"{name}: a connection per request thread, the lock's and a task's"
        assert size + int(app["sqlalchemy.max_overflow"]) >= n + LOCK_CONNECTIONS + BACKGROUND_TASKS


def test_production_processes_fit_postgresqls_default_connections():
    parser = ini("production.ini")
    app = parser["app:main"]
    processes = len(servers(parser))
    assert processes >= 2  # the deploy guide's two, one per core of the machine it was sized on
    per_process = int(app["sqlalchemy.pool_size"]) + int(app["sqlalchemy.max_overflow"])
    assert processes * per_process <= PG_MAX_CONNECTIONS - PG_RESERVED
    assert app["sqlalchemy.pool_pre_ping"].strip() == "true"
    assert 0 < float(app["sqlalchemy.pool_timeout"]) <= 30
    # every process serves as many threads as the others (Apache spreads requests evenly)
    assert len(set(servers(parser).values())) == 1


def test_pool_problems_name_the_setting():
    (few,) = pool_problems({"sqlalchemy.pool_size": "5", "sqlalchemy.max_overflow": "10"}, 8)
    assert few.startswith("sqlalchemy.pool_size = 5 keeps fewer connections than the 8 request threads")
    assert "at least 10" in few
    (waits,) = pool_problems({"sqlalchemy.pool_size": "10", "sqlalchemy.max_overflow": "0"}, 8)
    assert "sqlalchemy.max_overflow" in waits and "(14)" in waits
    assert pool_problems({}, 8)  # SQLAlchemy's own 5 + 10: too few kept for 8 threads
    assert pool_problems({}, 0) == []  # not started by pserve: nothing to check against
    assert pool_problems({"sqlalchemy.pool_size": "ten"}, 8) == [
        "sqlalchemy.pool_size and sqlalchemy.max_overflow must be whole numbers"
    ]


def test_pool_pre_ping_is_read_as_written(db_url):
    for text, expected in (("true", True), ("false", False), ("0", False), ("yes", True)):
        engine = get_engine({"sqlalchemy.url": db_url, "sqlalchemy.pool_pre_ping": text})
        try:
            assert engine.pool._pre_ping is expected, text
        finally:
            engine.dispose()
    engine = get_engine(
        {"sqlalchemy.url": db_url, "sqlalchemy.pool_size": "10", "sqlalchemy.max_overflow": "3"}
    )
    try:
        assert (engine.pool.size(), engine.pool._max_overflow) == (10, 3)
    finally:
        engine.dispose()


def test_the_portal_warns_at_start_when_its_pool_is_too_small(app_settings, dbengine, tmp_path, caplog):
    cfg = tmp_path / "small.ini"
    cfg.write_text("[server:main]\nuse = egg:waitress#main\nthreads = 12\n")
    settings = {**app_settings, "sqlalchemy.pool_size": "10"}
    main({"__file__": str(cfg)}, dbengine=dbengine, **settings)
    assert any("sqlalchemy.pool_size = 10 keeps fewer connections than the 12 request threads" in r.getMessage()
               for r in caplog.records)  # fmt: skip


@pytest.fixture
def one_connection(app_settings, dbengine):
    """A portal whose pool has one connection and waits a second for it."""
    settings = {**app_settings, "sqlalchemy.pool_size": "1", "sqlalchemy.max_overflow": "0",
                "sqlalchemy.pool_timeout": "1"}  # fmt: skip
    engine = get_engine(settings)
    yield main({}, dbengine=engine, **settings), engine
    engine.dispose()


def test_every_connection_in_use_is_a_503_with_retry_after(one_connection):
    portal, engine = one_connection
    browser = TestApp(portal, extra_environ={"HTTP_HOST": "example.com", "REMOTE_ADDR": "10.8.0.1"})
    browser.login("alice")
    token = browser.post_json(
        "/api/v1/session", {"username": "bob", "password": "bob-demo"}, status=201
    ).json["token"]
    browser.get("/jobs", status=200)
    held = threading.Event()
    release = threading.Event()

    def hold():
        with engine.connect() as conn:  # another request's, still working
            conn.execute(sa.text("SELECT 1"))
            held.set()
            release.wait(30)

    worker = threading.Thread(target=hold)
    worker.start()
    try:
        assert held.wait(10)
        res = browser.get("/api/v1/jobs", headers={"Authorization": f"Bearer {token}"}, status=503)
        assert res.headers["Retry-After"] == "2"
        assert res.json["code"] == "database_busy"
        assert "no database connection came free in time" in res.json["message"]
        page = browser.get("/jobs", status=503)
        assert page.headers["Retry-After"] == "2"
        assert "The portal is busy" in page.text
        assert "bob" not in page.text and token not in page.text
        jm = browser.get("/ijp/rest/jm/status", {"sessionId": "not-a-session"}, status=503)
        assert jm.json["code"] == "InternalException"
    finally:
        release.set()
        worker.join()
    # and with the connection back, the same requests are answered
    browser.get("/jobs", status=200)
    browser.get("/api/v1/jobs", headers={"Authorization": f"Bearer {token}"}, status=200)
