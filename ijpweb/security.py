"""One security policy (the wiki2 shape), CSRF on every state change, per-user jobs.

The login cookie is a signed ticket holding only a random WebSession id; the catalog
session id (a credential) stays in the database.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

import sqlalchemy as sa
from pyramid.authentication import AuthTktCookieHelper
from pyramid.authorization import ACLHelper, Allow, Authenticated, Everyone
from pyramid.csrf import CookieCSRFStoragePolicy
from pyramid.events import ContextFound, NewResponse
from pyramid.httpexceptions import HTTPNotFound
from pyramid.request import RequestLocalCache
from pyramid.security import remember
from pyramid.util import SimpleSerializer
from webob.cookies import CookieProfile

from . import inputs, throttle
from .catalog import AuthenticationError, CatalogError, CatalogLogin
from .jobs.actions import owned_job
from .jobs.sessions import end_login, forget_login_tokens
from .models import Job, WebSession, as_utc, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Identity:
    web_session: str
    user_name: str
    catalog_session: str
    staff: bool


def cookie_profile(request, name: str, max_age=None) -> CookieProfile:
    """How the portal's cookies are set for ``request``: scoped to the portal's path (its
    public prefix, ``request.script_name``; ``/`` at the root) and to this host only,
    ``HttpOnly`` (no script reads them: htmx gets the CSRF token from the page),
    ``SameSite=Lax``, and ``Secure`` when the request came over https (directly, or
    from a trusted proxy that says so: ijpweb.proxy)."""
    return CookieProfile(
        cookie_name=name,
        secure=request.scheme == "https",
        max_age=max_age,
        httponly=True,
        path=request.script_name or "/",
        samesite="Lax",
        serializer=SimpleSerializer(),
    )(request)


class LoginCookie(AuthTktCookieHelper):
    """The signed login ticket, set as :func:`cookie_profile` says for each request."""

    def __init__(self, secret: str):
        super().__init__(secret, cookie_name="ijp_auth", hashalg="sha512", http_only=True, wild_domain=False)

    def _get_cookies(self, request, value, max_age=None):
        kw = {"domains": [None]} | ({"max_age": max_age} if max_age is not None else {})
        return cookie_profile(request, self.cookie_name, self.max_age).get_headers(value, **kw)


class CSRFCookie(CookieCSRFStoragePolicy):
    """The CSRF token's cookie (double submit), set as :func:`cookie_profile` says."""

    def new_csrf_token(self, request):
        token = self._token_factory()
        request.cookies[self.cookie_name] = token
        request.add_response_callback(
            lambda request, response: cookie_profile(request, self.cookie_name).set_cookies(response, token)
        )
        return token


class SecurityPolicy:
    def __init__(self, secret: str, staff: frozenset[str]):
        self.helper = LoginCookie(secret)
        self.staff = staff
        self.identity_cache = RequestLocalCache(self._load_identity)
        self.acl = ACLHelper()

    def _load_identity(self, request) -> Identity | None:
        token = bearer_token(request)
        if token is not None:  # an API client
            ws = request.dbsession.get(WebSession, token_key(token))
            if ws is not None and ws.kind != "api":
                ws = None
        else:
            ticket = self.helper.identify(request)
            if ticket is None:
                return None
            ws = request.dbsession.get(WebSession, ticket["userid"])
            if ws is not None and ws.kind != "web":
                ws = None
        if ws is None or as_utc(ws.expires_at) < utcnow():
            return None
        return Identity(ws.id, ws.user_name, ws.catalog_session, ws.user_name in self.staff)

    def identity(self, request) -> Identity | None:
        return self.identity_cache.get_or_create(request)

    def authenticated_userid(self, request) -> str | None:
        ident = self.identity(request)
        return ident.user_name if ident else None

    def permits(self, request, context, permission):
        principals = [Everyone]
        ident = self.identity(request)
        if ident is not None:
            principals += [Authenticated, f"u:{ident.user_name}"]
            if ident.staff:
                principals.append("role:staff")
        return self.acl.permits(context, principals, permission)

    def remember(self, request, userid, **kw):
        return self.helper.remember(request, userid, **kw)

    def forget(self, request, **kw):
        self.identity_cache.clear(request)
        return self.helper.forget(request, **kw)


