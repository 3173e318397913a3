"""The IDS REST face of the embedded catalog, at IDS's standard paths (``/ids/...``).

Clients authenticate with ``sessionId``, not cookies, so CSRF does not apply here.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from urllib.parse import quote

from pyramid.response import Response
from pyramid.view import view_config

from .. import inputs
from ..catalog.ids import VERSION, IdsError, Selection, has_control, invisible

RANGE = re.compile(r"bytes=([0-9]{1,100})-", re.ASCII)


def _text(body: str, content_type: str = "text/plain") -> Response:
    return Response(body=body.encode(), content_type=content_type, charset="utf-8")


def _json(data) -> Response:
    return _text(json.dumps(data), "application/json")


def _error(e: IdsError) -> Response:
    resp = _json({"code": e.code, "message": e.message})
    resp.status = e.status
    return resp


def _flag(params, name: str) -> bool:
    return (params.get(name) or "").lower() == "true"


def _time(params, name: str):
    """A time as IDS takes it (milliseconds since 1970), or ISO 8601."""
    raw = (params.get(name) or "").strip()
    if not raw:
        return None
    try:
        if not (raw.isascii() and raw.isdigit()):
            return datetime.fromisoformat(raw)
        if len(raw) > 15:  # beyond the year 33658
            raise ValueError(name)
        return datetime.fromtimestamp(int(raw) / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        raise IdsError(
            "BadRequestException", f"{name} must be milliseconds since 1970 or an ISO 8601 time"
        ) from None


def _offset(request) -> int:
    """The offset of a ``Range: bytes=N-`` header (the only form IDS takes), or 0."""
    rng = request.headers.get("Range")
    if rng is None:
        return 0
    m = RANGE.fullmatch(rng.strip())
    if m is None:
        raise IdsError("BadRequestException", "Range must be bytes=N- (an offset; IDS takes no other form)")
    return inputs.offset(m.group(1), "Range's offset")


def _outname(params) -> str | None:
    outname = params.get("outname") or None
    if outname is not None and (has_control(outname) or len(outname) > 255):
        raise IdsError(
            "BadRequestException",
            "outname must be a file name of at most 255 characters, without control characters",
        )
    return outname


def _disposition(name: str) -> str:
    """``attachment`` with the name as an ASCII fallback and as RFC 5987 UTF-8: a
    catalog name (user data) can never break the header, nor be saved under a name that
    displays as another (a bidi override or zero-width character becomes '_')."""
    name = "".join("_" if has_control(c) or invisible(c) else c for c in name) or "download"
    plain = "".join(c if " " <= c <= "~" and c not in '"\\' else "_" for c in name)
    if plain == name:
        return f'attachment; filename="{plain}"'
    return f"attachment; filename=\"{plain}\"; filename*=UTF-8''{quote(name, safe='')}"


def _sid(params) -> str:
    return params.get("sessionId", "")


def ping(request):
    return _text("IdsOK")


def version(request):
    return _json({"version": VERSION})


def get_api_version(request):
    return _text(VERSION)


def is_read_only(request):
    return _text("false")


def is_two_level(request):
    return _text("false")


def get_icat_url(request):
    return _text(request.ijp.icat_url)


def get_service_status(request):
    request.ids._user(_sid(request.params))
    return _json({"opsQueue": [], "lockedDs": [], "failures": []})


def get_size(request):
    return _text(str(request.ids.size(_sid(request.params), Selection.parse(request.params))))


def get_status(request):
    request.ids.located(_sid(request.params), Selection.parse(request.params))
    return _text("ONLINE")


def get_datafile_ids(request):
    ids = request.ids.datafile_ids(_sid(request.params), Selection.parse(request.params))
    return _json({"zip": False, "compress": False, "ids": ids})


def prepare_data(request):
    # One-level storage: data is always online; the "prepared id" is the selection.
    p = request.params
    sel = Selection.parse(p)
    request.ids.located(_sid(p), sel)
    prepared = (_sid(p), sel, _flag(p, "zip"), _flag(p, "compress"))
    return _text(request.registry["ijp.prepared"].add(request.dbsession, prepared))


def _prepared(request, prepared_id: str):
    found = request.registry["ijp.prepared"].get(request.dbsession, prepared_id)
    if found is None:
        raise IdsError("NotFoundException", "no such preparedId (it may have expired)")
    return found


def is_prepared(request):
    _prepared(request, request.params.get("preparedId", ""))
    return _text("true")


def get_data(request):
    p = request.params
    offset, outname = _offset(request), _outname(p)
    if p.get("preparedId"):
        sid, sel, zip_flag, compress = _prepared(request, p["preparedId"])
    else:
        sid, sel, zip_flag, compress = _sid(p), Selection.parse(p), _flag(p, "zip"), _flag(p, "compress")
    content_type, name, body = request.ids.data(sid, sel, zip_flag, offset, compress)
    resp = Response(app_iter=body, content_type=content_type)
    resp.content_disposition = _disposition(outname or name)
    if hasattr(body, "length"):
        resp.content_length = body.length
    if offset:
        resp.status = 206
    return resp


def put(request):
    p = request.params
    if not p.get("datasetId"):
        raise IdsError("BadRequestException", "datasetId is required")
    dataset_id = inputs.ident(p["datasetId"], "datasetId")
    format_id = inputs.ident(p["datafileFormatId"], "datafileFormatId") if p.get("datafileFormatId") else None
    description = p.get("description")
    if description is not None:
        inputs.text(description, "description", 4000)
    new_id, crc = request.ids.put(
        _sid(p),
        request.body_file_raw,  # streamed to the store, never spooled
        p.get("name", ""),
        dataset_id,
        format_id,
        description,
        _time(p, "datafileCreateTime"),
        _time(p, "datafileModTime"),
    )
    return _json({"id": new_id, "checksum": crc})


def delete(request):
    paths = request.ids.delete(_sid(request.params), Selection.parse(request.params))
    store = request.registry["ijp.filestore"]

    def remove(ok):
        if ok:
            for path in paths:
                store.remove(path)

    request.tm.get().addAfterCommitHook(remove)
    return Response(status=200)


METHODS = {
    ("GET", "ping"): ping,
    ("GET", "version"): version,
    ("GET", "getApiVersion"): get_api_version,
    ("GET", "isReadOnly"): is_read_only,
    ("GET", "isTwoLevel"): is_two_level,
    ("GET", "getIcatUrl"): get_icat_url,
    ("GET", "getServiceStatus"): get_service_status,
    ("GET", "getSize"): get_size,
    ("GET", "getStatus"): get_status,
    ("GET", "getDatafileIds"): get_datafile_ids,
    ("POST", "prepareData"): prepare_data,
    ("GET", "isPrepared"): is_prepared,
    ("GET", "getData"): get_data,
    ("PUT", "put"): put,
    ("POST", "put"): put,
    ("DELETE", "delete"): delete,
}


@view_config(route_name="ids", require_csrf=False)
def ids_call(request):
    handler = METHODS.get((request.method, request.matchdict["method"]))
    if handler is None:
        known = sorted({m for _, m in METHODS})
        if request.matchdict["method"] in known:
            return _error(IdsError("BadRequestException", f"{request.method} is not allowed here"))
        # (the name is not repeated: a client may have put anything there)
        return _error(IdsError("NotFoundException", f"no such IDS call; the calls are {', '.join(known)}"))
    try:
        return handler(request)
    except IdsError as e:
        request.tm.doom()
        return _error(e)
    except inputs.InputError as e:
        request.tm.doom()
        return _error(IdsError("BadRequestException", e.message))
    except UnicodeDecodeError:  # WebOb decodes the parameters when first asked
        request.tm.doom()
        return _error(IdsError("BadRequestException", "the parameters must be UTF-8 text"))
