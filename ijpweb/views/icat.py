"""The ICAT REST face of the embedded catalog, at ICAT's standard paths (``/icat/...``),
so jobs use the same protocol against the embedded catalog and a real ICAT.

Clients authenticate with ``sessionId``, not cookies, so CSRF does not apply here.
"""

from __future__ import annotations

from pyramid.response import Response
from pyramid.view import view_config, view_defaults

from .. import inputs
from ..catalog import CatalogError
from ..catalog.icatrest import VERSION, IcatError, create_all, parse_entities, parse_login, search, translate
from ..security import catalog_login


def _error(request, e: IcatError) -> Response:
    request.tm.doom()
    resp = Response(json_body=e.body())
    resp.status = e.status
    if e.status in (429, 503):  # the user's queries at once, the time limit: try again
        resp.headers["Retry-After"] = "2"
    return resp


def _call(request, fn):
    try:
        return fn()
    except (IcatError, CatalogError, PermissionError, ValueError) as e:
        return _error(request, translate(e))


@view_defaults(require_csrf=False)
class IcatRest:
    def __init__(self, request):
        self.request = request
        self.catalog = request.catalog

    def _param(self, name: str) -> str:
        value = self.request.params.get(name)
        if not value:
            raise IcatError("BAD_PARAMETER", f"{name} is required")
        return inputs.text(value, name)

    def _sid(self) -> str:
        """The session id in the path (as text a query can bind)."""
        return inputs.text(self.request.matchdict["sid"], "sessionId")

    @view_config(route_name="icat.session", request_method="POST", renderer="json")
    def login(self):
        def go():
            plugin, creds = parse_login(self._param("json"))
            return {"sessionId": catalog_login(self.request, plugin, creds).session_id}

        return _call(self.request, go)

    @view_config(route_name="icat.session.one", request_method="GET", renderer="json")
    def session(self):
        return _call(
            self.request,
            lambda: {
                "userName": self.catalog.user_name(self._sid()),
                "remainingMinutes": self.catalog.remaining_minutes(self._sid()),
            },
        )

    @view_config(route_name="icat.session.one", request_method="PUT")
    def refresh(self):
        def go():
            self.catalog.refresh(self._sid())
            return Response(status=204)

        return _call(self.request, go)

    @view_config(route_name="icat.session.one", request_method="DELETE")
    def logout(self):
        def go():
            sid = self._sid()
            self.catalog.user_name(sid)  # an unknown session is an error, as in ICAT
            self.catalog.logout(sid)
            return Response(status=204)

        return _call(self.request, go)

    @view_config(route_name="icat.entityManager", request_method="GET", renderer="json")
    def search(self):
        return _call(
            self.request, lambda: search(self.catalog, self._param("sessionId"), self._param("query"))
        )

    @view_config(route_name="icat.entityManager", request_method="POST", renderer="json")
    def write(self):
        def go():
            sid = self._param("sessionId")
            self.catalog.user_name(sid)
            return create_all(self.catalog, sid, parse_entities(self._param("entities")))

        return _call(self.request, go)

    @view_config(route_name="icat.version", request_method="GET", renderer="json")
    def version(self):
        return {"version": VERSION}

    @view_config(route_name="icat.properties", request_method="GET", renderer="json")
    def properties(self):
        keys = {"db": [{"name": "username"}, {"name": "password", "hide": True}], "anon": []}
        return {
            "lifetimeMinutes": self.request.ijp.session_minutes,
            "maxEntities": self.request.ijp.catalog_max_entities,
            "authenticators": [{"mnemonic": a, "keys": keys[a]} for a in self.catalog.authenticators()],
        }
