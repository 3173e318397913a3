"""Job directories on disk, as the local and SLURM backends keep them (mode 0700, files
0600): ``spec.json`` (the program, its argv, its environment without secrets, and its
sandbox), ``secret.json`` (the catalog session; the launcher deletes it before the
program starts), ``work/`` (the job's working directory and HOME; the job writes its output variables to
``work/output-vars``, ``JOB_OUTPUT_VARS``), ``output/`` (what it leaves for the user,
``JOB_OUTPUT_DIR``), ``stdout`` and ``stderr``. And the argv and environment a job
starts with."""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import json
import logging
import os
import re
import secrets
import shutil
import socket
import stat
import string
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from .. import outputs as outputs_core
from ..outputs import VARS_FILE
from ..planning import SESSION_ARG
from ..states import JobStatus
from . import STREAMS, BatchError, BatchState, DesktopInfo, JobBusy, JobSpec
from .runner import (
    DEFAULT_BIND,
    DEFAULT_GEOMETRY,
    DEFAULT_READY_TIMEOUT,
    DEFAULT_TIME_LIMIT,
    DESKTOP_DIR,
    DESKTOP_SECRET,
    END_RECORD,
    PRIVATE_ENV,
    locked,
    read_json,
)

# The environment a job starts with: nothing of the portal's own (it may hold secrets).
PASSED_ENV = ("LANG", "LC_ALL", "TZ", "TMPDIR")
log = logging.getLogger(__name__)
# Under the root: ``.new/<job id>``, a job directory being written, renamed into place
# when whole. Taking it is the claim to prepare that job (one process, one thread).
NEW = ".new"
OWNER = ".owner"  # in .new/<job id>: who writes it ({"host", "pid"})
HOST = socket.gethostname()
# A directory being written for this long was left by a crash (writing one takes
# milliseconds). One whose writer ran on this host is known abandoned as soon as that
# process has gone; another host's (a job directory root on a shared filesystem) only
# after this long.
LEFTOVER_SECONDS = 600


def job_env(spec: JobSpec, path: Sequence[str], jobdir: Path) -> dict[str, str]:
    """The environment, without ``spec.env`` (the secrets: they go to ``secret.json``)."""
    env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    env["PATH"] = os.pathsep.join([*path, os.environ.get("PATH", os.defpath)])
    env["HOME"] = str(jobdir / "work")
    env["JOB_WORK_DIR"] = str(jobdir / "work")
    env["JOB_OUTPUT_DIR"] = str(jobdir / "output")
    # OUT_NAME=value lines the job writes here are its output variables (ijpweb.outputs)
    env["JOB_OUTPUT_VARS"] = str(jobdir / "work" / VARS_FILE)
    env["IJP_JOB_ID"] = str(spec.job_id)
    env["IJP_USER"] = spec.owner
    return env


def job_argv(spec: JobSpec, session_in_argv: bool) -> list[str | None]:
    """The argv without the session stand-in. Where a facility opts in for legacy
    scripts (``ps`` then shows it), a null marks where the launcher puts
    ``--sessionId=<session>``: the session itself is never in ``spec.json``."""
    return [None if a == SESSION_ARG else a for a in spec.args if a != SESSION_ARG or session_in_argv]


def _write(path: Path, data) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _writer(tmp: Path) -> dict | None:
    """Who writes the job directory at ``tmp`` (its ``.owner``), or None."""
    owner = read_json(tmp / OWNER)
    return owner if isinstance(owner, dict) else None


def _abandoned(tmp: Path) -> bool:
    """Whether the job directory being written at ``tmp`` was left by a writer that has
    gone. Called under the root's lock, as its writer takes it and names itself in
    ``.owner`` in one step under the lock: one without a readable ``.owner`` is a writer's
    killed in that step (or removing it after a failure)."""
    try:
        age = time.time() - tmp.stat(follow_symlinks=False).st_mtime
    except FileNotFoundError:
        return False
    owner = _writer(tmp)
    if owner is None or age > LEFTOVER_SECONDS:
        return True
    pid = owner.get("pid")
    return owner.get("host") == HOST and (not isinstance(pid, int) or not _pid_alive(pid))


