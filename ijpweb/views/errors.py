"""Errors in each face's own format.

The portal has five faces: the pages (HTML, or JSON for a client that asks for it),
``/api/v1`` (``{"code", "message", "fields"?}``), the original IJP's ``/ijp/rest/jm``
(``{"code": "ParameterException", "message"}``), and the embedded catalog's ``/icat``
(ICAT's ``{"code": "BAD_PARAMETER", "message"}``) and ``/ids`` (IDS's
``{"code": "BadRequestException", "message"}``). Whatever goes wrong, a client gets the
format of the face it called: a bad value (:class:`~ijpweb.inputs.InputError`, or a
query string that is not UTF-8) is a 4xx naming the field; an unknown method a 405; an
unexpected error a 500 saying nothing of its cause, logged with its traceback, with
any session id or token of the request blotted out.
"""

import contextlib
import logging
import traceback
from urllib.parse import urlsplit

from pyramid.csrf import BadCSRFToken
from pyramid.events import ContextFound, subscriber
from pyramid.exceptions import PredicateMismatch
from pyramid.httpexceptions import HTTPException, HTTPForbidden, HTTPSeeOther
from pyramid.interfaces import ISecurityPolicy
from pyramid.response import Response
from pyramid.view import exception_view_config, forbidden_view_config, notfound_view_config
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from transaction.interfaces import NoTransaction

from ..catalog import QueryLimitError
from ..inputs import InputError, declared_charset, is_utf8, reads_ascii, undecodable_field
from ..routes import jm_root
from . import wants_json
from .bodies import bound_body
from .console import STAFF_ROUTES

log = logging.getLogger(__name__)

# what a face calls: a bad value, nothing there, a method it does not take, our fault
# ... and the database busy for now (locked by another's write: try again shortly)
CODES = {
    "api": ("bad_parameter", "not_found", "method_not_allowed", "internal_error", "database_busy"),
    "jm": ("ParameterException", "NotFoundException", "ParameterException", "InternalException",
           "InternalException"),
    "icat": ("BAD_PARAMETER", "NO_SUCH_OBJECT_FOUND", "BAD_PARAMETER", "INTERNAL", "INTERNAL"),
    "ids": ("BadRequestException", "NotFoundException", "BadRequestException", "InternalException",
            "InternalException"),
    "pages": ("bad_parameter", "not_found", "method_not_allowed", "internal_error", "database_busy"),
}  # fmt: skip
BAD, NOT_FOUND, METHOD, INTERNAL, BUSY = range(5)
STATUS = {BAD: 400, NOT_FOUND: 404, METHOD: 405, INTERNAL: 500, BUSY: 503}
RETRY_AFTER = "2"  # seconds: a create holds the database for at most the catalog's time limit
# PostgreSQL: lock_not_available (lock_timeout), deadlock_detected, serialization_failure
LOCKED_SQLSTATES = {"55P03", "40P01", "40001"}
# (the original API's path depends on the prefix: routes.jm_root)
PREFIXES = (("api.", "/api/", "api"), ("jm.", "/ijp/rest/jm/", "jm"), ("icat.", "/icat/", "icat"))


def face(request) -> str:
    """Which face a request called: by its route, or (when no route matched, e.g. a path
    that is not UTF-8) by the path's first segments."""
    route = getattr(request, "matched_route", None)
    if route is not None:
        for prefix, _path, name in PREFIXES:
            if route.name.startswith(prefix):
                return name
        return "ids" if route.name == "ids" else "pages"
    path = request.environ.get("PATH_INFO", "")  # (inside the prefix: ijpweb.proxy)
    jm = jm_root(request.registry.settings["ijp"].prefix) + "/"
    for _prefix, start, name in (*PREFIXES, ("", "/ids/", "ids")):
        if path.startswith(jm if name == "jm" else start):
            return name
    return "pages"


def _json(status: int, body: dict, headers: dict | None = None) -> Response:
    resp = Response(json_body=body, status=status)
    resp.headers.update(headers or {})
    return resp


