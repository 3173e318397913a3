"""The portal's settings, parsed once from the ini into a typed object.

Secrets may come from the environment instead of the ini: ``IJP_AUTH_SECRET`` for
``auth.secret``, ``IJP_DATABASE_URL`` for ``sqlalchemy.url`` and ``IJP_IDS_KEY`` for
``ijp.ids.key`` (the embedded IDS's key, see :func:`ijpweb.catalog.ids.server_key`).

``ijp.deployment = production`` (production.ini) makes the login secret required: every
portal process must sign and check login cookies with the same one, so that logins work
in all of them and survive a restart. In development a missing secret is made up at
start (logins then end with the process, and the log says so once).
"""

from __future__ import annotations

import configparser
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from pyramid.settings import asbool, aslist  # noqa: F401  (re-exported for backends)

from . import branding as _branding
from .planning import MAX_VALUE_LENGTH, MAX_VALUE_LENGTH_LIMIT
from .proxy import SettingError, Trusted, parse_networks, parse_prefix

# the most a request's body may carry but an upload's (ijp.max_form_bytes): the largest the
# portal's own forms and JSON send is far less (a submission of 200 datafiles with options,
# a bulk action of 200 ids: a few KB); an ICAT create of ijp.catalog.max_writes (1,000)
# entities with long text values, form-encoded, a few MB
MAX_FORM_BYTES = 16 << 20

ENVIRONMENT = {
    "auth.secret": "IJP_AUTH_SECRET",
    "sqlalchemy.url": "IJP_DATABASE_URL",
    "ijp.ids.key": "IJP_IDS_KEY",
}


@dataclass(frozen=True)
class Settings:
    jobtypes_dir: str
    datasettypes_dir: str
    url: str
    icat_url: str
    ids_url: str
    auth_secret: str
    staff: frozenset[str]
    session_minutes: int
    scheduler_enabled: bool
    harvest_seconds: float
    reload_seconds: float
    families_file: str = ""
    estimate_seconds: float = 5.0
    catalog: str = "embedded"  # embedded | icat
    catalog_timeout: float = 10.0
    filestore: str = "var/files"
    ids_key: str = ""  # signs datafile locations; or else
    ids_key_file: str = ""  # a file holding it, created 0600 on first use
    anon: bool = False
    root_users: frozenset[str] = frozenset()
    # what one catalog query may cost (the embedded catalog; see the README)
    catalog_max_entities: int = 10_000
    catalog_query_seconds: float = 5.0
    catalog_query_max_length: int = 20_000
    catalog_query_max_depth: int = 40
    catalog_query_max_joins: int = 20
    catalog_restrict_joins: bool = False
    catalog_max_writes: int = 1_000  # entities one create may hold
    catalog_user_queries: int = 2  # catalog statements one user may run at once (per process)
    max_value_length: int = MAX_VALUE_LENGTH  # characters of one option value or argument
    # login throttling (every login face): failures that lock a user name / an address
    # (0: not counted) within window_minutes, for lock_minutes
    login_max_failures: int = 5
    login_max_address_failures: int = 20
    login_window_minutes: float = 15.0
    login_lock_minutes: float = 15.0
    # live API tokens one user may hold (0: no cap); a login past it is refused (429)
    api_max_tokens: int = 50
    # live IDS prepared ids one catalog user may hold (0: no cap); a prepareData past it: 400
    ids_max_prepared: int = 100
    # data in and out (views/data.py): the most one upload may carry (all its files), and
    # the most files one download zip may hold
    upload_max_bytes: int = 1_000_000_000
    # the most any other request's body may carry (a form, JSON, an ICAT create): refused
    # (413) before any of it is read (views/bodies.py)
    max_form_bytes: int = MAX_FORM_BYTES
    zip_max_files: int = 10_000
    backends: dict[str, dict[str, str]] = field(default_factory=dict)
    # where the portal is mounted ('' the root, or e.g. /ijp), and the proxies whose
    # X-Forwarded-* headers it believes (ijpweb.proxy)
    prefix: str = ""
    trusted_proxies: tuple[Trusted, ...] = ()  # networks, and proxy.UNIX: the portal's Unix socket
    # the portal's own Unix sockets (ijp.sockets, one a line, and every unix_socket of the
    # [server:...] sections of the ini file it started from): no job's sandbox may show them
    sockets: tuple[str, ...] = ()
    # development | production (production refuses to start without a shared auth.secret)
    deployment: str = "development"
    # True when auth.secret was not given and was made up for this process alone
    auth_secret_ephemeral: bool = False
    # what the advisory locks of the background work are named by (several portals in
    # one PostgreSQL database need different ones; different databases never clash)
    scheduler_namespace: str = "ijpweb"
    # the facility's name, logo and accent colour (ijp.site.*: ijpweb.branding)
    branding: _branding.Branding = field(default_factory=_branding.Branding)
    # interactive jobs' desktops (ijp.desktop.*, and each backend's max_interactive/desktop_bind)
    desktop: DesktopSettings = field(default_factory=lambda: DesktopSettings())