def clean_leftovers(root: Path) -> None:
    """Remove job directories a crash left half-written under ``root/.new`` (their writer
    has gone, or they are older than LEFTOVER_SECONDS): they may hold a session."""
    try:
        entries = list(os.scandir(root / NEW))
    except FileNotFoundError:
        return
    for e in entries:
        if e.name.isdigit():  # .new/<job id>, taken under the lock: checked and removed under it
            with locked(root):
                if _abandoned(Path(e.path)):
                    shutil.rmtree(e.path, ignore_errors=True)
            continue
        # an older version's .new/<job id>.<pid>
        _, _, pid = e.name.rpartition(".")
        with contextlib.suppress(OSError):
            old = time.time() - e.stat(follow_symlinks=False).st_mtime > LEFTOVER_SECONDS
            if old or not pid.isdigit() or not _pid_alive(int(pid)):
                shutil.rmtree(e.path, ignore_errors=True)


def private_dir(path: Path) -> None:
    """``path`` and its parents made as needed; ``path`` itself mode 0700 when made here."""
    if not path.is_dir():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)


def prepare(
    root: Path,
    spec: JobSpec,
    path: Sequence[str],
    session_in_argv: bool,
    sandbox: Mapping | None = None,
    before_rename=None,
    desktop_bind: str = DEFAULT_BIND,
) -> tuple[Path, bool]:
    """Create the job's directory ``root/<job id>`` atomically; return (path, created).
    An existing directory (the same portal job submitted again) is kept as it is.
    ``before_rename`` is called just before the directory appears (the local backend
    queues the job there).

    It is written as ``.new/<job id>``, taken by an exclusive mkdir under the root's lock
    (one step with the check that the job has no directory yet): a second process or
    thread preparing the same job meanwhile gets :class:`JobBusy` and leaves nothing
    behind. One left by a writer that has gone (it may hold the session) is removed and
    taken. The directory appears by a rename, under the lock too.

    An interactive job (``spec.interactive``) gets spec.json's ``desktop`` (``spec.desktop``
    and ``desktop_bind``, the address its VNC server listens on), ``desktop/`` (where its
    session's supervisor writes state.json and ended.json) and ``desktop.secret``, its VNC
    password (the launcher hands it to the supervisor on a pipe; the sandbox never
    shows the file)."""
    name = str(spec.job_id)
    d = root / name
    if d.exists():
        return d, False
    private_dir(root / NEW)
    tmp = root / NEW / name
    with locked(root):
        if d.exists():
            return d, False
        try:
            os.mkdir(tmp, 0o700)
        except FileExistsError:
            if not _abandoned(tmp):
                owner = _writer(tmp) or {}
                raise JobBusy(
                    f"job {name} is being prepared by process {owner.get('pid')} on {owner.get('host')}"
                ) from None
            shutil.rmtree(tmp, ignore_errors=True)  # a killed writer's: it may hold a session
            os.mkdir(tmp, 0o700)
        _write(tmp / OWNER, {"host": HOST, "pid": os.getpid()})
    try:
        os.mkdir(tmp / "work", 0o700)
        os.mkdir(tmp / "output", 0o700)
        record = {
            "executable": spec.executable,
            "argv": job_argv(spec, session_in_argv),
            "env": job_env(spec, path, d),
            "sandbox": dict(sandbox or {"type": "none"}),
        }
        if spec.interactive:
            record["desktop"] = desktop_record(spec, desktop_bind)
            os.mkdir(tmp / DESKTOP_DIR, 0o700)
            _write(tmp / DESKTOP_SECRET, {"password": vnc_password()})
        _write(tmp / "spec.json", record)
        if spec.env:
            _write(tmp / PRIVATE_ENV, dict(spec.env))
        with locked(root):
            if before_rename is not None:
                before_rename(name)
            os.unlink(tmp / OWNER)
            os.rename(tmp, d)  # stdout and stderr appear when the job starts
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and d.is_dir():  # an older version prepared it meanwhile
            return d, False
        raise
    return d, True


PASSWORD_ALPHABET = string.ascii_letters + string.digits


def vnc_password() -> str:
    """A fresh VNC password: 8 characters (RFB's DES authentication uses 8 bytes)."""
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(8))


