"""Who is calling: the ICAT user behind a ``sessionId``, asked of ICAT's REST API
(``GET <icatUrl>/icat/session/<sessionId>``), which the embedded catalog and a real ICAT
both serve. Only the ICATs this server is configured to trust are asked: a caller
naming its own ICAT could otherwise claim to be anyone.

A session ICAT accepted is remembered for a few seconds (``session_cache_seconds``,
default 5, and never past the session's own end), so that a burst of calls asks ICAT
once; a session that has been logged out is refused within those seconds. A refusal is
never remembered, and it forgets the session at once."""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable

from ..ijpwords import IjpError

CACHE_SECONDS = 5.0
MAX_CACHE_SECONDS = 60.0


class IcatSessions:
    def __init__(self, icat_urls: Iterable[str], timeout: float = 10.0, cache_seconds: float = CACHE_SECONDS):
        if not 0 <= cache_seconds <= MAX_CACHE_SECONDS:
            raise ValueError(f"session_cache_seconds must be from 0 to {MAX_CACHE_SECONDS:g}")
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
        try:
            user, minutes = self._ask(icat_url, session_id)
        except IjpError:
            with self._lock:
                self._cache.pop(key, None)
            raise
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache = {k: v for k, v in self._cache.items() if v[1] > now}
            self._cache[key] = (user, now + min(self.cache_seconds, minutes * 60))
        return user

    def _ask(self, icat_url: str, session_id: str) -> tuple[str, float]:
        """The session's user and its remaining minutes (none said: no limit here)."""
        url = f"{icat_url}/icat/session/{urllib.parse.quote(session_id, safe='')}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp:  # noqa: S310 - configured URL
                body = json.load(resp)
            minutes = body.get("remainingMinutes")
            minutes = float(minutes) if isinstance(minutes, int | float) and minutes >= 0 else math.inf
            user = body["userName"]
            if not isinstance(user, str) or not user:
                raise ValueError("no userName")
            return user, minutes
        except urllib.error.HTTPError as e:
            try:
                body = json.load(e)
            except ValueError:
                body = {}
            body = body if isinstance(body, dict) else {}
            if body.get("code") == "SESSION" or e.code == 403:
                # (ICAT may quote the session id: a credential never goes into a message)
                said = str(body.get("message") or "the session is not valid").replace(session_id, "…")
                raise IjpError("SessionException", said) from None
            raise IjpError("ParameterException", f"ICAT at {icat_url} said {e.code}") from None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise IjpError("InternalException", f"cannot reach ICAT at {icat_url}: {e}") from None
