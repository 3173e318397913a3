"""``ijp-batchserver``: the IJP batch protocol (``<url>/batch/...``) over a local or SLURM
backend, for a cluster's head node. A small WSGI app; ``ijp-batchserver INI`` serves it
with waitress. See batchserver.ini for its settings and core.py for the rules."""

from __future__ import annotations

import argparse
import logging
import sys

import sqlalchemy as sa
from pyramid.config import Configurator
from pyramid.response import Response
from pyramid.view import view_config

from ..batch import BatchError
from ..ijpwords import IjpError
from .auth import IcatSessions
from .core import EXTENSIONS, BatchServer

log = logging.getLogger(__name__)


def _params(request, *names):
    return [request.params.get(n) for n in names]


def _call(request, work):
    try:
        server: BatchServer = request.registry["batchserver"]
        sid, icat_url = _params(request, "sessionId", "icatUrl")
        caller = server.caller(request.registry["batchserver.auth"].user(sid, icat_url))
        return work(server, caller)
    except BatchError as e:
        err = IjpError("InternalException", str(e))
    except IjpError as e:
        err = e
    resp = Response(json_body=err.body())
    resp.status = err.status
    return resp


def _no_content(fn):
    def work(server, caller):
        fn(server, caller)
        return Response(status=204)

    return work


@view_config(route_name="submit", request_method="POST", renderer="json")
def submit(request):
    p = request.params
    return _call(
        request,
        lambda s, c: {
            "jobId": s.submit(
                c,
                p["sessionId"],
                p.get("executable", ""),
                p.getall("parameter"),
                interactive=p.get("interactive", "false").lower() == "true",
                family=p.get("family") or None,
                owner=p.get("owner") or None,
                client_ref=p.get("clientRef") or None,
                job_session=p.get("jobSessionId") or None,
            )
        },
    )


@view_config(route_name="estimate", request_method="GET", renderer="json")
def estimate(request):
    p = request.params
    return _call(
        request,
        lambda s, c: {"time": s.estimate(c, p.get("executable", ""), p.getall("parameter"), p.get("family"))},
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
            for i, st in s.states(c, request.params.getall("jobId")).items()
        }

    return _call(request, work)


def _read(request, stream):
    def work(s, c):
        try:
            offset = int(request.params.get("offset", 0))
            limit = min(int(request.params.get("limit", 1 << 20)), 1 << 24)
        except ValueError:
            raise IjpError("ParameterException", "offset and limit must be whole numbers") from None
        data = s.read(c, request.matchdict["id"], stream, offset, limit)
        return Response(body=data, content_type="application/octet-stream")

    return _call(request, work)


@view_config(route_name="output", request_method="GET")
def output(request):
    return _read(request, "stdout")


@view_config(route_name="error", request_method="GET")
def error(request):
    return _read(request, "stderr")


@view_config(route_name="cancel", request_method="POST")
def cancel(request):
    return _call(request, _no_content(lambda s, c: s.cancel(c, request.matchdict["id"])))


@view_config(route_name="delete", request_method="DELETE")
def delete(request):
    return _call(request, _no_content(lambda s, c: s.delete(c, request.matchdict["id"])))


@view_config(route_name="list", request_method="GET", renderer="json")
def list_(request):
    return _call(request, lambda s, c: s.list(c))


@view_config(route_name="find", request_method="POST", renderer="json")
def find(request):
    return _call(request, lambda s, c: s.find(c, request.params.getall("clientRef")))


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
        FACTORIES[kind]("batchserver", opts),
        portals=aslist(settings.get("portals", "")),
        executables=aslist(settings.get("executables", "")),
        programs_path=aslist(opts.get("path", "")),
    )
    auth = IcatSessions(
        aslist(settings["icat_urls"]),
        timeout=float(settings.get("icat_timeout", 10)),
        cache_seconds=float(settings.get("session_cache_seconds", 60)),
    )
    with Configurator(settings={}) as config:
        config.registry["batchserver"] = server
        config.registry["batchserver.auth"] = auth
        for name, pattern in (
            ("submit", "submit"), ("estimate", "estimate"), ("status", "status/{id}"),
            ("states", "states"), ("output", "output/{id}"), ("error", "error/{id}"),
            ("cancel", "cancel/{id}"), ("delete", "delete/{id}"), ("list", "list"),
            ("find", "find"), ("version", "version"),
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
