"""``ijp-batchserver``: the IJP batch protocol (``<url>/batch/...``) over a local or SLURM
backend, for a cluster's head node. A small WSGI app; ``ijp-batchserver INI`` serves it
with waitress. See batchserver.ini for its settings and core.py for the rules."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback

import sqlalchemy as sa
from pyramid.config import Configurator
from pyramid.exceptions import PredicateMismatch
from pyramid.httpexceptions import HTTPException
from pyramid.response import Response
from pyramid.view import notfound_view_config, view_config

from .. import inputs, outputs
from ..batch import BatchError
from ..ijpwords import IjpError
from .auth import CACHE_SECONDS, IcatSessions
from .core import EXTENSIONS, MAX_BULK, BatchServer

log = logging.getLogger(__name__)
# the longest text parameter: a program's argument, a family, an owner, a reference
MAX_TEXT = 32768
SHORT = {"owner": 255, "clientRef": 255, "family": 255, "executable": 255, "jobId": 32}


def _text(request, name: str, default=None):
    """A text parameter (valid Unicode, no NUL, bounded), or ``default``."""
    value = request.params.get(name)
    return default if value is None else inputs.text(value, name, SHORT.get(name, MAX_TEXT))


def _texts(request, name: str) -> list[str]:
    return [inputs.text(v, name, SHORT.get(name, MAX_TEXT)) for v in request.params.getall(name)]


def _error(err: IjpError) -> Response:
    resp = Response(json_body=err.body())
    resp.status = err.status
    return resp


def _call(request, work):
    try:
        server: BatchServer = request.registry["batchserver"]
        sid, icat_url = _text(request, "sessionId"), _text(request, "icatUrl")
        caller = server.caller(request.registry["batchserver.auth"].user(sid, icat_url))
        return work(server, caller)
    except BatchError as e:
        return _error(IjpError("InternalException", str(e)))
    except IjpError as e:
        return _error(e)


@view_config(context=inputs.InputError)
def bad_input(exc, request):
    return _error(IjpError("ParameterException", exc.message))


@view_config(context=UnicodeDecodeError)
def not_utf8(exc, request):
    field = inputs.undecodable_field(request.environ.get("QUERY_STRING", ""))
    if field is None and "form-urlencoded" in (request.environ.get("CONTENT_TYPE") or ""):
        field = inputs.undecodable_field(request.body.decode("latin-1"))
    if field is None:
        return failed(exc, request)
    return _error(IjpError("ParameterException", f"{field} is not UTF-8"))


@notfound_view_config()
def not_found(exc, request):
    if isinstance(exc, PredicateMismatch):
        return _json(405, "ParameterException", f"{request.method} is not allowed on {request.path_info}")
    return _json(404, "NotFoundException", f"there is no batch call {request.path_info}")


@view_config(context=Exception)
def failed(exc, request):
    """Anything unexpected: the protocol's InternalException, never a stack trace; the
    traceback is logged without the caller's session ids."""
    if isinstance(exc, HTTPException):
        return exc
    text = "".join(traceback.format_exception(exc))
    try:
        secrets = [v for k in ("sessionId", "jobSessionId") for v in request.params.getall(k)]
    except UnicodeDecodeError:
        secrets = []
    for secret in sorted({v for v in secrets if len(v) >= 8}, key=len, reverse=True):
        text = text.replace(secret, "[hidden]")
    route = request.matched_route.pattern if request.matched_route else "(no route)"
    log.error("unexpected error on %s %s\n%s", request.method, route, text)
    return _error(
        IjpError("InternalException", "Something went wrong on the batch server; it has been logged.")
    )


def _json(status: int, code: str, message: str) -> Response:
    resp = Response(json_body={"code": code, "message": message})
    resp.status = status
    return resp


def _no_content(fn):
    def work(server, caller):
        fn(server, caller)
        return Response(status=204)

    return work


