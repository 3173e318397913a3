"""Data in and out (issue 13, point 5): downloads of a datafile, of a dataset and of the
selection as a zip, previews and thumbnails, uploads into a dataset and new datasets, on
the pages and in /api/v1. Thin: every read and write goes through ``request.data``
(catalog.DataAccess: the embedded IDS, or the facility's through python-icat) with the
user's catalog session, so IDS and the catalog's rules decide; the portal never reads a
file the user could not get from IDS themselves.

What one may not read answers as what does not exist (404, ``not found or not visible
to you: datafile 7``). Uploads are streamed into IDS in chunks; the request's size is
checked against ``ijp.upload.max_bytes`` before anything is read, and again while
reading; a refused upload stores nothing (the transaction is rolled back and files
already written are removed).
"""

from __future__ import annotations

import contextlib

from pyramid.csrf import check_csrf_origin, check_csrf_token
from pyramid.httpexceptions import HTTPNotFound, HTTPSeeOther
from pyramid.renderers import render_to_response
from pyramid.response import Response
from pyramid.view import view_config
from webob.multidict import MultiDict

from .. import bodies, datafiles, inputs, previews
from ..catalog import CatalogError, DataError, QueryBusyError, QueryLimitError, SessionError
from ..catalog.ids import check_dataset_name, check_file_name, has_control
from ..security import Permission, _csrf_applies
from . import HTMX, path_id, vary, wants_json
from .api import ApiError
from .ids import _disposition

IMAGE_SIDE = previews.MAX_SIDE  # the preview's image
# the user's own (never a shared cache's), and asked again on each use: nothing of one
# user's stays usable in the browser's cache after logout (see _image)
IMAGE_CACHE = "private, no-cache"
MULTIPART_SLACK = 1 << 20  # a multipart body's boundaries and fields, over its files' bytes
MAX_FILES = 100  # files in one upload


# --- helpers ----------------------------------------------------------------------------------


def _sid(request) -> str:
    return request.identity.catalog_session


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str, field: str = ""):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def _call(fn):
    """Run a data call; what goes wrong becomes a _Refused with status, code and message."""
    try:
        return fn()
    except DataError as e:
        raise _Refused(e.status, e.code, e.message, e.field) from None
    except SessionError:
        raise _Refused(401, "session_expired", "your catalog session has expired; log in again") from None
    except QueryBusyError as e:
        raise _Refused(429, "catalog_busy", str(e)) from None
    except QueryLimitError as e:
        raise _Refused(e.status, "catalog_limit", str(e)) from None
    except PermissionError as e:
        raise _Refused(403, "forbidden", str(e)) from None
    except CatalogError as e:
        raise _Refused(503, "catalog_unavailable", f"the catalog or IDS could not be asked: {e}") from None


def _api(fn):
    try:
        return _call(fn)
    except _Refused as e:
        raise ApiError(e.status, e.code, e.message, {e.field: e.message} if e.field else None) from None


def _page_error(request, e: _Refused):
    """An error page (or JSON for a client asking for it) with the refusal's message."""
    request.tm.doom()
    if e.status == 401:
        return HTTPSeeOther(request.route_url("auth.login", _query={"next": request.path_qs}))
    if wants_json(request):
        body = {"code": e.code, "message": e.message}
        if e.field:
            body["fields"] = {e.field: e.message}
        resp = Response(json_body=body, status=e.status)
        return resp
    return render_to_response(
        "error.jinja2",
        {"status": e.status, "message": e.message},
        request,
        response=Response(status=e.status),
    )


def _file_response(download) -> Response:
    """The contents as an attachment, streamed (never shown inline: a datafile is anyone's
    bytes), with the sandboxing headers."""
    resp = Response(app_iter=download.body, content_type=download.content_type)
    resp.content_disposition = _disposition(download.name)
    if download.length is not None:
        resp.content_length = download.length
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    resp.cache_control = "private, no-store"
    return resp


def _datafile(request, datafile_id: int):
    found = _call(lambda: request.catalog.datafiles(_sid(request), [datafile_id]))
    if not found:
        raise _Refused(404, "not_found", f"not found or not visible to you: datafile {datafile_id}")
    return found[0]


def _dataset(request, dataset_id: int):
    found = _call(lambda: request.catalog.datasets(_sid(request), [dataset_id]))
    if not found:
        raise _Refused(404, "not_found", f"not found or not visible to you: dataset {dataset_id}")
    return found[0]


def _zip_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)[:100] or "data"


# --- downloads --------------------------------------------------------------------------------


