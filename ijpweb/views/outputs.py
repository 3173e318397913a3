"""A job's output files: listed on its page, previewed (a fragment, or a page without
JavaScript), downloaded one by one or all as a zip, images served after their magic
bytes are checked; the same in /api/v1. Files are streamed, never read whole; names are
resolved by ijpweb.outputs (no link followed, no way out of the output directory).

Every answer that carries a job's bytes says what it is (an attachment, or an image
whose type its bytes prove) with ``nosniff`` and a CSP that runs nothing: a job's
``<script>.html`` or SVG with a script is never a page of the portal's origin."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile

from pyramid.httpexceptions import HTTPNotFound, HTTPSeeOther
from pyramid.response import FileIter, Response
from pyramid.view import view_config

from .. import outputs, previews
from ..batch import STREAMS, BatchError
from ..inputs import InputError
from ..jobs.actions import read_output
from ..security import Permission
from . import HTMX, vary
from .api import ApiError
from .jobs import PLAIN_CSP, decode_chunk

BLOCK = 256 * 1024  # of a file sent
SHOWN = 64 * 1024  # of stdout and stderr put in the job's page (the rest follows, or a link)
IMAGE_TYPES = ("image/png", "image/jpeg", "image/gif")


class Unavailable(Exception):
    """The job's backend keeps no outputs, or cannot be read now (message fit to show)."""


def _backend(request, job):
    """The job's backend, if it offers output files; None while the job has none yet."""
    backend = request.backends.get(job.backend)
    if backend is None or not job.backend_job_id:
        return None
    try:
        offers = getattr(backend, "outputs", False)
    except BatchError as e:
        raise Unavailable(f"the batch system {job.backend} does not answer now: {e}") from None
    if not offers:  # (for good: a 404 for a file; the page and listing say why)
        raise outputs.NoOutput(
            f"the batch system {job.backend} does not offer output files (an original IJP batch server): "
            "only the job's output and errors below"
        )
    return backend


def listing(request, job, limit: int = outputs.MAX_LISTED) -> outputs.Listing:
    """The job's output files (bounded); Unavailable when they cannot be listed."""
    try:
        backend = _backend(request, job)
        if backend is None:
            return outputs.Listing((), 0, 0)
        return backend.output_files(job.backend_job_id, limit)
    except outputs.OutputError as e:
        raise Unavailable(str(e)) from None
    except (BatchError, OSError) as e:
        raise Unavailable(f"the output files cannot be listed now: {e}") from None


def _open(request, job, name: str):
    """The output file ``name`` opened (OutputError/BadName; Unavailable)."""
    outputs.check_name(name)
    backend = _backend(request, job)
    if backend is None:
        raise outputs.OutputError("the job has no output files yet")
    try:
        return backend.open_output(job.backend_job_id, name)
    except (BatchError, OSError) as e:
        raise Unavailable(f"the output file cannot be read now: {e}") from None


def _size(fh) -> int | None:
    try:
        return os.fstat(fh.fileno()).st_size
    except (OSError, io.UnsupportedOperation, AttributeError):
        return None


def _name(request) -> str:
    """The ``name`` parameter as given (checked by ijpweb.outputs, not here: a bad one is
    its BadName, a 400 naming the field)."""
    return request.GET.get("name", "")


def _safe_headers(resp: Response, disposition: str) -> Response:
    resp.headers.update(
        {
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": PLAIN_CSP,
            "Content-Disposition": disposition,
            # a job's bytes (downloads, zips, preview images): never kept by any cache, so
            # nothing of a user's is usable from a shared browser's cache after logout
            "Cache-Control": "private, no-store",
        }
    )
    return resp


def file_response(fh, name: str) -> Response:
    """The file as an attachment, streamed (its size, where known, as Content-Length)."""
    size = _size(fh)
    resp = Response(app_iter=FileIter(fh, BLOCK), content_type="application/octet-stream")
    if size is not None:
        resp.content_length = size
    return _safe_headers(resp, outputs.content_disposition(name))


def zip_response(request, job, filename: str) -> Response:
    from ..catalog.ids import zip_stream

    backend = _backend(request, job)
    entries = backend.output_zip_entries(job.backend_job_id) if backend is not None else iter(())
    resp = Response(app_iter=zip_stream(entries), content_type="application/zip")
    return _safe_headers(resp, outputs.content_disposition(filename))