@view_config(route_name="submit", request_method="POST", renderer="json")
def submit(request):
    return _call(
        request,
        lambda s, c: {
            "jobId": s.submit(
                c,
                _text(request, "sessionId"),
                _text(request, "executable", ""),
                _texts(request, "parameter"),
                interactive=_text(request, "interactive", "false").lower() == "true",
                family=_text(request, "family") or None,
                owner=_text(request, "owner") or None,
                client_ref=_text(request, "clientRef") or None,
                job_session=_text(request, "jobSessionId") or None,
            )
        },
    )


@view_config(route_name="estimate", request_method="GET", renderer="json")
def estimate(request):
    return _call(
        request,
        lambda s, c: {
            "time": s.estimate(
                c, _text(request, "executable", ""), _texts(request, "parameter"), _text(request, "family")
            )
        },
    )


@view_config(route_name="status", request_method="GET", renderer="json")
def status(request):
    return _call(request, lambda s, c: {"status": s.status(c, request.matchdict["id"])})


@view_config(route_name="states", request_method="POST", renderer="json")
def states(request):
    def work(s, c):
        return {
            i: {
                "status": st.status.value,
                "exitCode": st.exit_code,
                "reason": st.reason,
                "startedAt": st.started_at.isoformat() if st.started_at else None,
                "finishedAt": st.finished_at.isoformat() if st.finished_at else None,
            }
            for i, st in s.states(c, _texts(request, "jobId")).items()
        }

    return _call(request, work)


def _read(request, stream):
    def work(s, c):
        offset = inputs.offset(_text(request, "offset", "0"), "offset")
        limit = inputs.whole_number(_text(request, "limit", str(1 << 20)), "limit", 1, 1 << 24)
        data = s.read(c, request.matchdict["id"], stream, offset, limit)
        return Response(body=data, content_type="application/octet-stream")

    return _call(request, work)


@view_config(route_name="output", request_method="GET")
def output(request):
    return _read(request, "stdout")


@view_config(route_name="error", request_method="GET")
def error(request):
    return _read(request, "stderr")


@view_config(route_name="outputs", request_method="GET", renderer="json")
def output_files(request):
    """The outputs extension: the job's output files (at most ``limit`` listed)."""

    def work(s, c):
        limit = inputs.whole_number(
            _text(request, "limit", str(outputs.MAX_LISTED)), "limit", 0, outputs.MAX_ZIPPED
        )
        found = s.output_files(c, request.matchdict["id"], limit)
        return {
            "files": [
                {"name": f.name, "size": f.size, "modified": f.modified.isoformat()} for f in found.files
            ],
            "total": found.total,
            "totalSize": found.total_size,
            "others": found.others,
            "unnamed": found.unnamed,  # entries whose names are not UTF-8: neither listed nor served
            "more": found.more,
        }

    return _call(request, work)


@view_config(route_name="outputfile", request_method="GET")
def output_file(request):
    """The outputs extension: ``limit`` bytes of the output file ``name`` from ``offset``."""

    def work(s, c):
        name = request.params.get("name", "")
        offset = inputs.offset(_text(request, "offset", "0"), "offset")
        limit = inputs.whole_number(_text(request, "limit", str(1 << 20)), "limit", 1, 1 << 24)
        data = s.read_output_file(c, request.matchdict["id"], name, offset, limit)
        return Response(body=data, content_type="application/octet-stream")

    return _call(request, work)


@view_config(route_name="outputvars", request_method="GET")
def output_vars(request):
    def work(s, c):
        data = s.output_vars(c, request.matchdict["id"])
        return Response(body=data, content_type="text/plain", charset="utf-8")

    return _call(request, work)


@view_config(route_name="cancel", request_method="POST")
def cancel(request):
    return _call(request, _no_content(lambda s, c: s.cancel(c, request.matchdict["id"])))


@view_config(route_name="delete", request_method="DELETE")
def delete(request):
    return _call(request, _no_content(lambda s, c: s.delete(c, request.matchdict["id"])))


def _many(request) -> list[str]:
    ids = list(dict.fromkeys(_texts(request, "jobId")))
    if not ids:
        raise inputs.InputError("jobId", "must name at least one job")
    if len(ids) > MAX_BULK:
        raise inputs.InputError("jobId", f"must name at most {MAX_BULK} jobs at once")
    return ids


