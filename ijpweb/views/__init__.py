"""Pages and htmx fragments. A page and its fragment share a route; the fragment
view answers requests with ``HX-Request: true``."""

from urllib.parse import urlsplit

from pyramid.httpexceptions import HTTPNotFound

from .. import inputs
from ..jobs.submission import SubmitRequest
from ..models import Submission

HTMX = "HX-Request:true"


def wants_json(request) -> bool:
    """An API client: it called /api/v1 (by its route, whatever prefix the portal is
    mounted at), or asks for JSON and not for HTML."""
    route = getattr(request, "matched_route", None)
    if route is not None and route.name.startswith("api."):
        return True
    if route is None and request.environ.get("PATH_INFO", "").startswith("/api/"):  # (none matched)
        return True
    offers = request.accept.acceptable_offers(["text/html", "application/json"])
    return bool(offers) and offers[0][0] == "application/json"


def submit_jobs(
    request, req: SubmitRequest, user: str | None = None, session_id: str | None = None
) -> Submission:
    """Submit ``req`` through ``request.submitter`` as the logged-in user (the web form and
    /api/v1), or as ``user`` with catalog session ``session_id`` (the original API, whose
    calls carry their session); SubmitError if refused. The background submitter is woken
    once the jobs are committed."""
    if user is None:
        user, session_id = request.identity.user_name, request.identity.catalog_session
    submitter = request.submitter
    sub = submitter.submit(request.dbsession, request.catalog, user, session_id, req)
    request.tm.get().addAfterCommitHook(lambda ok: ok and submitter.wake())
    return sub


def param_int(params, name: str, default, low: int, high: int):
    """A whole-number parameter of a page or fragment: ``default`` when absent or empty;
    a bad one raises InputError (a 400 naming it, views/errors.py)."""
    raw = params.get(name)
    if raw is None or not raw.strip():
        return default
    return inputs.whole_number(raw, name, low, high)


def param_text(params, name: str, max_length: int = 200) -> str:
    """A text parameter ('' when absent): valid Unicode without NUL, at most ``max_length``."""
    return inputs.text(params.get(name, ""), name, max_length)


def local_path(target: str, within: str = "") -> str | None:
    """``target`` if it is a path on this site that can go in a Location header (no
    scheme, host or control characters), else None: a redirect never leaves the site.
    With ``within`` (the portal's prefix, ``request.script_name``) it must also be below
    it: never another application's page on the same host."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    if within and not (parts.path == within or parts.path.startswith(within + "/")):
        return None
    if any(ord(c) < 32 or ord(c) == 127 for c in target) or "\\" in target:
        return None
    return target


def path_id(request, name: str) -> int:
    """An id in the URL; one that cannot be an id is simply not found."""
    try:
        return inputs.ident(request.matchdict[name], name)
    except inputs.InputError:
        raise HTTPNotFound() from None


def vary(request):
    request.response.vary = ("HX-Request",)