@contextlib.contextmanager
def _seekable(request, job, name: str):
    """The output file opened where Pillow can seek in it: itself, or (a remote file) a
    bounded spool of it. A file over previews.MAX_IMAGE_BYTES is a PreviewError."""
    fh = _open(request, job, name)
    with fh, tempfile.SpooledTemporaryFile(8 << 20) as spool:
        size = _size(fh)
        if size is not None:
            if size > previews.MAX_IMAGE_BYTES:
                raise previews.PreviewError(
                    f"an image of more than {previews.MAX_IMAGE_BYTES >> 20} MB is not previewed"
                )
            yield fh
            return
        copied = 0
        while chunk := fh.read(BLOCK):
            copied += len(chunk)
            if copied > previews.MAX_IMAGE_BYTES:
                raise previews.PreviewError(
                    f"an image of more than {previews.MAX_IMAGE_BYTES >> 20} MB is not previewed"
                )
            spool.write(chunk)
        spool.seek(0)
        yield spool


def image_response(request, job, name: str) -> Response:
    """The image ``name``: PNG, JPEG and GIF as they are (their magic bytes checked,
    the type from them, never from the name), TIFF converted to PNG (bounded)."""
    with _open(request, job, name) as fh:
        kind = previews.image_type(fh.read(16))
    if kind in IMAGE_TYPES:
        fh = _open(request, job, name)  # from the start (a remote file cannot seek back)
        resp = Response(app_iter=FileIter(fh, BLOCK), content_type=kind)
        if (size := _size(fh)) is not None:
            resp.content_length = size
        return _safe_headers(resp, outputs.content_disposition(name, attachment=False))
    if kind != "image/tiff":
        raise outputs.OutputError("not an image that can be shown (PNG, JPEG, GIF or TIFF)")
    with _seekable(request, job, name) as src:
        png = previews.image_to_png(src)
    resp = Response(body=png, content_type="image/png")
    return _safe_headers(resp, outputs.content_disposition(name.rsplit(".", 1)[0] + ".png", attachment=False))


def make_preview(request, job, name: str) -> previews.Preview:
    fh = _open(request, job, name)
    size = _size(fh)
    head = outputs.read_head(fh, previews.PREVIEW_BYTES + 1)
    return previews.preview(name, head, size)


def stream_start(request, job) -> dict:
    """The first SHOWN bytes of stdout and stderr, for the job's page as plain text (with
    JavaScript, the rest follows from where this ends)."""
    shown = {}
    for stream in STREAMS:
        try:
            data = read_output(request.backends, job, stream, 0, SHOWN + 1)
            error = None
        except BatchError as e:
            data, error = b"", str(e)
        more = len(data) > SHOWN
        text, used = decode_chunk(data[:SHOWN], final=not more and not job.live)
        shown[stream] = {"text": text, "next_offset": used, "more": more, "error": error}
    return shown


def page_context(request, job, streams: bool = True) -> dict:
    """What the job's page shows of its outputs: files (or why none), variables, and
    the start of stdout and stderr."""
    try:
        found, unavailable = listing(request, job), None
    except Unavailable as e:
        found, unavailable = outputs.Listing((), 0, 0), str(e)
    return {
        "files": found,
        "files_unavailable": unavailable,
        "output_vars": outputs.OutputVars.from_json(job.output_vars),
        "streams_start": stream_start(request, job) if streams else {},
    }


# --- the pages -------------------------------------------------------------------------------


def _page_errors(fn):
    """OutputError -> 404/400 and Unavailable -> 503, as a page says them (views/errors.py
    renders HTTP errors)."""

    def wrapped(request):
        try:
            return fn(request)
        except outputs.BadName as e:
            raise InputError("name", e.reason) from None  # (views/errors.py: a 400 naming it)
        except outputs.OutputError as e:
            raise HTTPNotFound(str(e)) from None
        except Unavailable as e:
            return Response(str(e), status=503, content_type="text/plain", charset="utf-8",
                            headers={"Retry-After": "5", "X-Content-Type-Options": "nosniff"})  # fmt: skip

    wrapped.__doc__ = fn.__doc__
    return wrapped


@view_config(route_name="jobs.outputs", request_method="GET", header=HTMX, permission=Permission.USE,
             renderer="jobs/_output_files.jinja2")  # fmt: skip
def outputs_fragment(request):
    """The job's output files and variables, refreshed in its page while it is live."""
    vary(request)
    job = request.context.job
    return {"job": job} | page_context(request, job, streams=False)


@view_config(route_name="jobs.outputs", request_method="GET", permission=Permission.USE)
def outputs_page(request):
    """(Without JavaScript they are on the job's page.)"""
    vary(request)
    return HTTPSeeOther(
        location=request.route_url("jobs.detail", job_id=request.context.job.id, _anchor="files-h")
    )