def desktop_record(spec: JobSpec, bind: str) -> dict:
    """spec.json's ``desktop`` entry: the submission's (``spec.desktop``: time limit,
    geometry, ready timeout; the defaults where it says nothing) and the backend's bind."""
    given = dict(spec.desktop or {})
    return {
        "time_limit": int(given.get("time_limit") or DEFAULT_TIME_LIMIT),
        "geometry": str(given.get("geometry") or DEFAULT_GEOMETRY),
        "ready_timeout": int(given.get("ready_timeout") or DEFAULT_READY_TIMEOUT),
        "bind": bind,
    }


def read_stream(d: Path, stream: str, offset: int, limit: int) -> bytes:
    """``limit`` bytes of the job's ``stdout`` or ``stderr`` from ``offset``: the file in
    the job's directory ``d`` itself, never a link put in its place (an unsandboxed job
    could make one) nor anything but a regular file (a FIFO would hang the portal)."""
    if stream not in STREAMS:
        raise BatchError(f"no such stream {stream!r}")
    try:
        fd = os.open(d / stream, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return b""
    except OSError as e:
        if e.errno == errno.ELOOP:
            return b""  # a link: not the job's record
        raise
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fd)
        # Past the end there is nothing to read; seeking there may even fail (EINVAL
        # beyond the filesystem's largest file size, while offsets go up to 2^63-1).
        if not stat.S_ISREG(st.st_mode) or max(0, offset) >= st.st_size:
            return b""
        os.set_blocking(fd, True)
        fh.seek(max(0, offset))
        return fh.read(limit)


class DirOutputs:
    """A job's output files and variables where the backend keeps job directories on a
    filesystem the portal reads (local, SLURM's shared one; the batch server's own):
    ``output/`` and ``work/output-vars``, read through :mod:`ijpweb.outputs` (bounded),
    from the job's directory: ``work/`` and ``output/`` themselves, and everything in
    them, opened with ``O_NOFOLLOW`` relative to their parent's descriptor. (A sandboxed
    job cannot swap them: they are its bind mounts, and it cannot see the job's directory;
    an unsandboxed one that makes them links gets nothing through them.) Needs the
    backend's ``_dir(job_id)``."""

    outputs = True  # whether this backend offers output files (an original batch server does not)

    def output_files(self, job_id: str, limit: int = outputs_core.MAX_LISTED) -> outputs_core.Listing:
        d = self._dir(job_id)
        return outputs_core.list_outputs(d / "output", limit, base=d)

    def open_output(self, job_id: str, name: str):
        d = self._dir(job_id)
        return outputs_core.open_output(d / "output", name, base=d)

    def output_zip_entries(self, job_id: str):
        d = self._dir(job_id)
        return outputs_core.zip_entries(d / "output", base=d)

    def output_vars(self, job_id: str) -> outputs_core.OutputVars | None:
        d = self._dir(job_id)
        return outputs_core.read_vars(d / "work" / VARS_FILE, base=d)


# --- an interactive job's session records (issue 14) ------------------------------------
# desktop/state.json and desktop/ended.json are written inside the sandbox, by code running
# as the job's user: read as untrusted (the file itself, never a link; bounded; shape-checked).

DESKTOP_RECORD_BYTES = 4096
STATE_RECORD, ENDED_RECORD = "state.json", "ended.json"
REASON_CHARS = 300
# the ports a desktop's VNC server may be on: unprivileged ones (the supervisor takes a free
# port of the kernel's ephemeral range, 32768-60999 on Linux; never a system service's)
VNC_PORTS = (1024, 65535)
FUTURE_SECONDS = 60  # a record's ready_at later than this from the portal's clock is forged
_HOSTNAME = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,253}[A-Za-z0-9])?")


class DesktopRecordError(Exception):
    """A session record is not as the supervisor writes it; the message says which and why."""


def interactive(d: Path) -> bool:
    """Whether the job in ``d`` is an interactive one (it has a VNC password)."""
    return (d / DESKTOP_SECRET).exists()


