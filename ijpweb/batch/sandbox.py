"""The sandbox every job runs in, as a backend configures it (``ijp.batch.<name>.sandbox``
and friends); the launcher (:mod:`ijpweb.batch.runner`) builds it for each job.

``sandbox = bwrap`` (the default): bubblewrap, checked once per process with a trial
run; a backend whose jobs cannot be sandboxed refuses to start. ``sandbox = none`` must be
written out: jobs then run as the portal's own account and see whatever it can.
"""

from __future__ import annotations

import functools
import os
import stat
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..planning import SESSION_ARG
from . import JobSpec
from .runner import BWRAP, ETC, LIMITS, SETPRIV, SYSTEM, _under, bwrap_argv, identity

KINDS = ("bwrap", "none")
CATALOG_FLAGS = ("--sessionId=", "--icatUrl=", "--idsUrl=")
PROBE_SECONDS = 30
# runtime sockets, the portal's among them (ijp.trusted_proxies = unix): never shown to a job
RUN = "/run"


@dataclass(frozen=True)
class Sandbox:
    kind: str = "bwrap"  # bwrap | none
    network: bool = False  # every job keeps the network, not only those that need the catalog
    read_only: tuple[str, ...] = ()  # more directories every job may read
    bwrap: str = BWRAP
    user: str = "nobody"  # whom jobs run as where the launcher runs as root
    tmp_size: int | None = 1 << 30  # bytes of the job's private /tmp (memory: a tmpfs)
    # resource limits of every job (runner.LIMITS): processes of its user, address space
    # and one file's size in bytes; None: the host's own
    processes: int | None = 4096
    memory: int | None = None
    file_size: int | None = None

    def limits(self) -> dict[str, int]:
        return {k: v for k in LIMITS if (v := getattr(self, k)) is not None}


def needs_catalog(args: Sequence[str]) -> bool:
    """Whether an argv carries the catalog's session or URLs (the original IJP's flags):
    for a batch server, which knows no job types, the sign that a job talks to ICAT/IDS."""
    return any(a == SESSION_ARG or a.startswith(CATALOG_FLAGS) for a in args)


def python_dirs() -> list[str]:
    """The portal's Python, its environment and the ijpweb package: job scripts use
    ``ijpweb.jobscript`` and python-icat with the portal's interpreter."""
    return list(dict.fromkeys([sys.base_prefix, sys.prefix, str(Path(__file__).resolve().parents[1])]))


