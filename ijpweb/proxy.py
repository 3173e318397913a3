"""The portal at a URL prefix, behind a proxy it trusts, with the headers every response
needs: a small WSGI wrapper, the same under any WSGI server (waitress, gunicorn,
mod_wsgi). Standard library only; nothing here imports Pyramid.

**The prefix** (``ijp.prefix``, e.g. ``/ijp``; empty: the root) is where the portal is
mounted on its own server: a request for ``/ijp/jobs`` is routed as ``/jobs`` with
``SCRIPT_NAME = /ijp`` (so every URL Pyramid makes carries the prefix), ``/ijp``
redirects to ``/ijp/``, and any other path is a 404. A server that mounts the app itself
(``SCRIPT_NAME`` already the prefix, as mod_wsgi's ``WSGIScriptAlias /ijp`` does) is
left as it is.

**Trusted proxies** (``ijp.trusted_proxies``: addresses or networks, e.g. ``127.0.0.1
::1``). Only a request whose connection comes from one of them may say, in
``X-Forwarded-*`` headers, what the client asked for: ``X-Forwarded-For`` (the client's
address, for ``REMOTE_ADDR``: the rightmost address that is not a trusted proxy),
``X-Forwarded-Proto`` (``http`` or ``https``: the scheme of the URLs made, and whether
cookies are ``Secure``), ``X-Forwarded-Host`` and ``X-Forwarded-Port`` (the host of the
URLs made), and ``X-Forwarded-Prefix`` (the public prefix, where the proxy shows the
portal: it replaces ``ijp.prefix`` in the URLs and cookie paths made). Where a header
holds a list (proxies append), the rightmost value counts: the one the nearest proxy
wrote. Values that are not what they should be are ignored. From anyone else these
headers (and ``Forwarded``) are removed before the portal sees the request: a forged
one changes nothing.

**Headers** on every response that does not set its own: ``X-Content-Type-Options:
nosniff``, ``Referrer-Policy: same-origin``, ``X-Frame-Options: DENY`` and
``Content-Security-Policy: frame-ancestors 'none'`` (no page of the portal may be framed,
so no click on it can be hijacked). A response that must be framed by the portal's own
pages (an interactive job's viewer, later) sets its own ``frame-ancestors 'self'``, for
itself alone.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

PREFIX_SETTING = "ijp.prefix"
PROXIES_SETTING = "ijp.trusted_proxies"
# a path of segments of letters, digits and - . _ ~ (no %, no ; and nothing a cookie path,
# a Location header or an Apache directive would have to quote)
_PREFIX = re.compile(r"(?:/[A-Za-z0-9._~-]+)+")
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
                   r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")  # fmt: skip
FORWARDED = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PORT",
             "HTTP_X_FORWARDED_PREFIX", "HTTP_X_FORWARDED_SERVER", "HTTP_FORWARDED")  # fmt: skip
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "frame-ancestors 'none'"),
)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class SettingError(ValueError):
    """A setting that cannot be used; the message names it."""


def valid_prefix(text: str) -> bool:
    """Empty, or a path of safe segments (none of them ``.`` or ``..``)."""
    if text == "":
        return True
    return _PREFIX.fullmatch(text) is not None and not {".", ".."} & set(text.split("/"))


def parse_prefix(text: str | None, setting: str = PREFIX_SETTING) -> str:
    """The prefix setting: empty (the root), or a path such as ``/ijp`` or ``/facility/ijp``:
    a leading slash, no trailing one, segments of letters, digits and ``- . _ ~``."""
    text = (text or "").strip()
    if text == "/":
        return ""
    if not valid_prefix(text):
        raise SettingError(
            f"{setting} must be empty (the root) or a path like /ijp: a leading slash, no trailing "
            f"slash, segments of letters, digits and - . _ ~ only; not {text!r}"
        )
    return text


def parse_networks(text: str | None, setting: str = PROXIES_SETTING) -> tuple[Network, ...]:
    """Addresses or networks (``127.0.0.1``, ``::1``, ``10.0.0.0/24``), separated by
    spaces, commas or new lines."""
    nets = []
    for word in re.split(r"[\s,]+", (text or "").strip()):
        if not word:
            continue
        try:
            nets.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            raise SettingError(f"{setting}: {word!r} is not an IP address or network") from None
    return tuple(nets)


def _address(text: str):
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def _last(value: str) -> str:
    return value.rsplit(",", 1)[-1].strip()


class Mount:
    """``app`` at ``prefix``, trusting ``X-Forwarded-*`` from ``trusted`` only. Attribute
    lookups go to ``app`` (e.g. a Pyramid router's ``registry``)."""

    def __init__(self, app, prefix: str = "", trusted: Iterable[Network] = ()):
        self.app = app
        self.prefix = parse_prefix(prefix)
        self.trusted = tuple(trusted)

    def __getattr__(self, name):
        return getattr(self.__dict__["app"], name)

    def is_trusted(self, addr) -> bool:
        return addr is not None and any(addr in net for net in self.trusted)

    def __call__(self, environ, start_response):
        def with_headers(status, headers, exc_info=None):
            have = {name.lower() for name, _value in headers}
            headers = list(headers) + [(k, v) for k, v in SECURITY_HEADERS if k.lower() not in have]
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        public = self._forwarded(environ)
        script = environ.get("SCRIPT_NAME", "").rstrip("/")
        path = environ.get("PATH_INFO", "")
        if self.prefix and script != self.prefix:
            if path == self.prefix:
                where = public if public is not None else script + self.prefix
                return self._redirect(environ, with_headers, where)
            if not path.startswith(self.prefix + "/"):
                body = f"Not found: the portal is at {self.prefix if public is None else public}/\n".encode()
                with_headers("404 Not Found", [("Content-Type", "text/plain; charset=utf-8"),
                                               ("Content-Length", str(len(body)))])  # fmt: skip
                return [body]
            script, path = script + self.prefix, path[len(self.prefix) :]
        if public is not None:
            script = public
        environ["SCRIPT_NAME"], environ["PATH_INFO"] = script, path
        return self.app(environ, with_headers)

    def _redirect(self, environ, start_response, prefix: str):
        query = environ.get("QUERY_STRING", "")
        location = prefix + "/" + (f"?{query}" if query else "")
        if not all(" " < c <= "~" for c in location):  # (a query that cannot go in a header as it is)
            location = prefix + "/"
        start_response("301 Moved Permanently", [("Location", location), ("Content-Length", "0")])
        return [b""]

    def _forwarded(self, environ) -> str | None:
        """Apply a trusted proxy's X-Forwarded-* headers to ``environ`` (or drop untrusted
        ones); return the public prefix a trusted proxy gave, if any."""
        peer = _address(environ.get("REMOTE_ADDR", ""))
        if not self.is_trusted(peer):
            for key in FORWARDED:
                environ.pop(key, None)
            return None
        # the client: walk the X-Forwarded-For list from the right past trusted proxies
        hops = [h for h in environ.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
        client = peer
        while hops and self.is_trusted(client):
            hop = _address(hops.pop())
            if hop is None:
                break
            client = hop
        if client != peer:
            environ["ijp.proxy_addr"] = environ.get("REMOTE_ADDR")
            environ["REMOTE_ADDR"] = str(client)
        proto = _last(environ.get("HTTP_X_FORWARDED_PROTO", "")).lower()
        if proto in ("http", "https"):
            environ["wsgi.url_scheme"] = proto
            environ["HTTPS"] = "on" if proto == "https" else "off"
        host = _last(environ.get("HTTP_X_FORWARDED_HOST", ""))
        if host and _HOST.fullmatch(host):
            environ["HTTP_HOST"] = host
        port = _last(environ.get("HTTP_X_FORWARDED_PORT", ""))
        if port.isascii() and port.isdigit() and 0 < int(port) < 65536:
            name = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
            if not re.search(r":[0-9]+$", name):
                default = {"http": "80", "https": "443"}.get(environ.get("wsgi.url_scheme", ""))
                environ["HTTP_HOST"] = name if str(int(port)) == default else f"{name}:{int(port)}"
            environ["SERVER_PORT"] = str(int(port))
        if "HTTP_X_FORWARDED_PREFIX" in environ:
            given = _last(environ["HTTP_X_FORWARDED_PREFIX"])
            given = "" if given == "/" else given
            if valid_prefix(given):
                return given
        return None