@view_config(route_name="data.download", request_method="GET", permission=Permission.USE)
def download(request):
    datafile_id = path_id(request, "datafile_id")
    try:
        return _file_response(_call(lambda: request.data.datafile(_sid(request), datafile_id)))
    except _Refused as e:
        return _page_error(request, e)


@view_config(route_name="data.dataset_zip", request_method="GET", permission=Permission.USE)
def dataset_zip(request):
    dataset_id = path_id(request, "dataset_id")
    try:
        ds = _dataset(request, dataset_id)
        name = f"{_zip_name(ds.name)}.zip"
        return _file_response(_call(lambda: request.data.zip(_sid(request), [dataset_id], [], name)))
    except _Refused as e:
        return _page_error(request, e)


@view_config(route_name="data.selection_zip", request_method="GET", permission=Permission.USE)
def selection_zip(request):
    """The current selection (its datasets' files and its datafiles) as one zip."""
    from .run import _selection

    sel = _selection(request)
    try:
        if not sel["datasets"] and not sel["datafiles"]:
            raise _Refused(400, "bad_parameter", "the selection is empty: select datasets or datafiles first")
        download = _call(
            lambda: request.data.zip(_sid(request), sel["datasets"], sel["datafiles"], "selection.zip")
        )
        return _file_response(download)
    except _Refused as e:
        return _page_error(request, e)


# --- previews -----------------------------------------------------------------------------


@view_config(route_name="data.preview", request_method="GET", permission=Permission.USE,
             renderer="datafiles/preview.jinja2")  # fmt: skip
@view_config(route_name="data.preview", request_method="GET", permission=Permission.USE, header=HTMX,
             renderer="datafiles/_fragment.jinja2")  # fmt: skip
def preview(request):
    """A datafile's preview: a page of its own (no script needed), or the fragment a
    dataset page's <details> loads."""
    vary(request)
    datafile_id = path_id(request, "datafile_id")
    try:
        df = _datafile(request, datafile_id)
        p = _call(lambda: datafiles.preview(request.data, _sid(request), df))
    except _Refused as e:
        return _page_error(request, e)
    return {
        "df": df,
        "p": p,
        "image_url": request.route_url("data.image", datafile_id=df.id),
        "download_url": request.route_url("data.download", datafile_id=df.id),
    }


def _image(request, side: int):
    """The PNG, revalidated on every use (``private, no-cache`` and an ETag: a browser
    asks each time, so the catalog and IDS check the user again; 304 when unchanged)."""
    datafile_id = path_id(request, "datafile_id")
    try:
        df = _datafile(request, datafile_id)
        png = _call(lambda: datafiles.image_png(request.data, _sid(request), df, side, request.if_none_match))
    except _Refused as e:
        return _page_error(request, e)
    except datafiles.Busy as e:
        resp = Response(str(e), status=503, content_type="text/plain", charset="utf-8")
        resp.headers["Retry-After"] = str(e.retry_after)
        resp.headers["X-Content-Type-Options"] = "nosniff"
        return resp
    except previews.PreviewError as e:
        resp = Response(str(e), status=422, content_type="text/plain", charset="utf-8")
        resp.headers["X-Content-Type-Options"] = "nosniff"
        return resp
    if png.body is None:
        resp = Response(status=304)
    else:
        resp = Response(body=png.body, content_type="image/png")
        resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.etag = png.etag
    resp.cache_control = IMAGE_CACHE
    return resp


@view_config(route_name="data.thumbnail", request_method="GET", permission=Permission.USE)
def thumbnail(request):
    """A small PNG of an image datafile, made from IDS with the user's session on each
    request (the URL carries only the id: whoever asks must be able to read it)."""
    return _image(request, previews.THUMB_SIDE)


@view_config(route_name="data.image", request_method="GET", permission=Permission.USE)
def image(request):
    return _image(request, IMAGE_SIDE)


# --- uploads --------------------------------------------------------------------------------


def _check_length(request) -> None:
    limit = request.ijp.upload_max_bytes
    length = request.content_length
    if length is None:
        raise _Refused(411, "length_required", "an upload must say its length (Content-Length)", "file")
    if length > limit + MULTIPART_SLACK:
        raise _Refused(413, "too_large", datafiles.too_large(limit).message, "file")