def face_error(request, kind: int, message: str, *, field: str | None = None, reason: str = "",
               status: int | None = None, headers: dict | None = None):  # fmt: skip
    """The response a face gives for ``kind`` of error (a Response for the JSON faces; a
    dict for the pages' template, which answers JSON to a client asking for it)."""
    which = face(request)
    code, status = CODES[which][kind], status or STATUS[kind]
    if which == "pages":
        request.response.status = status
        request.response.headers.update(headers or {})
        if wants_json(request):
            request.override_renderer = "json"
            body = {"code": code, "message": message}
            if field:
                body["fields"] = {field: reason or message}
            return body
        request.override_renderer = "error.jinja2"
        return {"status": status, "message": message}
    body = {"code": code, "message": message}
    if which == "api" and field:
        body["fields"] = {field: reason or message}
    if which == "icat" and kind == BAD:
        status = 400  # ICAT's BAD_PARAMETER is always a 400, also for a value too large
    return _json(status, body, headers)


def _error(request, status: int, code: str, message: str):
    request.response.status = status
    if wants_json(request):
        request.override_renderer = "json"
        return {"code": code, "message": message}
    return {"status": status, "message": message}


def _allowed_methods(request) -> list[str]:
    """The methods some view of the matched route takes."""
    route = request.matched_route
    known = request.registry.get("ijp.route_methods")
    if known is None:
        known = {}
        for item in request.registry.introspector.get_category("views"):
            view = item["introspectable"]
            if view["route_name"] and view["request_methods"]:
                methods = view["request_methods"]
                methods = (methods,) if isinstance(methods, str) else methods
                known.setdefault(view["route_name"], set()).update(methods)
        request.registry["ijp.route_methods"] = known
    return sorted(known.get(route.name, ()))


@notfound_view_config(renderer="error.jinja2")
def notfound(exc, request):
    if isinstance(exc, PredicateMismatch) and request.matched_route is not None:
        ident = request.identity
        if request.matched_route.name.startswith(STAFF_ROUTES) and not (ident and ident.staff):
            return forbidden(request)  # not even which methods the console takes, to anyone else
        allowed = _allowed_methods(request)
        if allowed and request.method not in allowed:
            return face_error(
                request, METHOD, f"{request.method} is not allowed here; use {', '.join(allowed)}",
                headers={"Allow": ", ".join(allowed)},
            )  # fmt: skip
    if face(request) == "pages":
        return _error(request, 404, "not_found", "There is nothing here, or it is not yours to see.")
    return face_error(request, NOT_FOUND, "There is nothing here, or it is not yours to see.")


@forbidden_view_config(renderer="error.jinja2")
def forbidden(request):
    if request.identity is None:
        login = request.route_url("auth.login", _query={"next": request.path_qs})
        if request.headers.get("HX-Request") == "true":
            # An expired login during an htmx request: send the whole browser to the
            # login page instead of swapping it into the table.
            try:
                current = urlsplit(request.headers.get("HX-Current-URL", ""))
            except ValueError:  # not a URL (a client's header): back to the start after login
                current = urlsplit("/")
            back = current.path + (f"?{current.query}" if current.query else "")
            target = request.route_url("auth.login", _query={"next": back or "/"})
            return Response(status=401, headers={"HX-Redirect": target}, body=b"")
        if wants_json(request):
            return _error(request, 401, "unauthenticated", "log in first")
        return HTTPSeeOther(location=login)
    return _error(request, 403, "forbidden", "You may not do this.")


@exception_view_config(BadCSRFToken, renderer="error.jinja2")
def bad_csrf(request):
    return _error(
        request,
        400,
        "bad_csrf_token",
        "The form was out of date or did not come from this site; nothing was changed. "
        "Go back, reload the page and try again.",
    )


@exception_view_config(InputError, renderer="error.jinja2")
def bad_input(exc, request):
    """A value that cannot be used, named, in the face's format (413 for too large)."""
    _doom(request)
    return face_error(request, BAD, exc.message, field=exc.field, reason=exc.reason, status=exc.status)


@exception_view_config(QueryLimitError, renderer="error.jinja2")
def catalog_limit(exc, request):
    """A catalog query went past a limit (its time, maxEntities): the message names it
    (400, or 503 for the time limit). /icat, /ids, /ijp/rest/jm and /api/v1 answer it
    themselves; this is the pages' and htmx fragments' answer."""
    _doom(request)
    headers = {"Retry-After": RETRY_AFTER} if exc.status in (429, 503) else None
    return face_error(request, BAD, f"The catalog refused: {exc}.", status=exc.status, headers=headers)