@view_config(route_name="jobs.file", request_method="GET", permission=Permission.USE)
@_page_errors
def download(request):
    """One output file, as an attachment."""
    name = _name(request)
    return file_response(_open(request, request.context.job, name), name)


@view_config(route_name="jobs.zip", request_method="GET", permission=Permission.USE)
@_page_errors
def download_zip(request):
    job = request.context.job
    return zip_response(request, job, f"job-{job.id}-outputs.zip")


@view_config(route_name="jobs.image", request_method="GET", permission=Permission.USE)
@_page_errors
def image(request):
    try:
        return image_response(request, request.context.job, _name(request))
    except previews.PreviewError as e:
        raise HTTPNotFound(str(e)) from None


def _preview(request):
    job = request.context.job
    name = _name(request)
    try:
        p = make_preview(request, job, name)
    except previews.PreviewError as e:
        p = previews.Preview(name, "none", message=str(e))
    if p.kind == "image" and p.media_type == "image/png" and p.notes:  # (TIFF: can it be read?)
        try:
            with _seekable(request, job, name) as src:
                previews.check_image(src)
        except previews.PreviewError as e:
            p = previews.Preview(name, "none", message=str(e))
    return {"job": job, "name": name, "p": p}


@view_config(route_name="jobs.preview", request_method="GET", permission=Permission.USE,
             renderer="jobs/output_preview.jinja2")  # fmt: skip
@_page_errors
def preview_page(request):
    """The preview as a page of its own (without JavaScript)."""
    vary(request)
    return _preview(request)


@view_config(route_name="jobs.preview", request_method="GET", header=HTMX, permission=Permission.USE,
             renderer="jobs/_output_preview.jinja2")  # fmt: skip
@_page_errors
def preview_fragment(request):
    """The preview, put into the job's page."""
    vary(request)
    return _preview(request)


# --- /api/v1 ----------------------------------------------------------------------------------


def files_json(request, job, limit: int = outputs.MAX_LISTED) -> dict:
    """The job's output files with their download URLs, and the zip's URL."""
    try:
        found = listing(request, job, limit)
    except Unavailable as e:
        return {
            "files": [],
            "total": 0,
            "total_size": 0,
            "more": False,
            "others": 0,
            "unnamed": 0,
            "zip_url": None,
            "unavailable": str(e),
        }
    return {
        "files": [
            {
                "name": f.name,
                "size": f.size,
                "modified": f.modified.isoformat(),
                "download_url": request.route_url("api.job.file", job_id=job.id, _query={"name": f.name}),
            }
            for f in found.files
        ],
        "total": found.total,
        "total_size": found.total_size,
        "more": found.more or found.hidden > 0,
        "others": found.others,
        "unnamed": found.unnamed,
        "zip_url": request.route_url("api.job.zip", job_id=job.id),
    }


def vars_json(job) -> dict:
    """``output_vars`` (name -> value, empty while the job has none), whether some were
    left out (over the bounds) and how many lines were skipped (not OUT_NAME=value)."""
    got = outputs.OutputVars.from_json(job.output_vars) or outputs.OutputVars(())
    return {
        "output_vars": dict(got.values),
        "output_vars_skipped": got.skipped,
        "output_vars_incomplete": bool(got.left_out or got.cut),
    }


def _api_errors(fn):
    def wrapped(request):
        try:
            return fn(request)
        except outputs.BadName as e:
            raise ApiError(400, "bad_parameter", str(e), {"name": e.reason}) from None
        except outputs.OutputError as e:
            raise ApiError(404, "not_found", str(e), {"name": "no such output file"}) from None
        except Unavailable as e:
            raise ApiError(503, "backend_unavailable", str(e)) from None

    wrapped.__doc__ = fn.__doc__
    return wrapped


@view_config(route_name="api.job.files", request_method="GET", permission=Permission.USE, renderer="json")
@_api_errors
def api_files(request):
    return files_json(request, request.context.job)


@view_config(route_name="api.job.file", request_method="GET", permission=Permission.USE)
@_api_errors
def api_file(request):
    name = _name(request)
    if not name:
        raise ApiError(400, "bad_parameter", "name is required", {"name": "required"})
    return file_response(_open(request, request.context.job, name), name)


@view_config(route_name="api.job.zip", request_method="GET", permission=Permission.USE)
@_api_errors
def api_zip(request):
    job = request.context.job
    return zip_response(request, job, f"job-{job.id}-outputs.zip")
