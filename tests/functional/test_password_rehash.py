"""A password hash made with older argon2 parameters still logs its user in, on the web
form and on /api/v1, and is replaced at that login by one of today's (ijpweb.passwords);
a wrong password, carol's guess at dave's, replaces nothing. Every request here commits,
as in production."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher, extract_parameters

from ijpweb.catalog.icatdb import TABLES as T
from ijpweb.models import CatalogSession, DbCredential, WebSession
from ijpweb.passwords import hash_password

from ..conftest import TestApp

USER, PASSWORD = "dave-rehash", "dave-old-password"
OLD = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=4)  # argon2-cffi's default until issue 12


def stored(engine) -> str:
    with engine.connect() as conn:
        return conn.execute(
            sa.select(DbCredential.password_hash).where(DbCredential.username == USER)
        ).scalar_one()


@pytest.fixture
def dave(dbengine):
    with dbengine.begin() as conn:
        conn.execute(sa.insert(DbCredential).values(username=USER, password_hash=OLD.hash(PASSWORD)))
    yield
    with dbengine.begin() as conn:
        conn.execute(sa.delete(WebSession.__table__).where(WebSession.user_name == f"db/{USER}"))
        conn.execute(sa.delete(CatalogSession.__table__).where(CatalogSession.user_name == f"db/{USER}"))
        conn.execute(sa.delete(DbCredential.__table__).where(DbCredential.username == USER))
        conn.execute(sa.delete(T["User"]).where(T["User"].c.name == f"db/{USER}"))


def today() -> object:
    return extract_parameters(hash_password("x"))


def test_web_login_with_an_older_hash_succeeds_and_rehashes(app, dbengine, dave):
    before = stored(dbengine)
    carol = TestApp(app, extra_environ={"HTTP_HOST": "example.com", "REMOTE_ADDR": "10.9.0.1"})
    carol.login(USER, "carol-guess", status=400)  # the hostile second user's guess
    assert stored(dbengine) == before  # nothing replaced by a failed login

    browser = TestApp(app, extra_environ={"HTTP_HOST": "example.com", "REMOTE_ADDR": "10.9.0.2"})
    browser.login(USER, PASSWORD, status=303)
    browser.get("/jobs", status=200)
    after = stored(dbengine)
    assert after != before
    assert extract_parameters(after) == today()
    assert extract_parameters(before) != today()

    # the new hash logs in again (and stays as it is)
    again = TestApp(app, extra_environ={"HTTP_HOST": "example.com", "REMOTE_ADDR": "10.9.0.3"})
    again.login(USER, PASSWORD, status=303)
    assert stored(dbengine) == after


def test_api_login_with_an_older_hash_succeeds_and_rehashes(app, dbengine, dave):
    client = TestApp(app, extra_environ={"HTTP_HOST": "example.com", "REMOTE_ADDR": "10.9.0.4"})
    client.post_json("/api/v1/session", {"username": USER, "password": PASSWORD.upper()}, status=401)
    assert extract_parameters(stored(dbengine)).memory_cost == 65536
    token = client.post_json("/api/v1/session", {"username": USER, "password": PASSWORD}, status=201).json[
        "token"
    ]
    assert extract_parameters(stored(dbengine)) == today()
    client.get("/api/v1/session", headers={"Authorization": f"Bearer {token}"}, status=200)
