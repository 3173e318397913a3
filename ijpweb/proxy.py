"""The portal at a URL prefix, behind a proxy it trusts, with the headers every response
needs: a small WSGI wrapper, the same under any WSGI server (waitress, gunicorn,
mod_wsgi). Standard library only; nothing here imports Pyramid.

**The prefix** (``ijp.prefix``, e.g. ``/ijp``; empty: the root) is where the portal is
mounted on its own server: a request for ``/ijp/jobs`` is routed as ``/jobs`` with
``SCRIPT_NAME = /ijp`` (so every URL Pyramid makes carries the prefix), ``/ijp``
redirects to ``/ijp/``, and any other path is a 404. A server that mounts the app itself
(``SCRIPT_NAME`` already the prefix, as mod_wsgi's ``WSGIScriptAlias /ijp`` does) is
left as it is.

**Trusted proxies** (``ijp.trusted_proxies``: ``unix``, addresses or networks, e.g.
``unix`` or ``10.0.0.5``). ``unix`` is a connection on the Unix socket the portal listens
on (waitress's ``unix_socket``, which only Apache can open: production.ini); it is told
apart by what the WSGI server says of its peer, which is no IP address (waitress says
``localhost``, gunicorn an empty ``REMOTE_ADDR``), never by anything the client sends. Only
a request whose connection comes from one of them may say, in
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

Whoever can open a connection from a trusted address *is* the proxy. A job that runs on
the portal's host with the host's network (the local backend gives it to job types that
need the catalog, and to all with ``network = true``) connects from 127.0.0.1: trusting a
loopback address makes every such job a proxy, free to say any client address (so the
per-address login lock never comes), https, host or prefix. Hence ``unix``: a socket in a
directory no job's sandbox shows (it binds no /run), which only Apache's group may open
(see :func:`loopback_warnings`, logged at start).

**Headers** on every response that does not set its own: ``X-Content-Type-Options:
nosniff``, ``Referrer-Policy: same-origin``, ``X-Frame-Options: DENY`` and
``Content-Security-Policy`` (:data:`CONTENT_SECURITY_POLICY`: scripts and styles from the
portal alone, nothing inline, and ``frame-ancestors 'none'``: no page of the portal may be
framed, so no click on it can be hijacked). A response that must be framed by the portal's own
pages (an interactive job's viewer, later) sets its own ``frame-ancestors 'self'``, for
itself alone.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

PREFIX_SETTING = "ijp.prefix"
PROXIES_SETTING = "ijp.trusted_proxies"
# ijp.trusted_proxies' word for a connection on the portal's Unix socket, and what WSGI
# servers give as REMOTE_ADDR for one: waitress "localhost" (its UnixWSGIServer), gunicorn
# the socket's empty peer name. Over TCP both give the peer's IP address, never these.
UNIX = "unix"
UNIX_PEERS = frozenset({"localhost", ""})
LOOPBACK = tuple(ipaddress.ip_network(n) for n in ("127.0.0.0/8", "::1/128", "::ffff:127.0.0.0/104"))
# a path of segments of letters, digits and - . _ ~ (no %, no ; and nothing a cookie path,
# a Location header or an Apache directive would have to quote)
_PREFIX = re.compile(r"(?:/[A-Za-z0-9._~-]+)+")
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
                   r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")  # fmt: skip
FORWARDED = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST", "HTTP_X_FORWARDED_PORT",
             "HTTP_X_FORWARDED_PREFIX", "HTTP_X_FORWARDED_SERVER", "HTTP_FORWARDED")  # fmt: skip
# The pages' Content-Security-Policy: scripts, styles, fonts and fetches from the portal's
# own origin only (htmx and the pages' own files under /static; no inline <script>, no
# style= attribute, no eval: htmx's indicator styles are off, ijp.css styles them), images
# also as data: and blob: URLs (previews), no plugins, forms and <base> only to the portal,
# and no framing. A response that needs another (a job's output file, a logo) sets its own.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)


def desktop_csp(ws_origin: str | None = None) -> str:
    """The viewer page's policy (an interactive job's desktop, ijpweb.views.desktop): the
    pages' own, and its websocket: to the page's own origin (``'self'``: the proxy behind
    the same host, Apache's mod_proxy_wstunnel), or to ``ws_origin`` (``ws://host:port``,
    the proxy on a port of its own: ijp.desktop.public_port). Nothing else may be fetched."""
    connect = "'self'" + (f" {ws_origin}" if ws_origin else "")
    return CONTENT_SECURITY_POLICY.replace(
        "default-src 'self';", f"default-src 'self'; connect-src {connect};"
    )


SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
)
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Trusted = Network | str  # a network, or UNIX


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


def parse_networks(text: str | None, setting: str = PROXIES_SETTING) -> tuple[Trusted, ...]:
    """``unix`` (:data:`UNIX`: the portal's Unix socket), addresses or networks
    (``127.0.0.1``, ``::1``, ``10.0.0.0/24``), separated by spaces, commas or new lines."""
    nets: list[Trusted] = []
    for word in re.split(r"[\s,]+", (text or "").strip()):
        if not word:
            continue
        if word.lower() == UNIX:
            nets.append(UNIX)
            continue
        try:
            nets.append(ipaddress.ip_network(word, strict=False))
        except ValueError:
            raise SettingError(
                f"{setting}: {word!r} is not an IP address or network (nor {UNIX}, the portal's Unix socket)"
            ) from None
    return tuple(dict.fromkeys(nets))


def loopback(trusted: Iterable[Trusted]) -> list[str]:
    """The trusted networks that hold a loopback address (127.0.0.1, ::1, or 127.0.0.1
    as an IPv4-mapped IPv6 address): those a process on the portal's own host connects from."""
    return [
        str(n) for n in trusted
        if n != UNIX and any(n.version == lo.version and n.overlaps(lo) for lo in LOOPBACK)
    ]  # fmt: skip


def loopback_warnings(trusted: Iterable[Trusted], backends: dict[str, dict[str, str]]) -> list[str]:
    """What to warn of at start: jobs on this host that could pose as the trusted proxy.
    ``backends`` are the ``ijp.batch.<name>.`` options by name. A local backend's jobs
    with the network (any whose type needs the catalog, all with ``network = true``, and
    every job with ``sandbox = none``) connect from a loopback address; a job with
    ``sandbox = none`` also sees the Unix socket (it runs as the portal's account with
    the whole file system). A SLURM node or a batch server's host cannot be seen from here:
    no job may run on a host whose address is trusted (docs/deploy.md)."""
    trusted = tuple(trusted)
    local = {name: opts for name, opts in backends.items() if opts.get("type", "").strip() == "local"}
    warnings = []
    lo = loopback(trusted)
    if lo and local:
        warnings.append(
            f"{PROXIES_SETTING} trusts {', '.join(lo)} (a loopback address, or a network holding one) while "
            f"the local backend(s) "
            f"{', '.join(sorted(local))} run jobs on this host with its network (every job whose type needs "
            "the catalog, or with network = true): such a job can connect to the portal from there and pose as "
            "the proxy, saying any client address in X-Forwarded-For (the per-address login lock then never "
            "comes), https, host or prefix. Serve the portal on a Unix socket only Apache can open and set "
            f"{PROXIES_SETTING} = {UNIX} (production.ini, docs/deploy.md)"
        )
    unsandboxed = sorted(n for n, o in local.items() if o.get("sandbox", "bwrap").strip().lower() == "none")
    if UNIX in trusted and unsandboxed:
        warnings.append(
            f"{PROXIES_SETTING} trusts the portal's Unix socket while the local backend(s) "
            f"{', '.join(unsandboxed)} run jobs unsandboxed (sandbox = none) as the portal's own account: "
            "such a job can open the socket and pose as the proxy (as it can read everything the portal can)"
        )
    return warnings


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

    def __init__(self, app, prefix: str = "", trusted: Iterable[Trusted] = ()):
        self.app = app
        self.prefix = parse_prefix(prefix)
        trusted = tuple(trusted)
        self.unix = UNIX in trusted  # the portal's Unix socket
        self.trusted = tuple(n for n in trusted if n != UNIX)

    def __getattr__(self, name):
        return getattr(self.__dict__["app"], name)

    def is_trusted(self, addr) -> bool:
        return addr is not None and any(addr in net for net in self.trusted)

    def peer_is_trusted(self, environ) -> bool:
        """Whether the connection comes from a trusted proxy: on the Unix socket (when
        ``unix`` is trusted) or from a trusted address."""
        remote = environ.get("REMOTE_ADDR")
        if remote is None:
            return False
        if self.unix and remote in UNIX_PEERS:
            return True
        return self.is_trusted(_address(remote))

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
        if not self.peer_is_trusted(environ):
            for key in FORWARDED:
                environ.pop(key, None)
            return None
        # the client: walk the X-Forwarded-For list from the right past trusted proxies
        hops = [h for h in environ.get("HTTP_X_FORWARDED_FOR", "").split(",") if h.strip()]
        client = None  # (the peer itself, trusted)
        while hops and (client is None or self.is_trusted(client)):
            hop = _address(hops.pop())
            if hop is None:
                break
            client = hop
        if client is not None:
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