def read_record(
    folder: Path, name: str, limit: int, error: type[Exception], label: str | None = None
) -> dict | None:
    """``folder/<name>`` as a JSON object, None while it (or ``folder``) is not there;
    ``error`` (its message naming ``label``, else ``name``) when ``folder`` or the file is a
    link, the file is not a regular one (a FIFO is not waited on), is larger than ``limit``
    bytes or is not a JSON object. A job's own records and its desktop's, which the job
    itself writes: none of them is trusted to be what its name says."""
    label = label or name
    try:
        dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise error(f"{label} cannot be read ({e.strerror})") from None
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dfd)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise error(f"{label} cannot be read ({e.strerror})") from None
    finally:
        os.close(dfd)
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise error(f"{label} is not a regular file")
        text = fh.read(limit + 1)
    if len(text) > limit:
        raise error(f"{label} is larger than any record")
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise error(f"{label} is not JSON") from None
    if not isinstance(value, dict):
        raise error(f"{label} is not a JSON object")
    return value


def read_desktop_record(d: Path, name: str) -> dict | None:
    """``d/desktop/<name>`` (read_record), :class:`DesktopRecordError` when it is not one."""
    return read_record(
        d / DESKTOP_DIR, name, DESKTOP_RECORD_BYTES, DesktopRecordError, f"{DESKTOP_DIR}/{name}"
    )


def record_time(
    record: dict, field: str, name: str, error: type[Exception] = DesktopRecordError
) -> datetime | None:
    """``record[field]`` as an aware time (UTC if it names no zone), None if absent;
    ``error`` ("<name>'s <field> is not a time") if it is not an ISO time."""
    value = record.get(field)
    if value is None:
        return None
    try:
        if not isinstance(value, str) or len(value) > 64:
            raise ValueError(value)
        at = datetime.fromisoformat(value)
    except ValueError:
        raise error(f"{name}'s {field} is not a time") from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def valid_host(host: object) -> bool:
    """An IP address literal, or a host name of at most 255 characters."""
    if not isinstance(host, str) or not 0 < len(host) <= 255:
        return False
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return bool(_HOSTNAME.fullmatch(host)) and ".." not in host
    return True


def fixed_hosts(bind: str | None) -> frozenset[str] | None:
    """Where VNC servers bound to ``bind`` are, as far as the bind alone says: an IP
    address literal (not 0.0.0.0 or ::) is that address, ``localhost`` 127.0.0.1 (as the
    supervisor resolves it); None for a host name or an unspecified address, whose
    servers are at each node's own address (only the backend knows the job's node)."""
    if bind == "localhost":
        return frozenset({"127.0.0.1"})
    try:
        address = ipaddress.ip_address(bind or "")
    except ValueError:
        return None
    return None if address.is_unspecified else frozenset({str(address)})


@dataclass(frozen=True)
class Place:
    """Where the portal lets its proxy connect for one job's desktop, decided by the portal,
    never by the job: the ``addresses`` its VNC server may be at (the backend's fixed bind,
    or the addresses of the node SLURM runs the job on, resolved on the portal's host), and
    that node's ``names`` (a supervisor bound to 0.0.0.0 records its node's name)."""

    addresses: frozenset[str]
    names: frozenset[str] = frozenset()
    everywhere: bool = False  # its VNC server listens on every address (0.0.0.0): any host

    def host(self, host: str) -> str | None:
        """The address to connect to for the ``host`` a job's record names; None if it is
        not one of these. A server on every address is reached at the node's own address,
        whatever host the record names (the job only reports its port)."""
        if host in self.addresses:
            return host
        if (self.everywhere or host.lower() in self.names) and self.addresses:
            return min(self.addresses)
        return None