def _read_form(request) -> None:
    """An upload's multipart form, parsed (ijpweb.bodies) before anything else reads it
    (the CSRF check, request.POST): its files into temporary files, and every other part at
    most bodies.MAX_FIELD_BYTES (413 naming it), never read whole into memory as WebOb's
    parser would. request.POST is then what was parsed."""
    if request.content_type != "multipart/form-data":
        return
    try:
        mark = bodies.boundary(request.headers.get("Content-Type", ""))
        if request.is_body_seekable:
            request.body_file_raw.seek(0)
        items = bodies.parse_multipart(request.body_file, mark)
    except inputs.InputError as e:
        # the refusal's page must not have WebOb read the form after all: it has no fields
        request.environ["webob._parsed_post_vars"] = (MultiDict(), request.body_file_raw)
        code = "too_large" if e.status == 413 else "bad_parameter"
        raise _Refused(e.status, code, e.message, e.field) from None
    files = [v for _name, v in items if isinstance(v, bodies.FilePart)]
    request.add_finished_callback(lambda r: [f.file.close() for f in files])
    request.environ["webob._parsed_post_vars"] = (MultiDict(items), request.body_file_raw)


def _put_all(request, dataset_id: int, files) -> list[dict]:
    """Put each (name, stream) into the dataset; all or nothing (the caller's transaction
    is doomed on a refusal, and files written are removed)."""
    counter = [0]
    limit = request.ijp.upload_max_bytes
    data = request.data
    txn = request.tm.get()
    with contextlib.suppress(AttributeError):  # (transaction >= 3: after an abort too)
        txn.addAfterAbortHook(lambda *a: data.discard())
    txn.addAfterCommitHook(lambda ok: ok or data.discard())
    out = []
    try:
        for name, stream in files:
            bounded = datafiles.Bounded(stream, counter, limit)
            new_id = _call(lambda n=name, s=bounded: data.put(_sid(request), dataset_id, n, s))
            out.append({"id": new_id, "name": name})
    except BaseException:
        data.undo()  # (all or nothing, whatever becomes of the transaction)
        request.tm.doom()
        raise
    return out


def _form_files(request) -> list[tuple[str, object]]:
    """The files of a multipart form (field ``file``, repeated); a field that is not a
    file, or none at all, is refused naming ``file``."""
    try:
        fields = request.POST.getall("file")
    except (ValueError, UnicodeDecodeError):
        raise _Refused(400, "bad_parameter", "the upload is not a readable multipart form", "file") from None
    files = [f for f in fields if getattr(f, "filename", None) is not None]
    request.add_finished_callback(lambda r: [f.file.close() for f in files])  # (their spooled copies)
    if not files:
        raise _Refused(400, "bad_parameter", "choose at least one file to upload", "file")
    if len(files) > MAX_FILES:
        raise _Refused(400, "bad_parameter", f"at most {MAX_FILES} files in one upload", "file")
    out = []
    names = set()
    for f in files:
        # a browser sends the base name; an old one (or a crafted form) a path: refused
        name = f.filename
        with_field = _Refused(400, "bad_parameter", "", "file")
        try:
            check_file_name(name, "file name")
        except DataError as e:
            with_field.message = f"{e.message} (got {_shown(name)})"
            raise with_field from None
        if name in names:
            raise _Refused(400, "bad_parameter", f"the file {_shown(name)} is given twice", "file")
        names.add(name)
        out.append((name, f.file))
    return out


def _shown(name: str) -> str:
    """A refused name, safe to show: control characters as '?', at most 60 characters."""
    clean = "".join("?" if has_control(c) else c for c in str(name))
    return repr(clean if len(clean) <= 60 else clean[:60] + "…")


@view_config(route_name="data.upload", request_method="POST", permission=Permission.USE, require_csrf=False)
def upload(request):
    """Files into a dataset: a plain multipart form (no script needed: back to the dataset
    page), or upload.js's XMLHttpRequest asking for JSON. The length is checked before the
    form is read (and the CSRF token with it, which is why this view checks it itself)."""
    dataset_id = path_id(request, "dataset_id")
    try:
        _check_length(request)
        _read_form(request)
        check_csrf_origin(request, raises=True)
        check_csrf_token(request, raises=True)
        _dataset(request, dataset_id)
        stored = _put_all(request, dataset_id, _form_files(request))
    except _Refused as e:
        if wants_json(request) or e.status == 401:
            return _page_error(request, e)
        return _dataset_page_with_error(request, dataset_id, e)
    if wants_json(request):
        return Response(json_body={"datafiles": stored, "dataset": dataset_id}, status=201)
    back = request.route_url("datasets.detail", dataset_id=dataset_id, _query={"uploaded": str(len(stored))})
    return HTTPSeeOther(back)


class _QueryOnly:
    """The request as the dataset page reads it: its ``params`` are the query string's
    only (the upload's form has a field ``file`` too: the file, not the page's filter)."""

    def __init__(self, request):
        self._request = request

    def __getattr__(self, name):
        return getattr(self._request, name)

    @property
    def params(self):
        return self._request.GET


