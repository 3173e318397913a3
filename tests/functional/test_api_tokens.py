"""A cap on the live API tokens of one user (``ijp.api.max_tokens``, 50 by default): each
token is a catalog session kept alive and a row, and carol could make them without end
(100 in 31 s, notes/i11/X-findings.md). A login past the cap is refused with 429 in
/api/v1's error shape, saying how to end old tokens, and makes no catalog session;
expired tokens and web logins do not count, nor do other users' tokens."""

from __future__ import annotations

import secrets
from datetime import UTC, timedelta

import pytest
import sqlalchemy as sa

from ijpweb.models import CatalogSession, WebSession, utcnow
from ijpweb.settings import parse

API = "/api/v1"
CAP = 50


def add_logins(dbsession, user: str, count: int, *, kind: str = "api", hours: float = 12.0) -> None:
    """``count`` logins of ``user`` made earlier, ending in ``hours`` (each a second later)."""
    now = utcnow()
    for i in range(count):
        dbsession.add(WebSession(id=secrets.token_hex(32), user_name=user, catalog_session=secrets.token_hex(16),
                                 expires_at=now + timedelta(hours=hours, seconds=i), selection={}, kind=kind))  # fmt: skip
    dbsession.flush()


def login(testapp, user: str, status: int = 201):
    return testapp.post_json(API + "/session", {"username": user, "password": f"{user}-demo"}, status=status)


def catalog_sessions(dbsession, user: str) -> int:
    return dbsession.scalar(sa.select(sa.func.count()).where(CatalogSession.user_name == user))


def test_the_default_cap_is_fifty_and_zero_turns_it_off():
    base = {"auth.secret": "x" * 40}
    assert parse(base).api_max_tokens == CAP
    assert parse({**base, "ijp.api.max_tokens": "0"}).api_max_tokens == 0
    with pytest.raises(ValueError, match="ijp.api.max_tokens"):
        parse({**base, "ijp.api.max_tokens": "-1"})


def test_a_login_past_the_cap_is_refused_saying_how_to_end_tokens(testapp, dbsession):
    add_logins(dbsession, "db/carol", CAP - 1)
    add_logins(dbsession, "db/carol", 30, hours=-1)  # expired: not counted
    add_logins(dbsession, "db/carol", 30, kind="web")  # browser logins: not counted
    add_logins(dbsession, "db/bob", CAP)  # another user's: not counted
    last = login(testapp, "carol").json["token"]  # the 50th
    before = catalog_sessions(dbsession, "db/carol")
    refused = login(testapp, "carol", status=429)
    assert refused.json["code"] == "too_many_tokens"
    assert (
        "DELETE /api/v1/session" in refused.json["message"]
        and "50 live API tokens" in refused.json["message"]
    )
    # when the first of them ends a login works again by itself (here: the one just made)
    first_end = dbsession.scalar(sa.select(sa.func.min(WebSession.expires_at)).where(
        WebSession.user_name == "db/carol", WebSession.kind == "api", WebSession.expires_at > utcnow()))  # fmt: skip
    wait = (first_end.replace(tzinfo=first_end.tzinfo or UTC) - utcnow()).total_seconds()
    assert wait - 60 < int(refused.headers["Retry-After"]) <= wait + 1
    assert catalog_sessions(dbsession, "db/carol") == before  # the refused login's was logged out
    live = sa.select(sa.func.count()).where(WebSession.user_name == "db/carol", WebSession.kind == "api",
                                            WebSession.expires_at > utcnow())  # fmt: skip
    assert dbsession.scalar(live) == CAP
    # the browser login is not capped; bob (with 50 of his own) is refused, alice is not
    testapp.login("carol")
    login(testapp, "bob", status=429)
    login(testapp, "alice")
    # ending one token makes room for one
    testapp.delete(API + "/session", headers={"Authorization": f"Bearer {last}"}, status=204)
    login(testapp, "carol")
    login(testapp, "carol", status=429)


def test_with_the_cap_off_tokens_are_not_counted(testapp, dbsession, monkeypatch):
    settings = testapp.app.registry.settings
    monkeypatch.setitem(settings, "ijp", parse({**settings, "ijp.api.max_tokens": "0"}))
    add_logins(dbsession, "db/carol", CAP + 5)
    login(testapp, "carol")
