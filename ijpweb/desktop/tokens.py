"""Whether a websocket may open a job's desktop: its ``ijp_desktop`` token checked against
the database, as the desktop proxy does before the upgrade and every 30 s after it.

Pure: a SQLAlchemy session in, a :class:`Grant` or a :class:`Refused` out; no Pyramid.
The token is looked up by its SHA-256 only; nothing here logs it or puts it in a message.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import sqlalchemy as sa

from ..models.desktops import Desktop, DesktopToken
from ..models.jobs import Job, WebSession, as_utc, utcnow
from ..states import LIVE

COOKIE = "ijp_desktop"
MAX_COOKIES = 4  # ijp_desktop values of one request that are tried (one per path at most)
_TOKEN = re.compile(r"[A-Za-z0-9_-]{20,100}")

# what a refused websocket is told: general words, never the token, and the same for a
# job that does not exist, another user's job and a token of another job
NOT_YOURS = "this desktop link is not valid (or no longer): open the desktop again from its job's page"
CROSS_SITE = "a websocket from another site is refused"
ENDED = "this desktop has ended"
NOT_READY = "this desktop is not ready yet: open it again from its job's page"
NO_DESKTOP = "this job has no desktop"


class Refused(Exception):
    """The websocket may not open (or stay open): ``status`` (403/404) and a short text."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Grant:
    """What a valid token opens: the job's desktop, for its owner's login."""

    token_hash: str
    job_id: int
    owner: str
    web_session_id: str
    backend: str
    backend_job_id: str
    host: str
    port: int
    expires_at: datetime  # the token's (never later than the login's)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def cookie_tokens(header: str | None) -> list[str]:
    """The ``ijp_desktop`` values of a Cookie header that look like tokens (a browser sends
    the most specific path's first), at most :data:`MAX_COOKIES`."""
    found = []
    for part in (header or "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name == COOKIE and _TOKEN.fullmatch(value.strip('"')):
            found.append(value.strip('"'))
            if len(found) == MAX_COOKIES:
                break
    return found


def _hostname(netloc: str) -> str | None:
    try:
        return urlsplit("//" + netloc).hostname
    except ValueError:
        return None


_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str | None) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL or Origin header, as browsers serialize an
    origin (lower case, no default port, IPv6 in brackets); None for anything else (``null``,
    other schemes, a path, user info, a bad port). The token keeps the origin of the page that
    minted it, and the websocket's Origin must be the same: another port of the portal's host
    (another site to the portal, the same site to the cookie) opens nothing."""
    if not url or len(url) > 300:
        return None
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname or parts.username is not None:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.password is not None:
        return None
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    if port is None or port == _DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def same_site(origin: str | None, host: str | None) -> bool:
    """The Origin header's host name is the Host header's (the port may differ: the proxy on
    a port of its own, ``ijp.desktop.public_port``). No Origin is refused too: every
    browser sends one with a websocket."""
    if not origin or not host:
        return False
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return False
    mine = _hostname(host.strip())
    return mine is not None and parts.hostname == mine


def check_hash(
    db,
    digest: str,
    job_id: int,
    now: datetime | None = None,
    origin: str | None = None,
    *,
    recheck: bool = False,
) -> Grant:
    """The Grant of the token with this SHA-256 for ``job_id``'s desktop, or Refused: a
    token that is unknown, expired, of another job, of a login that has ended (or is not a
    browser login, or not the job owner's); a websocket whose ``origin`` (its Origin header)
    is not exactly the origin of the page that minted the token (scheme, host and port);
    then a desktop that has ended or is not ready. ``recheck``: a connected viewer's token
    again (its Origin was checked at the upgrade)."""
    now = now or utcnow()
    row = db.execute(
        sa.select(DesktopToken, WebSession, Job, Desktop)
        .join(WebSession, WebSession.id == DesktopToken.web_session_id)
        .join(Job, Job.id == DesktopToken.job_id)
        .outerjoin(Desktop, Desktop.job_id == Job.id)
        .where(DesktopToken.token_hash == digest)
    ).first()
    if row is None:
        raise Refused(403, NOT_YOURS)
    token, login, job, desktop = row
    if (
        token.job_id != job_id
        or as_utc(token.expires_at) <= now
        or login.kind != "web"
        or as_utc(login.expires_at) <= now
        or not (login.user_name == job.owner == token.owner)
    ):
        raise Refused(403, NOT_YOURS)
    if not recheck and (origin_of(origin) is None or origin_of(origin) != token.origin):
        raise Refused(403, CROSS_SITE)
    if desktop is None:  # (a batch job; the page never makes it a token)
        raise Refused(404, NO_DESKTOP)
    if desktop.state == "ended" or desktop.ended_reason or job.status not in LIVE:
        raise Refused(403, ENDED)
    if desktop.state != "ready" or not desktop.host or not desktop.port or not job.backend_job_id:
        raise Refused(403, NOT_READY)
    return Grant(
        token_hash=digest,
        job_id=job.id,
        owner=job.owner,
        web_session_id=login.id,
        backend=job.backend,
        backend_job_id=job.backend_job_id,
        host=desktop.host,
        port=int(desktop.port),
        expires_at=min(as_utc(token.expires_at), as_utc(login.expires_at)),
    )


def check(
    db, cookie_header: str | None, job_id: int, origin: str | None, now: datetime | None = None
) -> Grant:
    """The Grant of the first ``ijp_desktop`` cookie that opens ``job_id``'s desktop for a
    websocket from ``origin`` (its Origin header); Refused (the most telling refusal among
    the cookies) when none does."""
    refusal = Refused(403, NOT_YOURS)
    for token in cookie_tokens(cookie_header):
        try:
            return check_hash(db, token_hash(token), job_id, now, origin)
        except Refused as e:
            if e.args[0] != NOT_YOURS:
                refusal = e
    raise refusal


# --- the viewers of a desktop (the proxy counts them; the idle timeout reads them) ----------


def count_viewer(db, job_id: int, delta: int, now: datetime | None = None) -> int:
    """Desktop.viewers +1 (``delta`` > 0) or -1 (never below 0) by an UPDATE of the column
    itself, not a value read before (several proxy processes may count one desktop), and
    viewer_seen_at = now; returns the count after it."""
    now = now or utcnow()
    viewers = (
        Desktop.viewers + 1 if delta > 0 else sa.case((Desktop.viewers > 0, Desktop.viewers - 1), else_=0)
    )
    db.execute(sa.update(Desktop).where(Desktop.job_id == job_id).values(viewers=viewers, viewer_seen_at=now))
    return db.scalar(sa.select(Desktop.viewers).where(Desktop.job_id == job_id)) or 0


def still_viewed(db, grant: Grant, now: datetime | None = None) -> Grant:
    """The re-check of a connected viewer: the token still opens the desktop (Refused if
    not), and the desktop is marked seen by a viewer now."""
    now = now or utcnow()
    again = check_hash(db, grant.token_hash, grant.job_id, now, recheck=True)
    db.execute(sa.update(Desktop).where(Desktop.job_id == grant.job_id).values(viewer_seen_at=now))
    return again