def _dataset_page_with_error(request, dataset_id: int, e: _Refused):
    """The dataset page again (as views/run.py makes it), with the refusal at the upload's
    file field."""
    from .run import dataset_page

    request.tm.doom()
    # the page reads no field of a refused form (unread: WebOb would read it whole now)
    request.environ.setdefault("webob._parsed_post_vars", (MultiDict(), request.body_file_raw))
    if e.status == 404:
        return _page_error(request, e)
    try:
        values = dataset_page(_QueryOnly(request))  # (the page's own parameters, not the form's)
    except HTTPNotFound:
        return _page_error(request, e)
    values = {**values, "upload_error": e.message}
    return render_to_response("datasets/detail.jinja2", values, request, response=Response(status=e.status))


# --- new datasets ---------------------------------------------------------------------------


def _new_dataset_form(request, values: dict, errors: dict, status: int = 200):
    sid = _sid(request)
    investigations = _call(lambda: request.data.investigations(sid))
    types = _call(lambda: request.data.dataset_types(sid))
    resp = render_to_response(
        "datasets/new.jinja2",
        {"investigations": investigations, "types": types, "values": values, "errors": errors},
        request,
        response=Response(status=status),
    )
    return resp


@view_config(route_name="data.new_dataset", request_method="GET", permission=Permission.USE)
def new_dataset_page(request):
    values = {
        "investigation": request.GET.get("investigation", ""),
        "name": "",
        "type": "",
        "description": "",
    }
    try:
        return _new_dataset_form(request, values, {})
    except _Refused as e:
        return _page_error(request, e)


def _new_dataset_values(get) -> tuple[dict, dict]:
    """The form's or the body's fields, checked: (values, errors by field)."""
    values, errors = {}, {}
    for field, most in (("investigation", 300), ("name", 1000), ("type", 300), ("description", 10_000)):
        raw = get(field)
        if raw is None:
            raw = ""
        if not isinstance(raw, str | int) or isinstance(raw, bool):
            errors[field] = f"{field} must be text"
            raw = ""
        raw = str(raw)
        try:
            inputs.text(raw, field, most)
        except inputs.InputError as e:
            errors[field] = e.message
            raw = ""
        values[field] = raw
    if not errors.get("investigation"):
        try:
            values["investigation_id"] = inputs.ident(values["investigation"], "investigation")
        except inputs.InputError:
            errors["investigation"] = "choose the investigation the dataset belongs to"
    if not errors.get("name"):
        try:
            values["name"] = check_dataset_name(values["name"])
        except DataError as e:
            errors["name"] = e.message
    if not errors.get("type") and not values["type"]:
        errors["type"] = "type is required: choose one of the facility's dataset types"
    return values, errors


@view_config(route_name="data.new_dataset", request_method="POST", permission=Permission.USE)
def new_dataset(request):
    values, errors = _new_dataset_values(request.POST.get)
    try:
        if errors:
            return _new_dataset_form(request, values, errors, 400)
        try:
            new_id = _call(
                lambda: request.data.new_dataset(
                    _sid(request), values["investigation_id"], values["name"], values["type"],
                    values["description"],
                )
            )  # fmt: skip
        except _Refused as e:
            if e.status == 401:
                raise
            request.tm.doom()
            field = e.field if e.field in ("name", "type", "description") else "investigation"
            return _new_dataset_form(request, values, {field: e.message}, e.status)
    except _Refused as e:
        return _page_error(request, e)
    return HTTPSeeOther(request.route_url("datasets.detail", dataset_id=new_id, _query={"created": "1"}))


# --- /api/v1 --------------------------------------------------------------------------------


@view_config(route_name="api.datafile.content", request_method="GET", permission=Permission.USE)
@view_config(route_name="api.datafile.download", request_method="GET", permission=Permission.USE)
def api_datafile_content(request):
    """A datafile's contents, streamed from IDS as the user."""
    datafile_id = _api_id(request, "datafile_id", "datafile")
    return _file_response(_api(lambda: request.data.datafile(_sid(request), datafile_id)))


def _api_id(request, name: str, kind: str) -> int:
    try:
        return inputs.ident(request.matchdict[name], name)
    except inputs.InputError:
        raise ApiError(
            404, "not_found", f"not found or not visible to you: {kind} {request.matchdict[name][:30]}"
        ) from None


