"""Pages and htmx fragments. A page and its fragment share a route; the fragment
view answers requests with ``HX-Request: true``."""

from urllib.parse import urlsplit

from pyramid.httpexceptions import HTTPNotFound

from .. import inputs
from ..batch.harvest import submit_soon
from ..jobs import SubmitRequest
from ..jobs import submit as submit_core  # (views.jobs is a module of this package)
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


def submit_after_commit(request) -> None:
    """Wake the background submitter once this request's jobs are committed."""
    request.tm.get().addAfterCommitHook(lambda ok: ok and submit_soon(request.registry))


def submit_jobs(request, req: SubmitRequest) -> Submission:
    """Submit ``req`` as the logged-in user (the web form and /api/v1); SubmitError if refused."""
    ident = request.identity
    sub = submit_core(
        request.dbsession, request.backends, request.catalog, request.datasettypes, request.jobtypes,
        request.registry["ijp.families"], request.ijp, ident.user_name, ident.catalog_session, req,
    )  # fmt: skip
    submit_after_commit(request)
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


def local_path(target: str) -> str | None:
    """``target`` if it is a path on this site that can go in a Location header (no
    scheme, host or control characters), else None: a redirect never leaves the site."""
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
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
