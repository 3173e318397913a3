"""Login throttling, as the hostile second user meets it: guessing bob's password slows
down, then locks bob's user name for a while, on every login face; guessing many names
from one address locks the address; alice is not affected; the counts are in the
database, so two portal processes count together.

Every request here commits, as in production (no shared test transaction): failed logins
are counted in a transaction of their own once the request's has ended."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from ijpweb import main
from ijpweb.models import CatalogSession, LoginFailure, WebSession, as_utc

from ..conftest import TestApp

API = "/api/v1"
USERS = ("db/alice", "db/bob", "db/carol")


@pytest.fixture(scope="module")
def portal(app_settings, dbengine):
    """A portal that also counts failures per client address (testing.ini does not)."""
    return main({}, dbengine=dbengine, **{**app_settings, "ijp.login.max_address_failures": "8"})


@pytest.fixture
def client(portal, dbengine):
    """A browser at a client address of its own; committed logins are removed afterwards."""

    def make(addr: str, app=None) -> TestApp:
        return TestApp(app or portal, extra_environ={"HTTP_HOST": "example.com", "REMOTE_ADDR": addr})

    yield make
    with dbengine.begin() as conn:
        conn.execute(sa.delete(WebSession.__table__).where(WebSession.user_name.in_(USERS)))
        conn.execute(sa.delete(CatalogSession.__table__).where(CatalogSession.user_name.in_(USERS)))


def web_login(app: TestApp, user: str, password: str, status: int):
    return app.login(user, password, status=status)


def later(engine, seconds: float) -> None:
    """As if ``seconds`` had passed since the failures on record."""
    with engine.begin() as conn:
        t = LoginFailure.__table__
        for row in conn.execute(sa.select(t)).all():
            back = timedelta(seconds=seconds)
            values = {"first_at": as_utc(row.first_at) - back, "last_at": as_utc(row.last_at) - back}
            if row.locked_until is not None:
                values["locked_until"] = as_utc(row.locked_until) - back
            conn.execute(sa.update(t).where(t.c.key == row.key).values(**values))


def failures(engine, key: str) -> int | None:
    with engine.connect() as conn:
        t = LoginFailure.__table__
        return conn.execute(sa.select(t.c.failures).where(t.c.key == key)).scalar()


def test_guessing_a_password_slows_down_then_locks_the_user_name(client, dbengine):
    carol = client("10.1.0.1")
    for _ in range(3):
        assert "not correct" in web_login(carol, "bob", "guess", 400).text
    # three failures: the next attempt must wait, even with the right password
    res = web_login(carol, "bob", "bob-demo", 429)
    assert "too many failed logins for this user name: wait 2 seconds" in res.text
    assert res.headers["Retry-After"] in ("1", "2")
    later(dbengine, 2)
    assert "not correct" in web_login(carol, "bob", "guess", 400).text
    assert "wait 4 seconds" in web_login(carol, "bob", "guess", 429).text
    later(dbengine, 4)
    web_login(carol, "bob", "guess", 400)  # the fifth: locked
    res = web_login(carol, "bob", "bob-demo", 429)
    assert "logins are locked until" in res.text and "try again in 15 minutes" in res.text
    assert 14 * 60 < int(res.headers["Retry-After"]) <= 15 * 60
    # from anywhere else too: it is bob's user name that is locked
    web_login(client("10.1.0.2"), "bob", "bob-demo", 429)
    # alice is not affected (at carol's address she would wait too: it has failed 5 times)
    web_login(client("10.1.0.4"), "alice", "alice-demo", 303)
    # the lock ends: bob logs in, and his count is gone
    later(dbengine, 15 * 60)
    assert failures(dbengine, "user:db/bob") == 5
    bob = client("10.1.0.3")
    web_login(bob, "bob", "bob-demo", 303)
    assert failures(dbengine, "user:db/bob") is None
    bob.get("/jobs", status=200)


def test_every_login_face_is_throttled(client, dbengine):
    carol = client("10.3.0.1")
    bad = {"username": "bob", "password": "guess"}
    for _ in range(3):
        assert carol.post_json(API + "/session", bad, status=401).json["code"] == "unauthenticated"
    # the API says so in its own format
    err = carol.post_json(API + "/session", {**bad, "password": "bob-demo"}, status=429).json
    assert err["code"] == "too_many_failed_logins" and "wait 2 seconds" in err["message"]
    # so does ICAT's login, as ICAT says a login is refused
    creds = {"plugin": "db", "credentials": [{"username": "bob"}, {"password": "bob-demo"}]}
    err = carol.post("/icat/session", {"json": json.dumps(creds)}, status=403).json
    assert err["code"] == "SESSION" and "too many failed logins" in err["message"]
    # and the web form; a failure through ICAT's login counts like any other
    web_login(carol, "bob", "bob-demo", 429)
    later(dbengine, 2)
    creds["credentials"][1]["password"] = "guess"
    carol.post("/icat/session", {"json": json.dumps(creds)}, status=403)
    assert failures(dbengine, "user:db/bob") == 4


def test_guessing_many_names_from_one_address_locks_the_address(client, dbengine):
    carol = client("10.4.0.1")
    for i in range(8):
        # a forwarded-for header of her choosing changes nothing: the connection's address counts
        carol.post_json(API + "/session", {"username": f"user{i}", "password": "guess"},
                        headers={"X-Forwarded-For": f"192.0.2.{i}"}, expect_errors=True)  # fmt: skip
        later(dbengine, 60)  # past any slow-down: the count goes on
    err = carol.post_json(API + "/session", {"username": "carol", "password": "carol-demo"}, status=429).json
    assert "too many failed logins for your address" in err["message"] and "locked" in err["message"]
    # carol's own user name has no failures: from elsewhere she logs in
    client("10.4.0.2").post_json(
        API + "/session", {"username": "carol", "password": "carol-demo"}, status=201
    )


def test_a_success_clears_the_user_names_count(client, dbengine):
    bob = client("10.5.0.1")
    for _ in range(2):
        web_login(bob, "bob", "typo", 400)
    assert failures(dbengine, "user:db/bob") == 2
    web_login(bob, "bob", "bob-demo", 303)
    assert failures(dbengine, "user:db/bob") is None


def test_portal_processes_sharing_the_database_count_together(client, dbengine, app):
    """Two portals (the suite's and this module's) on one database: what one counted, the
    other refuses. Nothing is kept in memory."""
    for _ in range(3):
        web_login(client("10.6.0.1"), "carol", "guess", 400)
    web_login(client("10.6.0.2", app), "carol", "carol-demo", 429)