@functools.cache
def probe(bwrap: str, read_only: tuple[str, ...], user: str) -> str | None:
    """Run the portal's Python in the sandbox once, as jobs will run: None if it works,
    else why not."""
    described = {"type": "bwrap", "bwrap": bwrap, "read_only": list(read_only), "user": user}
    try:
        ids = identity(described)
    except OSError as e:
        return e.strerror
    for tool in (bwrap, *((SETPRIV,) if ids else ())):
        if not os.access(tool, os.X_OK):
            return f"{tool} is not installed (Debian: apt-get install bubblewrap util-linux)"
    argv = bwrap_argv(described, [], "/")
    try:
        res = subprocess.run(
            [*argv, sys.executable, "-c", "import ijpweb.jobscript"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=PROBE_SECONDS,
            env={"PATH": os.defpath},
            check=False,
        )
    except OSError as e:
        return f"{bwrap} cannot run: {e.strerror}"
    except subprocess.TimeoutExpired:
        return f"a trial run of {bwrap} did not end within {PROBE_SECONDS} s"
    if res.returncode != 0:
        lines = res.stderr.strip().splitlines()
        return f"a trial run of {bwrap} failed: {lines[-1] if lines else f'exit {res.returncode}'}"
    return None


def describe(sandbox: Sandbox, path: Sequence[str], root: Path, setting: str) -> dict:
    """The sandbox as ``spec.json`` records it (network per job: see :func:`for_job`),
    after checking it: ValueError, naming the setting, if jobs could see other jobs or
    bubblewrap cannot run. ``setting`` is the settings' prefix, e.g. ``ijp.batch.local.``."""
    if sandbox.kind not in KINDS:
        raise ValueError(f"{setting}sandbox: bwrap or none, not {sandbox.kind!r}")
    if sandbox.kind == "none":
        return {"type": "none"}
    root_ = os.path.realpath(root)
    for key, dirs in (("path", path), ("read_only", sandbox.read_only)):
        for p in dirs:
            if _under(root_, os.path.realpath(p)):
                raise ValueError(
                    f"{setting}{key}: {p} holds the job directories ({root}); every job would see the others"
                )
            real = os.path.realpath(p)
            if _under(RUN, real) or _under(real, RUN):
                raise ValueError(
                    f"{setting}{key}: {p} would show jobs {RUN}, where the portal's Unix socket is (a job "
                    "that opens it is the trusted proxy) and other services' sockets"
                )
            # a read-only bind does not stop a job's connect(): a socket in a directory a
            # job sees is open to it (the portal's own is the trusted proxy)
            held = _sockets_in(real)
            if held:
                raise ValueError(
                    f"{setting}{key}: {p} holds the Unix socket {held}: every job would see it and could "
                    "connect to it (a read-only directory does not stop that), and a connection on the "
                    "portal's own socket is the trusted proxy; show jobs a directory without sockets"
                )
    read_only = tuple(dict.fromkeys([*python_dirs(), *path, *sandbox.read_only]))
    why = probe(sandbox.bwrap, read_only, sandbox.user)
    if why:
        raise ValueError(
            f"{setting}sandbox: jobs cannot be sandboxed here: {why}. Install bubblewrap, or set "
            f"{setting}sandbox = none to run jobs unsandboxed (see the README: they then see "
            "everything the portal's account can)"
        )
    return {
        "type": "bwrap",
        "bwrap": sandbox.bwrap,
        "read_only": list(read_only),
        "network": sandbox.network,
        "user": sandbox.user,
        "tmp_size": sandbox.tmp_size,
        "limits": sandbox.limits(),
    }


def _sockets_in(directory: str) -> str | None:
    """The first Unix socket directly in ``directory`` (one listing: cheap), if any."""
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                try:
                    if stat.S_ISSOCK(entry.stat(follow_symlinks=False).st_mode):
                        return entry.path
                except OSError:
                    continue
    except OSError:
        return None
    return None


def shown_directories(described: Mapping) -> list[str]:
    """Every directory a job of this sandbox sees (as bubblewrap shows them: the system's,
    /etc, the portal's Python, the backend's path and read_only), resolved; none without
    a sandbox (the job then sees all the portal's account can)."""
    if described.get("type") != "bwrap":
        return []
    dirs = [p for p in SYSTEM if not os.path.islink(p) and os.path.isdir(p)] + [ETC]
    return list(dict.fromkeys(os.path.realpath(p) for p in [*dirs, *described.get("read_only", ())]))


def exposed_sockets(described: Mapping, sockets: Sequence[str]) -> list[tuple[str, str]]:
    """The (socket, shown directory) pairs where one of ``sockets`` (the portal's own, which
    need not exist yet: its directory is resolved) lies in a directory jobs see."""
    out = []
    for sock in sockets:
        real = os.path.join(os.path.realpath(os.path.dirname(sock)), os.path.basename(sock))
        out += [(sock, d) for d in shown_directories(described) if _under(real, d)]
    return out


def for_job(described: Mapping, spec: JobSpec) -> dict:
    """One job's sandbox: the network where the backend allows it, the job needs the
    catalog, or it is interactive (its VNC server must be reachable on the node; its X
    display listens on no TCP port nor abstract socket, which the network would share)."""
    if described.get("type") != "bwrap":
        return dict(described)
    return {**described, "network": bool(described.get("network") or spec.network or spec.interactive)}


def amount(text: str, setting: str, sizes: bool = False) -> int | None:
    """A positive whole number (with ``sizes``, optionally followed by K, M, G or T,
    powers of 1024); empty or ``none``: no limit. ValueError naming the setting otherwise."""
    t = text.strip().upper()
    if t in ("", "NONE"):
        return None
    factor = 1
    if sizes and t[-1:] and t[-1] in "KMGT":
        factor, t = 1 << (10 * ("KMGT".index(t[-1]) + 1)), t[:-1]
    if not t.isdigit() or int(t) == 0:
        kind = "a size in bytes (e.g. 512M, 2G)" if sizes else "a positive whole number"
        raise ValueError(f"{setting}: {kind}, or none; not {text.strip()!r}")
    return int(t) * factor


def from_settings(opts: Mapping[str, str], setting: str = "ijp.batch.<name>.") -> Sandbox:
    from ..settings import asbool, aslist

    default = Sandbox()

    def limit(key: str, sizes: bool = True) -> int | None:
        return amount(opts[key], setting + key, sizes) if key in opts else getattr(default, key)

    return Sandbox(
        kind=opts.get("sandbox", "bwrap").strip().lower(),
        network=asbool(opts.get("network", "false")),
        read_only=tuple(aslist(opts.get("read_only", ""))),
        bwrap=opts.get("bwrap", "").strip() or BWRAP,
        user=opts.get("user", "").strip() or "nobody",
        tmp_size=limit("tmp_size"),
        processes=limit("processes", sizes=False),
        memory=limit("memory"),
        file_size=limit("file_size"),
    )