# an interactive job's desktop size (WxH): the default, and the least and most allowed
DESKTOP_GEOMETRY = (1280, 800)
DESKTOP_MIN_GEOMETRY = (640, 480)
DESKTOP_MAX_GEOMETRY = (3840, 2160)
_GEOMETRY = re.compile(r"([0-9]{1,5})x([0-9]{1,5})")
_SBATCH_TIME = re.compile(r"(?:([0-9]+)-)?([0-9]+)(?::([0-9]{2}))?(?::([0-9]{2}))?")


def sbatch_seconds(text: str) -> int:
    """A time in sbatch's formats, in seconds: ``minutes``, ``minutes:seconds``,
    ``hours:minutes:seconds``, ``days-hours``, ``days-hours:minutes``,
    ``days-hours:minutes:seconds``. ValueError when it is none of them."""
    m = _SBATCH_TIME.fullmatch(text.strip())
    if not m or len(text.strip()) > 20:
        raise ValueError(f"{text!r} is not a time such as 90 (minutes) or 8:00:00")
    days, first, second, third = m.groups()
    if days is None:
        if third is not None:  # h:m:s
            return int(first) * 3600 + int(second) * 60 + int(third)
        if second is not None:  # m:s
            return int(first) * 60 + int(second)
        return int(first) * 60  # minutes
    hours = int(first) * 3600 + int(second or 0) * 60 + int(third or 0)
    return int(days) * 86400 + hours


def parse_geometry(text: str) -> tuple[int, int]:
    """A desktop size ``WxH`` (e.g. ``1280x800``), clamped to 640x480 .. 3840x2160;
    ValueError when it is not two whole numbers joined by an x."""
    m = _GEOMETRY.fullmatch(text.strip()) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"geometry must be WIDTHxHEIGHT in pixels, such as 1280x800, not {str(text)[:40]!r}")
    (lo_w, lo_h), (hi_w, hi_h) = DESKTOP_MIN_GEOMETRY, DESKTOP_MAX_GEOMETRY
    return min(max(int(m[1]), lo_w), hi_w), min(max(int(m[2]), lo_h), hi_h)


def clamp_geometry(text: str | None) -> str:
    """The geometry a submission keeps: what was given, clamped; the default when nothing
    or something unreadable was given (the web form's hidden field, filled by forms.js)."""
    try:
        width, height = parse_geometry(text or "")
    except ValueError:
        width, height = DESKTOP_GEOMETRY
    return f"{width}x{height}"


def _host_port(key: str, text: str) -> tuple[str, int]:
    host, sep, port = text.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 1 <= int(port) <= 65535:
        raise SettingError(f"{key} must be HOST:PORT such as 127.0.0.1:6544, not {text!r}")
    return host, int(port)