def bearer_token(request) -> str | None:
    auth = request.authorization
    if auth is not None and auth.authtype.lower() == "bearer" and isinstance(auth.params, str):
        return auth.params.strip()
    return None


def token_key(token: str) -> str:
    """What is stored for an API token: its SHA-256, never the token."""
    return hashlib.sha256(token.encode()).hexdigest()


class TooManyTokens(Exception):
    """A user already holds ``live`` API tokens, the cap (``ijp.api.max_tokens``); the
    first of them ends at ``first_end``."""

    def __init__(self, user_name: str, live: int, first_end):
        super().__init__(
            f"{user_name} already has {live} live API tokens, the most one user may hold: end the "
            "ones no longer used (DELETE /api/v1/session with each, or ijp logout), or wait until "
            "one expires (see Retry-After)"
        )
        self.live, self.first_end = live, first_end


def start_api_session(request, user_name: str, catalog_session: str, expires_at) -> str:
    """Record an API login; return its bearer token (shown once, stored only hashed).
    TooManyTokens when the user holds ``ijp.api.max_tokens`` live ones already (each is
    a catalog session kept alive and a row; a script that never logs out would pile them
    up): refused rather than ending the oldest, which another script may still be using.
    (Counted at each login: logins at the same moment may pass it by a few.)"""
    cap = request.registry.settings["ijp"].api_max_tokens
    if cap:
        live, first_end = request.dbsession.execute(
            sa.select(sa.func.count(), sa.func.min(WebSession.expires_at)).where(
                WebSession.user_name == user_name, WebSession.kind == "api", WebSession.expires_at > utcnow()
            )
        ).one()
        if live >= cap:
            raise TooManyTokens(user_name, live, as_utc(first_end))
    token = secrets.token_urlsafe(32)
    request.dbsession.add(
        WebSession(
            id=token_key(token),
            user_name=user_name,
            catalog_session=catalog_session,
            expires_at=expires_at,
            selection={},
            kind="api",
        )
    )
    request.dbsession.flush()
    return token


def login_policy(settings) -> throttle.Policy:
    return throttle.Policy(
        max_failures=settings.login_max_failures,
        max_address_failures=settings.login_max_address_failures,
        window=timedelta(minutes=settings.login_window_minutes),
        lock=timedelta(minutes=settings.login_lock_minutes),
    )


def catalog_login(request, authenticator: str, credentials: Mapping[str, str]) -> CatalogLogin:
    """The catalog's login, as every login face calls it (the web form, /api/v1,
    /icat/session): throttled per user name and client address (ijpweb.throttle). Raises
    :class:`~ijpweb.throttle.LoginThrottled`, an AuthenticationError, without trying when
    too many have failed. The client address is the connection's (REMOTE_ADDR, which a
    trusted proxy's server sets), never a header the client chose."""
    policy = login_policy(request.registry.settings["ijp"])
    username = credentials.get("username", "")
    counters = throttle.keys(policy, authenticator, username, request.remote_addr)
    on_record = throttle.check(request.dbsession, policy, counters)
    try:
        result = request.catalog.login(authenticator, dict(credentials))
    except AuthenticationError:
        engine = request.registry["dbengine"]
        _after_transaction(request, lambda: throttle.record_failure(engine, policy, counters))
        raise
    if on_record:
        throttle.clear(request.dbsession, authenticator, username)
    return result


def _after_transaction(request, work) -> None:
    """Run ``work`` once the request's transaction has ended, committed or not."""
    done: list[bool] = []

    def run(*_status) -> None:
        if done:
            return
        done.append(True)
        try:
            work()
        except Exception:
            log.exception("a failed login could not be counted")

    txn = request.tm.get()
    txn.addAfterCommitHook(run)
    txn.addAfterAbortHook(run)