def desktop_info(
    record: dict, bind: str | None = None, place: Place | None = None, now: datetime | None = None
) -> DesktopInfo:
    """``desktop/state.json`` checked: its host must be where the portal says this job's VNC
    server is (``place``, else the backend's ``bind`` when that is one fixed address: a
    host name or 0.0.0.0 alone allows nothing), its port one of VNC_PORTS, its ready_at no
    later than FUTURE_SECONDS from ``now``. Else :class:`DesktopRecordError`: a job cannot
    send the portal's proxy elsewhere."""
    host, port = record.get("host"), record.get("port")
    if not valid_host(host):
        raise DesktopRecordError("state.json's host is not an address or host name")
    if type(port) is not int or not VNC_PORTS[0] <= port <= VNC_PORTS[1]:
        raise DesktopRecordError(f"state.json's port is not one of {VNC_PORTS[0]}..{VNC_PORTS[1]}")
    if place is None:
        fixed = fixed_hosts(bind)
        if fixed is None:
            raise DesktopRecordError(
                f"state.json's host cannot be checked: {bind or 'no address'} is no one address,"
                " and the node running the job is not known"
            )
        place = Place(fixed)
    where = place.host(host)
    if where is None:
        allowed = ", ".join(sorted(place.addresses | place.names)) or "no address known"
        raise DesktopRecordError(f"state.json's host is not {allowed}, where this job's VNC server listens")
    ready_at = record_time(record, "ready_at", "state.json")
    now = now or datetime.now(UTC)
    if ready_at is not None and (ready_at - now).total_seconds() > FUTURE_SECONDS:
        raise DesktopRecordError("state.json's ready_at is in the future")
    return DesktopInfo(where, port, ready_at, record_time(record, "ends_at", "state.json"))


def _reason(value: object) -> str | None:
    """A reason a record gives, fit to show: a string, control characters replaced, bounded."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = "".join(c if c.isprintable() else " " for c in value).strip()
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"


def end_record(d: Path) -> tuple[str | None, bool]:
    """``end.json`` (written by the portal): why it ended the session, and whether that is a
    failure (``"failed": true``: the desktop never became ready)."""
    record = read_json(d / END_RECORD)
    if not isinstance(record, dict):
        return None, False
    return _reason(record.get("reason")), record.get("failed") is True


def ended_by_portal(d: Path, state: BatchState) -> BatchState | None:
    """An ended job's state as ``end.json`` says, None without one: COMPLETED with its
    reason, or FAILED with it when the portal ended the session as failed."""
    reason, failed = end_record(d)
    if reason is None:
        return None
    status = JobStatus.FAILED if failed else JobStatus.COMPLETED
    return replace(state, status=status, exit_code=None, reason=reason)


def desktop_state(
    d: Path, state: BatchState, bind: str | None = None, place: Place | None = None
) -> BatchState:
    """An interactive job's state from its batch state and its session's records: running,
    with its desktop once ``desktop/state.json`` is there and valid (desktop_info, with
    ``bind`` / ``place``: where the portal lets it be); ended, COMPLETED with why
    (``end.json``'s reason, else ``desktop/ended.json``'s: the program exited, the time
    limit...), or FAILED when the desktop did not start (or end.json says failed). A cancel
    stays CANCELLED. A record that cannot be used is logged (WARNING, the job's directory)."""
    if state.status == JobStatus.CANCELLED:
        return state
    if state.status == JobStatus.RUNNING:
        try:
            ended = read_desktop_record(d, ENDED_RECORD)
            record = None if ended is not None else read_desktop_record(d, STATE_RECORD)
            info = desktop_info(record, bind, place) if record is not None else None
        except DesktopRecordError as e:
            log.warning("job directory %s: its desktop's record cannot be used: %s", d, e)
            return replace(state, desktop=None, reason=f"its desktop's record cannot be used: {e}")
        return replace(state, desktop=info)
    if state.status not in (JobStatus.COMPLETED, JobStatus.FAILED):
        return state
    if (by_portal := ended_by_portal(d, state)) is not None:
        return by_portal
    try:
        ended = read_desktop_record(d, ENDED_RECORD)
    except DesktopRecordError as e:
        return replace(state, status=JobStatus.FAILED, reason=f"the session ended, but {e}")
    if ended is None:
        return state
    if failed := _reason(ended.get("failed")):
        try:
            started = read_desktop_record(d, STATE_RECORD) is not None
        except DesktopRecordError:
            started = False
        why = "the desktop failed" if started else "the desktop did not start"
        return replace(state, status=JobStatus.FAILED, exit_code=None, reason=f"{why}: {failed}")
    if reason := _reason(ended.get("reason")):
        return replace(state, status=JobStatus.COMPLETED, exit_code=None, reason=reason)
    return state