@dataclass(frozen=True)
class DesktopSettings:
    """Interactive jobs' desktops (``ijp.desktop.*``, README "Interactive jobs")."""

    time_limit: int = 8 * 3600  # seconds a session may last when its job type says nothing
    ready_seconds: int = 60  # how long the VNC server has to answer before the job fails
    idle_minutes: float = 30.0  # no viewer this long: the session ends (0: never)
    idle_warning_minutes: float = 5.0  # the job page warns this long before
    max_per_user: int = 2  # live interactive jobs one user may have (0: no cap)
    proxy: str = "embedded"  # embedded (a thread of the portal) | external (ijp-desktop-proxy)
    listen_host: str = "127.0.0.1"  # where the websocket proxy listens
    listen_port: int = 6544
    public_port: int | None = None  # None: the page's own origin (behind Apache)
    # per batch backend: live desktop sessions it runs at once, and the address its VNC
    # servers bind (ijp.batch.<name>.max_interactive, ijp.batch.<name>.desktop_bind)
    max_interactive: Mapping[str, int] = field(default_factory=dict)
    binds: Mapping[str, str] = field(default_factory=dict)

    def spec(self, resources: Mapping[str, str]) -> dict:
        """An interactive job's ``JobSpec.desktop`` from its submission's resources: the
        time limit (the job type's ``<resources time>``, else ``ijp.desktop.time_limit``),
        the geometry the submission kept (``resources["geometry"]``, clamped) and the
        ready timeout. The backend adds its own ``bind``."""
        try:
            limit = sbatch_seconds(resources["time"]) if resources.get("time") else self.time_limit
        except ValueError:
            limit = self.time_limit
        return {
            "time_limit": limit or self.time_limit,
            "geometry": clamp_geometry(resources.get("geometry")),
            "ready_timeout": self.ready_seconds,
        }


def parse_desktop(raw: Mapping[str, str], backend_names) -> DesktopSettings:
    """``ijp.desktop.*`` and each backend's ``max_interactive`` / ``desktop_bind``;
    SettingError naming the key of the first that cannot be used."""
    key = "ijp.desktop.time_limit"
    try:
        limit = sbatch_seconds(raw.get(key, "8:00:00"))
    except ValueError:
        limit = 0
    if not 60 <= limit <= 365 * 86400:
        raise SettingError(f"{key} must be a time such as 8:00:00 (hours:minutes:seconds), at least a minute")
    public = raw.get("ijp.desktop.public_port", "").strip()
    if public and (not public.isdigit() or not 1 <= int(public) <= 65535):
        raise SettingError(f"ijp.desktop.public_port must be empty or a port number, not {public!r}")
    host, port = _host_port("ijp.desktop.listen", raw.get("ijp.desktop.listen", "127.0.0.1:6544"))
    try:
        numbers = {
            "ready": _number(raw, "ijp.desktop.ready_seconds", 60, 5, 3600),
            "idle": _number(raw, "ijp.desktop.idle_minutes", 30, 0, 7 * 24 * 60, float),
            "warning": _number(raw, "ijp.desktop.idle_warning_minutes", 5, 0, 24 * 60, float),
            "per_user": _number(raw, "ijp.desktop.max_per_user", 2, 0, 10_000),
            "backends": {
                name: _number(raw, f"ijp.batch.{name}.max_interactive", 4, 0, 10_000)
                for name in backend_names
            },
        }
        proxy = _choice(raw, "ijp.desktop.proxy", ("embedded", "external"))
    except ValueError as e:
        raise SettingError(str(e)) from None
    binds = {}
    for name in backend_names:
        bind = raw.get(f"ijp.batch.{name}.desktop_bind", "127.0.0.1").strip()
        if not bind or len(bind) > 255 or not all(c.isalnum() or c in ".-:_" for c in bind):
            raise SettingError(f"ijp.batch.{name}.desktop_bind must be an address or host name, not {bind!r}")
        binds[name] = bind
    return DesktopSettings(
        time_limit=limit,
        ready_seconds=numbers["ready"],
        idle_minutes=numbers["idle"],
        idle_warning_minutes=numbers["warning"],
        max_per_user=numbers["per_user"],
        proxy=proxy,
        listen_host=host,
        listen_port=port,
        public_port=int(public) if public else None,
        max_interactive=numbers["backends"],
        binds=binds,
    )