def _results(answers) -> dict:
    return {"results": {i: None if e is None else e.body() for i, e in answers.items()}}


@view_config(route_name="cancels", request_method="POST", renderer="json")
def cancel_many(request):
    """The bulk extension: cancel the jobs ``jobId`` (repeated), each answered on its own."""
    return _call(request, lambda s, c: _results(s.cancel_many(c, _many(request))))


@view_config(route_name="deletes", request_method="POST", renderer="json")
def delete_many(request):
    """The bulk extension: delete the jobs ``jobId`` (repeated) that have ended."""
    return _call(request, lambda s, c: _results(s.delete_many(c, _many(request))))


@view_config(route_name="list", request_method="GET", renderer="json")
def list_(request):
    return _call(request, lambda s, c: s.list(c))


@view_config(route_name="find", request_method="POST", renderer="json")
def find(request):
    return _call(request, lambda s, c: s.find(c, _texts(request, "clientRef")))


@view_config(route_name="version", request_method="GET", renderer="json")
def version(request):
    return {"version": "ijpweb", "extensions": list(EXTENSIONS)}


def make_app(global_config=None, **settings):
    """The WSGI app (``use = egg:ijpweb#batchserver``; see batchserver.ini)."""
    from ..batch.registry import FACTORIES
    from ..settings import aslist

    opts = {k[len("backend.") :]: v for k, v in settings.items() if k.startswith("backend.")}
    kind = opts.get("type", "local")
    if kind not in ("local", "slurm"):
        raise ValueError(f"backend.type must be local or slurm, not {kind!r}")
    if not aslist(settings.get("icat_urls", "")):
        raise ValueError("icat_urls: name the ICAT(s) whose sessions this server accepts")
    server = BatchServer(
        sa.create_engine(settings.get("database", "sqlite:///batchserver.sqlite")),
        FACTORIES[kind]("batchserver", opts, setting="backend."),
        portals=aslist(settings.get("portals", "")),
        executables=aslist(settings.get("executables", "")),
        programs_path=aslist(opts.get("path", "")),
    )
    auth = IcatSessions(
        aslist(settings["icat_urls"]),
        timeout=float(settings.get("icat_timeout", 10)),
        cache_seconds=float(settings.get("session_cache_seconds", CACHE_SECONDS)),
    )
    with Configurator(settings={}) as config:
        config.registry["batchserver"] = server
        config.registry["batchserver.auth"] = auth
        for name, pattern in (
            ("submit", "submit"), ("estimate", "estimate"), ("status", "status/{id}"),
            ("states", "states"), ("output", "output/{id}"), ("error", "error/{id}"),
            ("cancel", "cancel/{id}"), ("delete", "delete/{id}"), ("list", "list"),
            ("find", "find"), ("version", "version"), ("outputs", "outputs/{id}"),
            ("outputfile", "outputfile/{id}"), ("outputvars", "outputvars/{id}"),
            ("cancels", "cancels"), ("deletes", "deletes"),
        ):  # fmt: skip
            config.add_route(name, f"/batch/{pattern}")
        config.scan(__name__)
        return config.make_wsgi_app()


def main(argv: list[str] | None = None) -> int:
    """``ijp-batchserver INI``: the app of ``[app:main]`` under the ``[server:main]`` of INI."""
    import plaster

    parser = argparse.ArgumentParser(prog="ijp-batchserver", description=__doc__.splitlines()[0])
    parser.add_argument("ini", help="the settings file (see batchserver.ini)")
    args = parser.parse_args(argv)
    os.umask(0o077)  # its database and job directories are its own: 0600 files, 0700 directories
    loader = plaster.get_loader(args.ini, protocols=["wsgi"])
    loader.setup_logging()
    try:
        app = loader.get_wsgi_app()
    except (ValueError, KeyError) as e:
        print(f"ijp-batchserver: {args.ini}: {e}", file=sys.stderr)
        return 1
    server = loader.get_wsgi_server()
    print(f"ijp-batchserver: serving {args.ini}", flush=True)
    server(app)
    return 0
