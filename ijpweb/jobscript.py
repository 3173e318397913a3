"""Helpers for job scripts: the IJP arguments, and clients for ICAT and IDS as the user.

No Pyramid and no database: a job imports this on the batch host::

    from ijpweb.jobscript import IjpArgumentParser, icat_client, ids_client

    parser = IjpArgumentParser(description="...")
    parser.add_argument("--filename", required=True)
    args = parser.parse_args()          # args.datasetIds == [4, 5], args.sessionId, ...
    icat = icat_client(args)            # ICAT REST, as the user
    icat.search("SELECT df FROM Datafile df WHERE df.dataset.id = 4")
    ids = ids_client(args)              # python-icat's IDSClient

The session id comes from ``--sessionId`` or, as the portal passes it (so that ``ps``
never shows it), from the environment variable ``IJP_SESSION_ID``. The URLs are the bare
prefixes the original IJP passed: ``/icat`` and ``/ids`` are appended here.
"""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

SESSION_ENV = "IJP_SESSION_ID"
TIMEOUT = 60


def _ids(text: str | None) -> list[int]:
    if not text:
        return []
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of ids: {text!r}") from None


class IjpArgumentParser(argparse.ArgumentParser):
    """argparse with the IJP's own options predefined (the original's IjpOptionParser)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        ijp = self.add_argument_group("passed by the ICAT Job Portal")
        ijp.add_argument("--sessionId", help=f"the user's ICAT session (default: ${SESSION_ENV})")
        ijp.add_argument("--icatUrl", help="the ICAT server, e.g. https://icat.example.org")
        ijp.add_argument("--idsUrl", help="the IDS server")
        ijp.add_argument("--ijpUrl", help="the portal, for provenance")
        ijp.add_argument("--ijpJobId", type=int, help="this job's id in the portal")
        ijp.add_argument("--datasetIds", type=_ids, default=[], help="comma-separated dataset ids")
        ijp.add_argument("--datafileIds", type=_ids, default=[], help="comma-separated datafile ids")

    def parse_args(self, args=None, namespace=None):
        ns = super().parse_args(args, namespace)
        ns.sessionId = ns.sessionId or os.environ.get(SESSION_ENV)
        return ns


class IcatError(Exception):
    """An error ICAT reported: ``code`` is ICAT's (SESSION, BAD_PARAMETER, ...)."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class IcatRest:
    """The ICAT REST API (``<url>/icat/...``) with one session."""

    def __init__(self, url: str, session_id: str):
        if not url or not session_id:
            raise ValueError("an ICAT URL and a session id are needed (did the job type ask for them?)")
        self.base = url.rstrip("/") + "/icat/"
        self.session_id = session_id

    def _call(self, method: str, path: str, params: dict[str, str]) -> Any:
        data = None
        url = self.base + path
        if method == "GET":
            url += "?" + urllib.parse.urlencode(params)
        else:
            data = urllib.parse.urlencode(params).encode()
        req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - http(s) URL given by the portal
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:  # noqa: S310
                body = resp.read()
        except urllib.error.HTTPError as e:
            try:
                err = json.loads(e.read())
                raise IcatError(err.get("code", "INTERNAL"), err.get("message", str(e))) from None
            except ValueError:
                raise IcatError("INTERNAL", f"HTTP {e.code} from {self.base}") from None
        return json.loads(body) if body else None

    def search(self, query: str) -> list:
        """A JPQL (or concise) query as the user: entities as dicts, or values."""
        results = self._call("GET", "entityManager", {"sessionId": self.session_id, "query": query})
        return [next(iter(r.values())) if isinstance(r, dict) and len(r) == 1 else r for r in results]

    def create(self, entity: str, fields: dict) -> int:
        """Create one object (with inline children); return its id."""
        entities = json.dumps({entity: fields})
        return self._call("POST", "entityManager", {"sessionId": self.session_id, "entities": entities})[0]

    def user_name(self) -> str:
        return self._call("GET", f"session/{self.session_id}", {})["userName"]


def icat_client(args) -> IcatRest:
    return IcatRest(args.icatUrl, args.sessionId)


def ids_client(args):
    """python-icat's IDSClient for ``--idsUrl`` and the user's session."""
    from icat.ids import IDSClient

    if not args.idsUrl or not args.sessionId:
        raise ValueError("an IDS URL and a session id are needed (did the job type ask for them?)")
    return IDSClient(args.idsUrl.rstrip("/") + "/ids", sessionId=args.sessionId)