MIN_SECRET_LENGTH = 32  # characters of auth.secret in production


def check_serving(s: Settings) -> None:
    """Raise SettingError where these settings must not serve the portal: in production,
    without the login secret every portal process shares (``ijp-admin``'s commands, which
    sign no logins, do not ask for it)."""
    if s.deployment == "production" and (s.auth_secret_ephemeral or len(s.auth_secret) < MIN_SECRET_LENGTH):
        given = "" if s.auth_secret_ephemeral else f" (the one given has {len(s.auth_secret)})"
        raise SettingError(
            f"ijp.deployment = production needs the login secret that every portal process "
            f"shares: set IJP_AUTH_SECRET (or auth.secret) to at least {MIN_SECRET_LENGTH} random "
            f"characters, e.g. the output of: python3 -c 'import secrets; print(secrets.token_hex(32))'"
            + given
        )


def apply_environment(settings: dict) -> None:
    for key, var in ENVIRONMENT.items():
        if os.environ.get(var):
            settings[key] = os.environ[var]


def _choice(raw: Mapping[str, str], key: str, allowed: tuple[str, ...]) -> str:
    value = raw.get(key, allowed[0]).strip()
    if value not in allowed:
        raise ValueError(f"{key} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def _max_value_length(raw: Mapping[str, str]) -> int:
    """``ijp.max_value_length``: the longest option value or argument, in characters (at
    most 4 bytes each in UTF-8, so the upper limit keeps one below the kernel's 128 KiB
    per argument)."""
    text = raw.get("ijp.max_value_length", str(MAX_VALUE_LENGTH)).strip()
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_VALUE_LENGTH_LIMIT:
        raise ValueError(
            f"ijp.max_value_length must be a whole number from 1 to {MAX_VALUE_LENGTH_LIMIT}, not {text!r}"
        )
    return int(text)


def _number(raw: Mapping[str, str], key: str, default, low, high, kind=int):
    """A numeric setting within [low, high], or ValueError naming it."""
    text = str(raw.get(key, default)).strip()
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise ValueError(f"{key} must be a number from {low} to {high}, not {text!r}")
    return value


def parse_sockets(text: str) -> tuple[str, ...]:
    """``ijp.sockets``: absolute paths of Unix sockets, one a line (a path may hold spaces)."""
    out = []
    for line in text.splitlines():
        path = line.strip()
        if not path:
            continue
        if not path.startswith("/") or "\0" in path:
            raise SettingError(f"ijp.sockets: absolute paths of Unix sockets, one a line; not {path!r}")
        out.append(path)
    return tuple(dict.fromkeys(out))


def server_sockets(ini_file: str | None) -> list[str]:
    """The ``unix_socket`` of every ``[server:...]`` section of the ini file a portal process
    started from (each of its processes listens on one): the portal's own sockets, so that
    no job's sandbox shows them whichever process builds it. ``%(here)s`` is the file's
    directory, as PasteDeploy reads it."""
    if not ini_file:
        return []
    parser = configparser.RawConfigParser(strict=False)
    try:
        parser.read(ini_file, encoding="utf-8")
    except (OSError, configparser.Error, UnicodeDecodeError):
        return []  # pserve read it already; whatever it could not read it did not serve
    here = os.path.dirname(os.path.abspath(ini_file))
    out = []
    for section in parser.sections():
        if section.startswith("server:") and parser.has_option(section, "unix_socket"):
            path = parser.get(section, "unix_socket").replace("%(here)s", here).strip()
            if path:
                out.append(os.path.join(here, path))  # (an absolute path stays as it is)
    return out


def server_threads(ini_file: str | None) -> int:
    """The most request ``threads`` of any ``[server:...]`` section of the ini file a portal
    process started from (waitress's default, 4, where a section does not say); 0 when
    there is no such file or section (an app not started by pserve)."""
    if not ini_file:
        return 0
    parser = configparser.RawConfigParser(strict=False)
    try:
        parser.read(ini_file, encoding="utf-8")
    except (OSError, configparser.Error, UnicodeDecodeError):
        return 0
    most = 0
    for section in parser.sections():
        if section.startswith("server:"):
            text = parser.get(section, "threads", fallback="4").strip()
            most = max(most, int(text) if text.isdigit() else 0)
    return most


# Database connections a portal process uses besides its request threads: on PostgreSQL
# one held for the background work's advisory locks (ijpweb.leaders), and the scheduler's
# tasks (campaign, submit, harvest, keep-alive, purge), each holding one while it runs:
# usually one or two of them at once, all five at worst.
LOCK_CONNECTIONS = 1
BACKGROUND_TASKS = 5
USUAL_BACKGROUND = LOCK_CONNECTIONS + 1
POOL_DEFAULTS = {"pool_size": 5, "max_overflow": 10}  # SQLAlchemy's own


def pool_problems(raw: Mapping[str, str], threads: int, prefix: str = "sqlalchemy.") -> list[str]:
    """What is wrong with the database pool (``sqlalchemy.pool_size``, ``max_overflow``) for
    a portal process with ``threads`` request threads, each message naming the setting:
    connections opened and closed for every request under load where the pool keeps fewer
    than the threads and the usual background work use, and requests that wait for a
    connection (then fail after ``pool_timeout``) where pool and overflow together are
    fewer than the threads and all the background work at once. docs/capacity.md."""
    if threads <= 0:
        return []
    try:
        size = int(raw.get(prefix + "pool_size", POOL_DEFAULTS["pool_size"]))
        overflow = int(raw.get(prefix + "max_overflow", POOL_DEFAULTS["max_overflow"]))
    except ValueError:
        return [f"{prefix}pool_size and {prefix}max_overflow must be whole numbers"]
    problems = []
    if size < threads + USUAL_BACKGROUND:
        problems.append(
            f"{prefix}pool_size = {size} keeps fewer connections than the {threads} request threads and the "
            f"background work usually use ({threads + USUAL_BACKGROUND}): under load connections are opened and "
            f"closed for every request; set it to at least {threads + USUAL_BACKGROUND} (docs/capacity.md)"
        )
    most = threads + LOCK_CONNECTIONS + BACKGROUND_TASKS
    if overflow >= 0 and size + overflow < most:
        problems.append(
            f"{prefix}pool_size + {prefix}max_overflow = {size + overflow} is fewer than the {threads} request "
            f"threads and all the background work at once ({most}): requests would wait for a connection; "
            f"raise {prefix}max_overflow (docs/capacity.md)"
        )
    return problems


def public_url(raw: Mapping[str, str], prefix: str) -> str:
    """``ijp.url``, the portal's public URL that jobs are given (``--ijpUrl``, and the
    embedded catalog's ``--icatUrl``/``--idsUrl``): as written when it has a path
    (``https://host/ijp``), else with the prefix added (``https://host`` + ``/ijp``)."""
    url = raw.get("ijp.url", "http://127.0.0.1:6543").strip().rstrip("/")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise SettingError(f"ijp.url must be an http(s) URL such as https://host{prefix}, not {url!r}")
    return url if parts.path else url + prefix


def parse(raw: Mapping[str, str]) -> Settings:
    backends: dict[str, dict[str, str]] = {}
    for name in aslist(raw.get("ijp.batch.backends", "local")):
        prefix = f"ijp.batch.{name}."
        backends[name] = {k[len(prefix) :]: v for k, v in raw.items() if k.startswith(prefix)}
        backends[name].setdefault("type", "local")
    mount = parse_prefix(raw.get("ijp.prefix", ""))
    url = public_url(raw, mount)
    deployment = _choice(raw, "ijp.deployment", ("development", "production"))
    secret = (raw.get("auth.secret") or "").strip()
    ephemeral = not secret
    if ephemeral:
        # Logins then last only as long as this process (config.includeme logs it, and
        # refuses it in production: check_serving).
        secret = secrets.token_hex(32)
    namespace = raw.get("ijp.scheduler.namespace", "ijpweb").strip()
    if not namespace or not namespace.isprintable():
        raise SettingError(f"ijp.scheduler.namespace must be a non-empty name, not {namespace!r}")
    return Settings(
        jobtypes_dir=raw.get("ijp.jobtypes_dir", "jobtypes"),
        datasettypes_dir=raw.get("ijp.datasettypes_dir", "datasettypes"),
        url=url,
        icat_url=raw.get("ijp.icat_url", url).rstrip("/"),
        ids_url=raw.get("ijp.ids_url", url).rstrip("/"),
        auth_secret=secret,
        staff=frozenset(aslist(raw.get("ijp.staff", ""))),
        session_minutes=int(raw.get("ijp.session_minutes", 120)),
        scheduler_enabled=asbool(raw.get("ijp.scheduler.enabled", "false")),
        harvest_seconds=float(raw.get("ijp.harvest.seconds", 2)),
        reload_seconds=float(raw.get("ijp.reload.seconds", 2)),
        backends=backends,
        families_file=raw.get("ijp.families_file", ""),
        estimate_seconds=float(raw.get("ijp.batch.estimate_seconds", 5)),
        catalog=_choice(raw, "ijp.catalog", ("embedded", "icat")),
        catalog_timeout=float(raw.get("ijp.catalog.timeout", 10)),
        filestore=raw.get("ijp.filestore", "var/files"),
        ids_key=raw.get("ijp.ids.key", "").strip(),
        ids_key_file=raw.get("ijp.ids.key_file", "").strip(),
        anon=asbool(raw.get("ijp.catalog.anon", "false")),
        root_users=frozenset(aslist(raw.get("ijp.catalog.root_users", ""))),
        catalog_max_entities=_number(raw, "ijp.catalog.max_entities", 10_000, 1, 10_000_000),
        catalog_query_seconds=_number(raw, "ijp.catalog.query_seconds", 5, 0, 3600, float),
        catalog_query_max_length=_number(raw, "ijp.catalog.query_max_length", 20_000, 100, 1_000_000),
        catalog_query_max_depth=_number(raw, "ijp.catalog.query_max_depth", 40, 1, 100),
        catalog_query_max_joins=_number(raw, "ijp.catalog.query_max_joins", 20, 0, 60),
        catalog_restrict_joins=asbool(raw.get("ijp.catalog.restrict_joins", "false")),
        catalog_max_writes=_number(raw, "ijp.catalog.max_writes", 1_000, 1, 10_000_000),
        catalog_user_queries=_number(raw, "ijp.catalog.user_queries", 2, 0, 1000),
        max_value_length=_max_value_length(raw),
        login_max_failures=_number(raw, "ijp.login.max_failures", 5, 0, 1000),
        login_max_address_failures=_number(raw, "ijp.login.max_address_failures", 20, 0, 100_000),
        login_window_minutes=_number(raw, "ijp.login.window_minutes", 15, 0.1, 7 * 24 * 60, float),
        login_lock_minutes=_number(raw, "ijp.login.lock_minutes", 15, 0, 7 * 24 * 60, float),
        api_max_tokens=_number(raw, "ijp.api.max_tokens", 50, 0, 100_000),
        ids_max_prepared=_number(raw, "ijp.ids.max_prepared", 100, 0, 1_000_000),
        upload_max_bytes=_number(raw, "ijp.upload.max_bytes", 1_000_000_000, 1, 10**15),
        max_form_bytes=_number(raw, "ijp.max_form_bytes", MAX_FORM_BYTES, 1024, 10**12),
        zip_max_files=_number(raw, "ijp.download.zip_max_files", 10_000, 1, 10_000_000),
        prefix=mount,
        trusted_proxies=parse_networks(raw.get("ijp.trusted_proxies", "")),
        sockets=parse_sockets(raw.get("ijp.sockets", "")),
        deployment=deployment,
        auth_secret_ephemeral=ephemeral,
        scheduler_namespace=namespace,
        branding=_branding.parse(raw),
        desktop=parse_desktop(raw, list(backends)),
    )
