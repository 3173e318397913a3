"""Who is calling: the ICAT user behind a ``sessionId``, asked of ICAT's REST API
(``GET <icatUrl>/icat/session/<sessionId>``), which the embedded catalog and a real ICAT
both serve. Only the ICATs this server is configured to trust are asked: a caller
naming its own ICAT could otherwise claim to be anyone."""

from __future__ import annotations

import hashlib
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable

from ..ijpwords import IjpError


class IcatSessions:
    def __init__(self, icat_urls: Iterable[str], timeout: float = 10.0, cache_seconds: float = 60.0):
        self.icat_urls = frozenset(u.rstrip("/") for u in icat_urls)
        self.timeout = timeout
        self.cache_seconds = cache_seconds
        self._cache: dict[tuple[str, str], tuple[str, float]] = {}
        self._lock = threading.Lock()

    def user(self, session_id: str | None, icat_url: str | None) -> str:
        if not session_id:
            raise IjpError("ParameterException", "No sessionId was specified")
        if not icat_url:
            raise IjpError("ParameterException", "No icatUrl was specified")
        icat_url = icat_url.rstrip("/")
        if icat_url not in self.icat_urls:
            raise IjpError(
                "ParameterException", f"icatUrl {icat_url} is not an ICAT this batch server trusts"
            )
        # the cache is keyed by a hash: the session id is a credential
        key = (icat_url, hashlib.sha256(session_id.encode()).hexdigest())
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
        if hit and hit[1] > now:
            return hit[0]
        user = self._ask(icat_url, session_id)
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache = {k: v for k, v in self._cache.items() if v[1] > now}
            self._cache[key] = (user, now + self.cache_seconds)
        return user

    def _ask(self, icat_url: str, session_id: str) -> str:
        url = f"{icat_url}/icat/session/{urllib.parse.quote(session_id, safe='')}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp:  # noqa: S310 - configured URL
                return json.load(resp)["userName"]
        except urllib.error.HTTPError as e:
            try:
                body = json.load(e)
            except ValueError:
                body = {}
            if body.get("code") == "SESSION" or e.code == 403:
                raise IjpError(
                    "SessionException", body.get("message") or "the session is not valid"
                ) from None
            raise IjpError("ParameterException", f"ICAT at {icat_url} said {e.code}") from None
        except (OSError, ValueError, KeyError) as e:
            raise IjpError("InternalException", f"cannot reach ICAT at {icat_url}: {e}") from None