def database_locked(exc: OperationalError) -> bool:
    """Is this the database busy with another's write (SQLite's "database is locked" after
    its busy timeout, a PostgreSQL lock timeout or deadlock), not a fault?"""
    orig = getattr(exc, "orig", None)
    if getattr(orig, "sqlstate", None) in LOCKED_SQLSTATES:
        return True
    text = str(orig or exc)
    return "database is locked" in text or "database table is locked" in text


@exception_view_config(OperationalError, renderer="error.jinja2")
def database_busy(exc, request):
    """The database stayed locked longer than the portal waits (SQLite's busy timeout, 10
    s; PostgreSQL's lock timeout): a 503 with Retry-After in the face's format, nothing
    was changed; any other OperationalError is an unexpected error."""
    if not database_locked(exc):
        return failed(exc, request)
    _doom(request)
    log.warning("database busy on %s %s: %s", request.method, _where(request), type(exc.orig).__name__)
    return face_error(
        request, BUSY, "The database is busy with other work; nothing was changed. Try again in a moment.",
        headers={"Retry-After": RETRY_AFTER},
    )  # fmt: skip


@exception_view_config(PoolTimeout, renderer="error.jinja2")
def pool_exhausted(exc, request):
    """Every database connection of this process stayed in use for ``sqlalchemy.pool_timeout``
    seconds (more requests at once than ``sqlalchemy.pool_size`` + ``max_overflow``; see
    docs/capacity.md): a 503 with Retry-After in the face's format, nothing was changed."""
    _doom(request)
    log.warning("no free database connection for %s %s within sqlalchemy.pool_timeout", request.method,
                _where(request))  # fmt: skip
    # the page's layout asks who is logged in, which needs a connection too: shown as no one
    policy = request.registry.queryUtility(ISecurityPolicy)
    with contextlib.suppress(AttributeError):
        policy.identity_cache.set(request, None)
    return face_error(
        request, BUSY, "The portal is busy: no database connection came free in time; nothing was changed. "
        "Try again in a moment.", headers={"Retry-After": RETRY_AFTER},
    )  # fmt: skip


FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
MAX_TRANSCODED = 1 << 20  # bytes of a form in another charset that is read (a form, not an upload)


def _transcode_form(request, charset: str) -> None:
    """A urlencoded form declared in ``charset`` (not UTF-8), rewritten in UTF-8 before
    anything reads it (WebOb reads forms in UTF-8 only: request.decode is its way to read
    another), or InputError naming the charset: one that cannot carry a form (UTF-7,
    UTF-16, an unknown name), a body that is not in it, more than :data:`MAX_TRANSCODED`
    bytes, or a multipart form (whose parts say their own charsets, RFC 7578)."""
    shown = charset[:40]
    if request.content_type == "multipart/form-data":  # (and WebOb's rewriting of one garbles it)
        raise InputError("Content-Type", f"names the charset {shown!r}, which multipart/form-data does not "
                         "take (RFC 7578): send the parts in UTF-8, without a charset", 415)  # fmt: skip
    if not reads_ascii(charset):
        raise InputError("Content-Type", f"names the charset {shown!r}, which a form cannot be read in; "
                         "send it in UTF-8 (ISO-8859-1 is read too)", 415)  # fmt: skip
    length = request.content_length
    if length is not None and length > MAX_TRANSCODED:
        raise InputError("Content-Type", f"names the charset {shown!r}: a form in another charset than "
                         f"UTF-8 may have at most {MAX_TRANSCODED} bytes", 413)  # fmt: skip
    try:
        decoded = request.decode(charset)
        body = decoded.body
    except (UnicodeError, ValueError):
        raise InputError(
            "Content-Type", f"names the charset {shown!r}, but the form is not written in it"
        ) from None
    request.environ["CONTENT_TYPE"] = decoded.environ["CONTENT_TYPE"]
    request.body = body
    request.__dict__.pop("_charset", None)  # (WebOb keeps what it read of the header)