@view_config(route_name="api.dataset.zip", request_method="GET", permission=Permission.USE)
def api_dataset_zip(request):
    """A dataset's datafiles as a zip, streamed."""
    dataset_id = _api_id(request, "dataset_id", "dataset")
    ds = _api(lambda: _dataset(request, dataset_id))
    return _file_response(
        _api(lambda: request.data.zip(_sid(request), [dataset_id], [], f"{_zip_name(ds.name)}.zip"))
    )


@view_config(route_name="api.zip", request_method="GET", permission=Permission.USE)
def api_zip(request):
    """Datasets' and datafiles' contents as one zip (``dataset_ids``, ``datafile_ids``)."""
    ds_ids = inputs.id_list(request.GET.get("dataset_ids", ""), "dataset_ids")
    df_ids = inputs.id_list(request.GET.get("datafile_ids", ""), "datafile_ids")
    if not ds_ids and not df_ids:
        raise ApiError(400, "bad_parameter", "name dataset_ids or datafile_ids", {"dataset_ids": "required"})
    return _file_response(_api(lambda: request.data.zip(_sid(request), ds_ids, df_ids, "datafiles.zip")))


@view_config(
    route_name="api.dataset.datafiles",
    request_method="POST",
    permission=Permission.USE,
    renderer="json",
    require_csrf=False,  # (checked below, after the length: the token check reads the form)
)
def api_upload(request):
    """New datafiles in a dataset: a multipart form (``file``, repeated), or the raw body
    (``Content-Type: application/octet-stream``) named by ``name``."""
    dataset_id = _api_id(request, "dataset_id", "dataset")
    try:
        _check_length(request)
        _read_form(request)
    except _Refused as e:
        raise ApiError(e.status, e.code, e.message, {e.field: e.message} if e.field else None) from None
    if _csrf_applies(request):  # the login cookie: the X-CSRF-Token header, as elsewhere
        check_csrf_origin(request, raises=True)
        check_csrf_token(request, raises=True)
    _api(lambda: _dataset(request, dataset_id))
    if request.content_type.startswith("multipart/"):
        if "name" in request.GET:
            raise ApiError(400, "bad_parameter", "name is for a raw body; a form's files carry their names",
                           {"name": "not with a multipart form"})  # fmt: skip
        files = _api(lambda: _form_files_api(request))
    else:
        name = request.GET.get("name")
        if name is None:
            raise ApiError(
                400, "bad_parameter", "name is required: the new datafile's name", {"name": "required"}
            )
        try:
            check_file_name(inputs.text(name, "name", 10_000))
        except (DataError, inputs.InputError) as e:
            message = getattr(e, "message", str(e))
            raise ApiError(400, "bad_parameter", message, {"name": message}) from None
        files = [(name, request.body_file_raw)]  # streamed to IDS, never spooled
    stored = _api(lambda: _put_all(request, dataset_id, files))
    request.response.status = 201
    return {"dataset": dataset_id, "datafiles": stored}


def _form_files_api(request):
    try:
        return _form_files(request)
    except _Refused as e:
        raise DataError(e.message, e.status, e.code, e.field) from None


@view_config(route_name="api.datasets", request_method="POST", permission=Permission.USE, renderer="json")
def api_new_dataset(request):
    """A new dataset in an investigation the user may write (the catalog's C rule on
    Dataset decides): ``investigation`` (its id, or its name), ``name``, ``type``,
    ``description``."""
    from .api import _json

    body = _json(request)
    raw_inv = body.get("investigation")
    if isinstance(raw_inv, str) and raw_inv and not raw_inv.isdigit():
        found = [i for i in _api(lambda: request.data.investigations(_sid(request))) if i.name == raw_inv]
        if not found:
            message = f"not found or not visible to you: investigation {raw_inv[:60]!r}"
            raise ApiError(404, "not_found", message)
        body = {**body, "investigation": str(found[0].id)}
    values, errors = _new_dataset_values(body.get)
    if errors:
        field, message = next(iter(errors.items()))
        raise ApiError(400, "bad_parameter", message, errors)
    new_id = _api(
        lambda: request.data.new_dataset(
            _sid(request), values["investigation_id"], values["name"], values["type"], values["description"]
        )
    )
    request.response.status = 201
    request.response.location = request.route_url("api.dataset", dataset_id=new_id)
    return {"id": new_id, "name": values["name"], "url": request.route_url("api.dataset", dataset_id=new_id)}


@view_config(route_name="api.datasettypes", request_method="GET", permission=Permission.USE, renderer="json")
def api_dataset_types(request):
    """The facility's dataset types (for a new dataset)."""
    return {"types": _api(lambda: request.data.dataset_types(_sid(request)))}