def end_session(request) -> None:
    """Log out this login (web cookie or API token): forgotten at once. Its catalog
    session is logged out now, or, while jobs use it, once the last of them has ended
    (:func:`ijpweb.jobs.sessions.end_login`): logging out does not kill the jobs."""
    ident = request.identity
    if ident is None:
        return
    forget_login_tokens(request.dbsession, ident.web_session)  # its desktop tokens (issue 14)
    ws = request.dbsession.get(WebSession, ident.web_session)
    if ws is not None:
        request.dbsession.delete(ws)
        request.dbsession.flush()
    try:
        end_login(request.dbsession, request.catalog, ident.catalog_session)
    except CatalogError as e:  # the login is gone all the same (the session id is a credential: not logged)
        log.warning("a catalog session could not be logged out: %s", type(e).__name__)


def _csrf_applies(request) -> bool:
    """CSRF protects the cookie; a request that authenticates with a bearer token carries
    no ambient credential, so it needs no CSRF token."""
    return bearer_token(request) is None


def start_web_session(request, user_name: str, catalog_session: str, expires_at) -> list:
    """Record a login and return the headers that set the cookie."""
    ws = WebSession(
        id=secrets.token_urlsafe(32),
        user_name=user_name,
        catalog_session=catalog_session,
        expires_at=expires_at,
        selection={},
    )
    request.dbsession.add(ws)
    request.dbsession.flush()
    return remember(request, ws.id)


class Permission(StrEnum):
    """What a view asks of the one who calls it (``view_config(permission=...)``), as the
    ACLs below grant it."""

    USE = "use"  # the portal: any logged-in user; a job: its owner
    STAFF = "staff"  # facility staff (ijp.staff)


class RootResource:
    __acl__ = [(Allow, Authenticated, Permission.USE), (Allow, "role:staff", Permission.STAFF)]

    def __init__(self, request):
        self.request = request


class JobResource:
    def __init__(self, job: Job):
        self.job = job

    @property
    def __acl__(self):
        return [(Allow, f"u:{self.job.owner}", Permission.USE)]


class AnonymousJobResource:
    __acl__: list = []


def job_factory(request):
    """Load the job in the URL by the one ownership rule (ijpweb.jobs.actions.owned_job):
    another user's job, or none, is simply not found."""
    ident = request.identity
    if ident is None:
        return AnonymousJobResource()  # -> forbidden -> the login page
    try:
        job_id = inputs.job_id(request.matchdict["job_id"], "job_id")
    except inputs.InputError:  # not an id at all (or one no job column holds): no such job
        raise HTTPNotFound() from None
    job = owned_job(request.dbsession, ident.user_name, job_id)
    if job is None:
        raise HTTPNotFound()
    return JobResource(job)


def not_stored(event) -> None:
    """``Cache-Control: no-store`` on every answer of the portal that does not say its own
    (the static files do: they are cached for an hour). Pages, fragments and JSON are a
    user's (jobs, outputs, the console's logins and audit) or carry a CSRF token: after
    logging out on a shared machine, Back and the disk cache must not show them, and no
    cache between the browser and the proxy may keep them. (HTTP/1.0's ``Pragma`` is not
    needed: every client and proxy of today reads Cache-Control.)"""
    headers = event.response.headers
    if "Cache-Control" not in headers:
        headers["Cache-Control"] = "no-store"


def identify_early(event) -> None:
    """Look the login up before the view runs (pyramid_tm did, outside the error views: see
    models.includeme), so that an error page after a failed write, whose session can read
    no more, still knows who is logged in; and so that a database that cannot be reached
    then is answered by the error views (a 503), not by waitress."""
    event.request.identity  # noqa: B018 - cached for the request (SecurityPolicy.identity_cache)


def includeme(config):
    s = config.registry.settings["ijp"]
    config.add_subscriber(not_stored, NewResponse)
    config.add_subscriber(identify_early, ContextFound)
    config.set_security_policy(SecurityPolicy(s.auth_secret, s.staff))
    config.set_csrf_storage_policy(CSRFCookie())
    config.set_default_csrf_options(require_csrf=True, callback=_csrf_applies)
    config.set_root_factory(RootResource)