@subscriber(ContextFound)
def forms_are_utf8(event):
    """A form in another charset is read in it (ISO-8859-1, as Java clients may send) or
    refused naming the charset (_transcode_form). WebOb decodes a form body that is not
    UTF-8 with replacement characters, silently changing what was sent (an encoded
    surrogate becomes three U+FFFD): such a form is refused instead, as a query string
    is, naming the field. First of all, the body's size is checked (views/bodies.py: none
    of a body past its bound is read, here or by the CSRF check or WebOb)."""
    request = event.request
    bound_body(request)
    if request.content_type in FORMS:
        charset = declared_charset(request.headers.get("Content-Type", ""))
        if charset is not None and not is_utf8(charset):
            _transcode_form(request, charset)
    if request.content_type == "application/x-www-form-urlencoded" and request.method in ("POST", "PUT"):
        field = undecodable_field(request.body.decode("latin-1"))
        if field is not None:
            raise InputError(field, "is not UTF-8")


@exception_view_config(UnicodeDecodeError, renderer="error.jinja2")
def not_utf8(exc, request):
    """WebOb decodes parameters (and Pyramid the path) as UTF-8 when first read: a client
    sending other bytes, or an encoded surrogate, gets a 400 naming the field. (A decoding
    error of our own, with a request that is UTF-8, is an unexpected error.)"""
    env = request.environ
    field = undecodable_field(env.get("QUERY_STRING", ""))
    if field is None and "form-urlencoded" in (env.get("CONTENT_TYPE") or ""):
        try:
            field = undecodable_field(request.body.decode("latin-1"))
        except (OSError, ValueError):  # the body cannot be read again: not named here
            field = None
    if field is not None:
        _doom(request)
        return face_error(request, BAD, f"{field} is not UTF-8", field=field, reason="is not UTF-8")
    try:
        env.get("PATH_INFO", "").encode("latin-1").decode("utf-8")
    except UnicodeError:
        _doom(request)
        return face_error(request, BAD, "the request's path is not UTF-8")
    return failed(exc, request)


@exception_view_config(HTTPException, renderer="error.jinja2")
def http_error(exc, request):
    """Any other HTTP error raised (not found, forbidden and CSRF have their own views):
    as it is on the pages, in the face's format on the JSON faces."""
    if exc.status_int < 400 or face(request) == "pages":
        return exc
    _doom(request)
    kind = INTERNAL if exc.status_int >= 500 else BAD
    return face_error(request, kind, exc.explanation or exc.title, status=exc.status_int)


@exception_view_config(Exception, renderer="error.jinja2")
def failed(exc, request):
    if isinstance(exc, HTTPForbidden):
        return forbidden(request)
    if isinstance(exc, HTTPException):
        return http_error(exc, request)
    _doom(request)
    log.error(
        "unexpected error on %s %s (%s face)\n%s",
        request.method,
        _where(request),
        face(request),
        _scrub(request, "".join(traceback.format_exception(exc))),
    )
    return face_error(request, INTERNAL, "Something went wrong on our side; it has been logged.")


def _doom(request) -> None:
    tm = getattr(request, "tm", None)
    if tm is not None:
        with contextlib.suppress(NoTransaction):  # none: nothing to doom
            tm.doom()


def _where(request) -> str:
    """The route's pattern, not the path: a path may hold a session id (/icat/session/...)."""
    route = getattr(request, "matched_route", None)
    return route.pattern if route is not None else "(no route)"


def _scrub(request, text: str) -> str:
    """``text`` without any credential the request carried (session ids, tokens, cookies)."""
    secrets = []
    env = request.environ
    # parameters that cannot be read (not UTF-8, a form in a charset WebOb refuses): none
    # readable there, so none to hide. Nothing here may raise: this is the error view.
    for params in ("GET", "POST"):
        with contextlib.suppress(Exception):
            values = [
                v for key in ("sessionId", "jobSessionId") for v in getattr(request, params).getall(key)
            ]
            secrets += [v for v in values if isinstance(v, str)]  # (not a multipart form's file)
    secrets += [(getattr(request, "matchdict", None) or {}).get("sid") or ""]
    # the login's catalog session (a catalog's error may quote it); the lookup itself may be
    # what failed, and then it has nothing to hide
    with contextlib.suppress(Exception):
        secrets += [request.identity.catalog_session]
    auth = env.get("HTTP_AUTHORIZATION", "")
    secrets += [auth, auth.partition(" ")[2]]
    secrets += [part.partition("=")[2] for part in env.get("HTTP_COOKIE", "").split(";")]
    for secret in sorted({s.strip() for s in secrets if len(s.strip()) >= 8}, key=len, reverse=True):
        text = text.replace(secret, "[hidden]")
    return text
