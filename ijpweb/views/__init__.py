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


MAX_REDIRECT = 2000  # characters of a next=/back= target (far below a proxy's header limit)
_DOT = {".", "%2e"}
_DOT_DOT = {"..", ".%2e", "%2e.", "%2e%2e"}


def _without_dot_segments(path: str) -> str:
    """``path`` (absolute) as a browser resolves it: ``.`` and ``..`` segments removed
    (RFC 3986 5.2.4), also when written ``%2e`` (the URL standard reads them so)."""
    segments = path.split("/")[1:]
    kept: list[str] = []
    for i, segment in enumerate(segments):
        last, word = i == len(segments) - 1, segment.lower()
        if word in _DOT_DOT:
            if kept:
                kept.pop()
        elif word not in _DOT:
            kept.append(segment)
            continue
        if last:  # "/a/b/.." is "/a/": the directory, not the file
            kept.append("")
    return "/" + "/".join(kept)


def local_path(target: str, within: str = "") -> str | None:
    """Where a client's ``next=``/``back=`` may send the browser: ``target`` as a path of
    this site that fits a Location header, or None (the caller's default page then).

    Refused: anything but printable ASCII (controls, spaces, any other character: the
    portal's own links are percent-encoded, and a header must be Latin-1; waitress fails
    on anything else), more than :data:`MAX_REDIRECT` characters, a scheme or host, a
    path not starting with one ``/``, ``//`` or a backslash (plain or ``%5c``) or an
    encoded ``/`` (``%2f``) in the path. The ``.``/``..`` segments (also ``%2e``) are
    resolved as a browser would, and the path returned is the resolved one. With
    ``within`` (the portal's prefix, ``request.script_name``) it must be below it after
    that: never another application's page on the same host."""
    if not isinstance(target, str) or not 0 < len(target) <= MAX_REDIRECT:
        return None
    if not all("!" <= c <= "~" for c in target) or "\\" in target:
        return None
    try:
        parts = urlsplit(target)
    except ValueError:  # ("//[x": a host that is no host)
        return None
    path = parts.path
    if parts.scheme or parts.netloc or not path.startswith("/") or "//" in path:
        return None
    if "%2f" in path.lower() or "%5c" in path.lower():
        return None
    path = _without_dot_segments(path)
    if within and not (path == within or path.startswith(within + "/")):
        return None
    return (
        path + (f"?{parts.query}" if parts.query else "") + (f"#{parts.fragment}" if parts.fragment else "")
    )


def path_id(request, name: str) -> int:
    """An id in the URL; one that cannot be an id is simply not found."""
    try:
        return inputs.ident(request.matchdict[name], name)
    except inputs.InputError:
        raise HTTPNotFound() from None


def vary(request):
    request.response.vary = ("HX-Request",)
