"""Pages and htmx fragments. A page and its fragment share a route; the fragment
view answers requests with ``HX-Request: true``."""

from ..batch.harvest import submit_soon
from ..jobs import SubmitRequest
from ..jobs import submit as submit_core  # (views.jobs is a module of this package)
from ..models import Submission

HTMX = "HX-Request:true"


def wants_json(request) -> bool:
    """An API client: under /api/, or asks for JSON and not for HTML."""
    if request.path.startswith("/api/"):
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


def as_int(value, default=0):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def vary(request):
    request.response.vary = ("HX-Request",)
