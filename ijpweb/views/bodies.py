"""Request bodies bounded before anything reads them (ijpweb.bodies): the check every
request goes through first (views/errors.forms_are_utf8 calls it before it reads a form,
and so before the CSRF check and WebOb's form parsing), and the 413 in each face's format.

Every body but an upload's is at most ``ijp.max_form_bytes``: by its Content-Length, and a
body without one (chunked) is read to at most that and one byte. The uploads (the dataset
page's form, /api/v1's datafiles, IDS's put) are bounded by ``ijp.upload.max_bytes``
instead; views/data.py parses their forms itself (ijpweb.bodies.parse_multipart). A body
an upload route would read as a plain form (urlencoded, or no Content-Type, which WebOb
reads as one) is no upload: it has the forms' bound.
"""

from __future__ import annotations

from pyramid.response import Response
from pyramid.view import exception_view_config

from ..bodies import BodyTooLarge, read_at_most, too_large
from ..datafiles import too_large as upload_too_large

UPLOAD_ROUTES = frozenset({"data.upload", "api.dataset.datafiles"})
FORM_TYPES = ("", "application/x-www-form-urlencoded", "multipart/form-data")
_CHECKED = "ijpweb.body_checked"


def _upload(request) -> str | None:
    """Which upload the request is: "form" (its multipart form is parsed by views/data.py),
    "raw" (the body is the file, streamed), or None (no upload)."""
    route = getattr(request, "matched_route", None)
    ctype = request.content_type
    if route is None:
        return None
    if route.name in UPLOAD_ROUTES and ctype not in ("", "application/x-www-form-urlencoded"):
        return "form" if ctype == "multipart/form-data" else "raw"
    if route.name == "ids" and (request.matchdict or {}).get("method") == "put" and ctype not in FORM_TYPES:
        return "raw"
    return None


def bound_body(request) -> None:
    """Refuse (:class:`~ijpweb.bodies.BodyTooLarge`) a body larger than the request's route
    takes, having read none of it (or, without a Content-Length, at most the limit and one
    byte: what was read becomes the body). Checked once per request."""
    if request.environ.get(_CHECKED):
        return
    request.environ[_CHECKED] = True
    ijp = request.registry.settings["ijp"]
    length = request.content_length
    if _upload(request) is not None:
        # (views/data.py checks its own; IDS's put streams the body straight to the store)
        if request.matched_route.name == "ids" and length is not None and length > ijp.upload_max_bytes:
            raise BodyTooLarge(upload_too_large(ijp.upload_max_bytes).message)
        return
    limit = ijp.max_form_bytes
    if length is not None:
        if length > limit:
            raise too_large(length, limit, "ijp.max_form_bytes")
    elif request.is_body_readable:  # no length (chunked): read no more than the bound
        body = read_at_most(request.body_file_raw, limit)
        if body is None:
            raise too_large(None, limit, "ijp.max_form_bytes")
        request.body = body


@exception_view_config(BodyTooLarge, renderer="error.jinja2")
def body_too_large(exc, request):
    """413 in the face's format: the page (or JSON asking for it), /api/v1's ``too_large``
    naming ``body``, the original API's, ICAT's and IDS's JSON."""
    from .errors import BAD, _doom, face, face_error

    _doom(request)
    which = face(request)
    out = face_error(request, BAD, exc.message, field="body" if exc.field == "the request body" else exc.field,
                     reason=exc.reason, status=413)  # fmt: skip
    if isinstance(out, Response):
        out.status = 413  # (ICAT's BAD_PARAMETER is otherwise a 400: this body was never read)
        if which == "api":
            out.json_body = {**out.json_body, "code": "too_large"}
    return out
