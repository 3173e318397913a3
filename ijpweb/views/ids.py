"""The IDS REST face of the embedded catalog, at IDS's standard paths (``/ids/...``).

Clients authenticate with ``sessionId``, not cookies, so CSRF does not apply here.
"""

from __future__ import annotations

import json
from datetime import datetime

from pyramid.response import Response
from pyramid.view import view_config

from ..catalog.ids import VERSION, IdsError, Selection


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
    raw = params.get(name)
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw) if not raw.isdigit() else datetime.fromtimestamp(int(raw) / 1000)
    except ValueError:
        raise IdsError("BadRequestException", f"{name}: not a date") from None


def _offset(request) -> int:
    rng = request.headers.get("Range", "")
    if rng.startswith("bytes=") and rng.endswith("-") and rng[6:-1].isdigit():
        return int(rng[6:-1])
    return 0


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
    request.ids.files(_sid(request.params), Selection.parse(request.params))
    return _text("ONLINE")


def get_datafile_ids(request):
    ids = request.ids.datafile_ids(_sid(request.params), Selection.parse(request.params))
    return _json({"zip": False, "compress": False, "ids": ids})


def prepare_data(request):
    # One-level storage: data is always online; the "prepared id" is the selection.
    p = request.params
    sel = Selection.parse(p)
    request.ids.files(_sid(p), sel)
    return _text(request.registry["ijp.prepared"].add((_sid(p), sel, _flag(p, "zip"))))


def _prepared(request, prepared_id: str):
    found = request.registry["ijp.prepared"].get(prepared_id)
    if found is None:
        raise IdsError("NotFoundException", "no such preparedId (it may have expired)")
    return found


def is_prepared(request):
    _prepared(request, request.params.get("preparedId", ""))
    return _text("true")


def get_data(request):
    p = request.params
    if p.get("preparedId"):
        sid, sel, zip_flag = _prepared(request, p["preparedId"])
    else:
        sid, sel, zip_flag = _sid(p), Selection.parse(p), _flag(p, "zip")
    offset = _offset(request)
    content_type, name, body = request.ids.data(sid, sel, zip_flag, offset)
    resp = Response(app_iter=body, content_type=content_type)
    outname = p.get("outname") or name
    resp.content_disposition = f'attachment; filename="{outname.replace(chr(34), "")}"'
    if offset:
        resp.status = 206
    return resp


def put(request):
    p = request.params
    try:
        dataset_id = int(p.get("datasetId", ""))
        format_id = int(p["datafileFormatId"]) if p.get("datafileFormatId") else None
    except ValueError:
        raise IdsError("BadRequestException", "datasetId and datafileFormatId must be ids") from None
    new_id, crc = request.ids.put(
        _sid(p),
        request.body_file_raw,  # streamed to the store, never spooled
        p.get("name", ""),
        dataset_id,
        format_id,
        p.get("description"),
        _time(p, "datafileCreateTime"),
        _time(p, "datafileModTime"),
    )
    return _json({"id": new_id, "checksum": crc})


def delete(request):
    locations = request.ids.delete(_sid(request.params), Selection.parse(request.params))
    store = request.registry["ijp.filestore"]

    def remove(ok):
        if ok:
            for loc in locations:
                store.remove(loc)

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
        return _error(IdsError("NotFoundException", f"no IDS call {request.matchdict['method']!r}"))
    try:
        return handler(request)
    except IdsError as e:
        request.tm.doom()
        return _error(e)
