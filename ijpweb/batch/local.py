"""The local backend, successor of ijp.unixbatch: jobs run on this machine.

Each job has a directory ``<root>/<id>/`` (see jobdirs.py) holding ``spec.json``,
``work/``, ``output/``, ``stdout``, ``stderr`` and the records the launcher
(:mod:`ijpweb.batch.runner`) writes: ``started.json`` and ``exit.json``. A cancel leaves
``cancelled.json``. Everything is on disk, so running and finished jobs survive a
restart of the portal. A record that is not as the launcher writes it (an unsandboxed
job can write its own) makes that job Unknown or Failed, with the reason, never an
error for the others asked about with it.

At most ``max_running`` jobs run at once; the rest wait, Queued, and start whenever the
backend is next asked (a submit, a harvest, a cancel), fairly among their owners: a free
slot goes to the owner with the fewest jobs running (then the one served least recently),
to that owner's oldest job (runner.claim). ``queue/<id>.<owner>`` marks a job waiting to
start and ``running/<id>`` one started, so a hand-over looks at those few, never at every
job directory; the backend's lock covers only the claim of the jobs to start. The
launcher is started by path with the standard library only, in a session of its own,
once the lock is released, and nothing waits for it; a launcher whose job ends starts
the next queued jobs as forks of itself.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import shutil
import signal
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from ..states import JobStatus
from . import Batched, BatchError, BatchState, JobBusy, JobSpec
from .jobdirs import (
    DirOutputs,
    Place,
    clean_leftovers,
    desktop_state,
    fixed_hosts,
    interactive,
    prepare,
    private_dir,
    read_record,
    read_stream,
    record_time,
)
from .runner import (
    CONFIG,
    DEFAULT_BIND,
    DESKTOPS,
    END_RECORD,
    GRACE_SECONDS,
    PRIVATE_ENV,
    QUEUE,
    RECORD_BYTES,
    STARTED,
    UNFINISHED_START,
    _touch,
    age,
    alive,
    desktop_secret,
    dispatch,
    kill_sandbox,
    launch,
    launch_pending,
    launcher,
    launcher_alive,
    locked,
    mark,
    names,
    queue_marker,
    queued,
    read_json,
    running,
    valid_started,
    write_json,
)
from .sandbox import Sandbox, describe, for_job

# seconds a cancelled job has to end before SIGKILL: the wrapper's own grace, and a little
CANCEL_GRACE = GRACE_SECONDS + 1.0
RUNNER = str(Path(__file__).resolve().with_name("runner.py"))
_LAUNCHED: set[int] = set()  # launchers this process started and has not reaped yet
log = logging.getLogger(__name__)


def owner_key(owner: str) -> str:
    """The owner as the queue's markers name it (runner.claim shares slots by it): a
    digest, letters and digits whatever the user name holds."""
    return hashlib.blake2b(owner.encode(), digest_size=8).hexdigest()


def _owner_key_of(d: Path) -> str:
    """The owner key of the job in ``d``, from its ``spec.json`` ("" where it names none)."""
    spec = read_json(d / "spec.json")
    env = spec.get("env") if isinstance(spec, dict) else None
    owner = env.get("IJP_USER") if isinstance(env, dict) else None
    return owner_key(owner) if isinstance(owner, str) else ""


def signal_name(number: int) -> str:
    """A signal's name: SIGTERM, SIGRTMIN+6 (a real-time signal, which has no name of its
    own in Python), or "signal 99"."""
    try:
        return signal.Signals(number).name
    except ValueError:
        pass
    if signal.SIGRTMIN < number < signal.SIGRTMAX:
        return f"SIGRTMIN+{number - signal.SIGRTMIN}"
    return f"signal {number}"


class _Unreadable(Exception):  # noqa: N818 - a job's record, not the backend, is at fault
    """A job's record is not as its launcher writes it; the message says which and why."""


def _load(path: Path) -> dict | None:
    """A job's record, or None when it is not there (:class:`_Unreadable` if it is not one)."""
    return read_record(path.parent, path.name, RECORD_BYTES, _Unreadable)


def _number(record: dict, field: str, file: str, low: int, high: int) -> int | None:
    value = record.get(field)
    if value is not None and (type(value) is not int or not low <= value <= high):
        raise _Unreadable(f"{file}'s {field} is not one")
    return value


def _started(d: Path) -> dict | None:
    """``started.json``, checked, with its time parsed (:class:`_Unreadable` if odd)."""
    record = _load(d / "started.json")
    if record is None:
        return None
    if not valid_started(record):
        raise _Unreadable("started.json's pid, pgid or began is not one")
    host = record.get("host")
    if host is not None and (not isinstance(host, str) or not 0 < len(host) <= 255):
        raise _Unreadable("started.json's host is not one")
    cores = _number(record, "cores", "started.json", 1, 2**31 - 1)
    return dict(record, at=record_time(record, "at", "started.json", _Unreadable), host=host, cores=cores)


def _ended(d: Path) -> dict | None:
    """``exit.json``, checked: a code a process can exit with or a signal's number."""
    record = _load(d / "exit.json")
    if record is None:
        return None
    return {
        "code": _number(record, "code", "exit.json", 0, 255),
        "signal": _number(record, "signal", "exit.json", 1, signal.NSIG - 1),
        "at": record_time(record, "at", "exit.json", _Unreadable),
    }


def _started_record(d: Path) -> dict | None:
    """The job's launcher as ``started.json`` names it or, where that is not a launcher's
    record, as ``launched`` does (a launcher leads its own session: its group is its pid)."""
    started = read_json(d / "started.json")
    if valid_started(started):
        return started
    if (d / "started.json").exists() and (known := launcher(d)) is not None:
        return {"pid": known[0], "pgid": known[0], "began": known[1]}
    return None


class LocalBackend(Batched, DirOutputs):
    def __init__(
        self,
        name: str,
        root: str | os.PathLike,
        max_running: int = 4,
        path: Sequence[str] = (),
        session_in_argv: bool = False,
        python: str = sys.executable,
        sandbox: Sandbox | None = None,
        setting: str | None = None,
        max_interactive: int = 4,
        desktop_bind: str = DEFAULT_BIND,
    ):
        """``setting``: the prefix of this backend's settings, for error messages
        (``ijp.batch.<name>.``). Raises ValueError if its jobs cannot be sandboxed."""
        self.name = name
        self.root = Path(root).resolve()
        self.max_running = max(1, int(max_running))
        self.path = [str(p) for p in path]
        self.session_in_argv = session_in_argv
        self.python = python
        private_dir(self.root)
        self.sandbox = describe(sandbox or Sandbox(), self.path, self.root, setting or f"ijp.batch.{name}.")
        # interactive jobs (issue 14) start at once, outside the queue, at most this many
        self.max_interactive = max(0, int(max_interactive))
        # where their VNC servers listen: one address, decided here once (F5)
        self.desktop_bind, self.desktop_place = local_bind(desktop_bind, setting or f"ijp.batch.{name}.")
        self.desktops = self.root / DESKTOPS  # desktops/<id>: an interactive job, until it ends
        self.queue = self.root / QUEUE  # queue/<id>.<owner>: waiting to start
        self.started = self.root / STARTED  # running/<id>: started, until its launcher ends
        clean_leftovers(self.root)
        if not self.queue.is_dir():
            self._index()
        # for the launchers, which start the next queued job as theirs ends
        write_json(self.root / CONFIG, {"max_running": self.max_running})

    # --- helpers -----------------------------------------------------------------------

    def _dir(self, job_id: str) -> Path:
        if not job_id.isdigit():
            raise BatchError(f"no such job {job_id!r}")
        return self.root / job_id

    def _index(self) -> None:
        """Markers for the job directories of an older version (one pass, once)."""
        with locked(self.root):
            for name in names(self.root):
                d = self.root / name
                key = _owner_key_of(d)
                if running(d):
                    mark(self.started, name, key)
                elif not any((d / f).exists() for f in ("launched", "cancelled.json", "exit.json")):
                    mark(self.queue, queue_marker(name, key))
            private_dir(self.queue)

    def _state(self, d: Path) -> BatchState:
        """The job's state; one whose records cannot be read is Unknown or Failed, with
        the reason (never an error: the others asked about with it are answered)."""
        try:
            if not d.is_dir():
                return BatchState(JobStatus.UNKNOWN, reason="not found on the local backend")
            try:
                started, odd = _started(d), None
            except _Unreadable as e:
                started, odd = None, str(e)
            state = self._lifecycle(d, started, odd)
        except Exception:  # noqa: BLE001 - one job's directory must not blind the backend to the others
            log.exception("the state of local job %s", d.name)
            return BatchState(JobStatus.UNKNOWN, reason="its records on the local backend cannot be read")
        if interactive(d):  # its desktop, or why its session ended
            state = desktop_state(d, state, self.desktop_bind, self.desktop_place)
        if started and started["host"]:  # one host; the cores its wrapper could use
            return replace(state, nodes=1, cores=started["cores"], hosts=started["host"])
        return state

    @staticmethod
    def _lifecycle(d: Path, started: dict | None, odd: str | None = None) -> BatchState:
        """``started``: its checked ``started.json``; ``odd``: why that cannot be read."""
        cancelled = (d / "cancelled.json").exists()
        start_at = started["at"] if started else None
        try:
            ended = _ended(d)
        except _Unreadable as e:
            if cancelled:
                return BatchState(JobStatus.CANCELLED, None, "cancelled", start_at)
            return BatchState(JobStatus.FAILED, None, f"it ended, but its end cannot be read: {e}", start_at)
        if ended is not None:
            end_at = ended["at"]
            if cancelled:
                return BatchState(JobStatus.CANCELLED, None, "cancelled", start_at, end_at)
            if ended["signal"]:
                sig = signal_name(ended["signal"])
                return BatchState(JobStatus.FAILED, None, f"killed by {sig}", start_at, end_at)
            code = ended["code"]
            if code == 0:
                return BatchState(JobStatus.COMPLETED, 0, None, start_at, end_at)
            reason = "program not found or not executable" if code == 127 else f"exit code {code}"
            return BatchState(JobStatus.FAILED, code, reason, start_at, end_at)
        if odd is not None:  # its launcher, as ``launched`` names it
            if launcher(d) is not None and not launcher_alive(d):
                if (d / "exit.json").exists():  # it ended since exit.json was read above
                    return LocalBackend._lifecycle(d, None, odd)
                kill_sandbox(d)
                if cancelled:
                    return BatchState(JobStatus.CANCELLED, None, "cancelled")
                return BatchState(JobStatus.FAILED, None, f"the job's wrapper ended; {odd}")
            return BatchState(JobStatus.UNKNOWN, reason=f"its start cannot be read: {odd}")
        if started is not None:
            if alive(started, d):
                if cancelled:
                    return BatchState(JobStatus.CANCELLED, None, "cancelled", start_at)
                return BatchState(JobStatus.RUNNING, started_at=start_at)
            if (d / "exit.json").exists():  # it ended since exit.json was read above
                return LocalBackend._lifecycle(d, started)
            kill_sandbox(d)  # its launcher has gone: nothing of the job may run on unwatched
            if cancelled:
                return BatchState(JobStatus.CANCELLED, None, "cancelled", start_at)
            return BatchState(
                JobStatus.FAILED,
                None,
                "the job's wrapper ended without recording an exit code (killed, or the machine restarted)",
                start_at,
            )
        if cancelled:
            return BatchState(JobStatus.CANCELLED, None, "cancelled before it started")
        if (d / "launched").exists():
            if launcher(d) is not None and not launcher_alive(d):
                if (d / "started.json").exists():  # it started meanwhile
                    try:
                        return LocalBackend._lifecycle(d, _started(d))
                    except _Unreadable as e:
                        return LocalBackend._lifecycle(d, None, str(e))
                return BatchState(JobStatus.FAILED, None, "the job's wrapper ended before it started the job")
            return BatchState(JobStatus.QUEUED, reason="starting")
        return BatchState(JobStatus.QUEUED)

    def _dispatch(self) -> None:
        """Start queued jobs, fairly among owners, while fewer than ``max_running`` run (see
        runner.dispatch: only the markers are read, under the lock only the claim, and
        nothing waits for a launcher)."""
        _reap()
        _LAUNCHED.update(dispatch(self.root, self.max_running, self.python))

    def clean_leftovers(self) -> None:
        """Remove job directories a killed process left half-written (they may hold a
        session); the scheduler's purge calls it, as does each start."""
        clean_leftovers(self.root)

    def probe(self) -> None:
        """Whether jobs can be started here: the job directory is there and writable
        (BatchError if not). The harvester asks when no job is live."""
        if not self.root.is_dir() or not os.access(self.root, os.W_OK | os.X_OK):
            raise BatchError(f"the job directory {self.root} is missing or not writable")

    # --- the protocol ------------------------------------------------------------------

    def submit(self, spec: JobSpec) -> str:
        if spec.interactive:
            return self._submit_interactive(spec)
        _, created = prepare(
            self.root,
            spec,
            self.path,
            self.session_in_argv,
            for_job(self.sandbox, spec),
            before_rename=lambda name: mark(self.queue, queue_marker(name, owner_key(spec.owner))),
        )
        if created:
            self._dispatch()
        return str(spec.job_id)

    def _submit_interactive(self, spec: JobSpec) -> str:
        """An interactive job starts at once, outside the fair queue (it takes no
        ``max_running`` slot): at most ``max_interactive`` of them live at a time, counted and
        marked (``desktops/<id>``) under the lock, so that two portal processes cannot both
        take the last one; BatchError naming the limit beyond it."""
        name = str(spec.job_id)
        if (self.root / name).is_dir():  # handed over already (find() missed it): kept as it is
            return name
        with locked(self.root):
            live = self._live_desktops(besides=name)
            if live >= self.max_interactive:
                raise BatchError(
                    f"the local backend runs at most {self.max_interactive} desktop "
                    f"session{'s' if self.max_interactive != 1 else ''} at once "
                    f"(ijp.batch.{self.name}.max_interactive); end one or try again later"
                )
            mark(self.desktops, name)
        try:
            d, created = prepare(
                self.root,
                spec,
                self.path,
                self.session_in_argv,
                for_job(self.sandbox, spec),
                desktop_bind=self.desktop_bind,
            )
        except JobBusy:  # another process prepares it (and keeps the marker)
            raise
        except BaseException:
            (self.desktops / name).unlink(missing_ok=True)
            raise
        if created:
            _reap()
            _touch(d / "launched")
            if (pid := launch(d, self.python)) is not None:
                _LAUNCHED.add(pid)
        return name

    def _live_desktops(self, besides: str) -> int:
        """Interactive jobs live now (under the lock): those marked in ``desktops/`` whose
        launcher is starting or running; the markers of those that ended go."""
        count = 0
        for name in names(self.desktops):
            if name == besides:
                continue
            d, marker = self.root / name, self.desktops / name
            if not d.is_dir():  # being prepared (by another process), or given up
                live = age(marker) <= UNFINISHED_START
            elif (d / "exit.json").exists():
                live = False
            elif (d / "launched").exists() or (d / "started.json").exists():
                live = running(d) or launch_pending(d)
            else:  # prepared, its launcher about to start
                live = age(marker) <= UNFINISHED_START
            if live:
                count += 1
            else:
                marker.unlink(missing_ok=True)
        return count

    def desktop_password(self, job_id: str) -> str:
        """The VNC password of the interactive job's session (for the portal's proxy,
        which authenticates to the VNC server itself); BatchError if it has none."""
        password = desktop_secret(self._dir(job_id))
        if not password:
            raise BatchError(f"job {job_id} has no desktop on the local backend")
        return password

    def find(self, job_ids: Sequence[int]) -> dict[int, str]:
        return {i: str(i) for i in job_ids if (self.root / str(i)).is_dir()}

    def estimate(self, spec: JobSpec) -> float | None:
        if spec.interactive:  # at once, outside the queue (or refused: max_interactive)
            return 0.0
        waiting = len(queued(self.queue))
        return 0.0 if waiting == 0 and len(names(self.started)) < self.max_running else float(waiting + 1)

    def states(self, ids: Sequence[str]) -> dict[str, BatchState]:
        self._dispatch()
        return {
            i: self._state(self.root / i)
            if i.isdigit()
            else BatchState(JobStatus.UNKNOWN, reason="not a local job id")
            for i in ids
        }

    def read(self, job_id: str, stream: str, offset: int = 0, limit: int = 65536) -> bytes:
        return read_stream(self._dir(job_id), stream, offset, limit)

    def cancel_many(self, job_ids: Sequence[str]) -> dict[str, BatchError | None]:
        """Cancel the jobs together: each marked cancelled (one lock), then SIGTERM to every
        one running (the launcher passes it on to its job), one grace period for them all,
        and SIGKILL to those still running after it. Once it returns they have ended, so
        they can be deleted at once. A job that has ended already is cancelled (None)."""
        return self._stop(job_ids, "cancelled.json", {})

    def end_sessions(
        self, job_ids: Sequence[str], reason: str, failed: bool = False
    ) -> dict[str, BatchError | None]:
        """End interactive jobs' sessions as cancel_many() cancels jobs (one pass: one lock,
        one grace period), recording ``end.json`` with ``reason`` ("ended by the user", "no
        viewer for 30 minutes") instead of a cancel: they end COMPLETED with that reason, or
        FAILED with it when ``failed`` (the portal's backstop for a desktop that never
        became ready). A batch job among them is refused (BatchError), the others ended."""
        out: dict[str, BatchError | None] = {}
        ours = []
        for job_id in dict.fromkeys(job_ids):
            d = self.root / job_id if job_id.isdigit() else None
            if d is not None and d.is_dir() and not interactive(d):
                out[job_id] = BatchError(f"job {job_id} is a batch job: it has no desktop session to end")
            else:
                ours.append(job_id)
        content: dict = {"reason": str(reason)[:300]}
        if failed:
            content["failed"] = True
        out.update(self._stop(ours, END_RECORD, content))
        return out

    def _stop(self, job_ids: Sequence[str], record: str, content: dict) -> dict[str, BatchError | None]:
        """cancel_many() and end_sessions(): ``record`` (cancelled.json, end.json) written
        with ``content`` and the time, unless the job has one of them already."""
        out: dict[str, BatchError | None] = {}
        dirs: dict[str, Path] = {}
        for job_id in dict.fromkeys(job_ids):
            try:
                d = self._dir(job_id)
            except BatchError as e:
                out[job_id] = e
                continue
            if not d.is_dir():
                out[job_id] = BatchError(f"job {job_id} is not known to the local backend")
            elif (d / "exit.json").exists():
                out[job_id] = None
            else:
                dirs[job_id] = d
        if not dirs:
            return out
        with locked(self.root):
            for d in dirs.values():
                if not (d / "cancelled.json").exists() and not (d / END_RECORD).exists():
                    write_json(d / record, {**content, "at": datetime.now().astimezone().isoformat()})
                self._unqueue(d)
                (d / PRIVATE_ENV).unlink(missing_ok=True)  # its session: it will not be needed
        started = {job_id: _started_record(d) for job_id, d in dirs.items()}
        # those starting: wait for their launchers' records (5 s for them all)
        starting = [i for i, rec in started.items() if rec is None and (dirs[i] / "launched").exists()]
        deadline = time.monotonic() + 5.0
        while starting and time.monotonic() < deadline:
            time.sleep(0.01)
            still = []
            for i in starting:
                started[i] = _started_record(dirs[i])
                if started[i] is None and (launch_pending(dirs[i]) or launcher_alive(dirs[i])):
                    still.append(i)
            starting = still
        running_ = {i: rec for i, rec in started.items() if rec is not None and alive(rec, dirs[i])}
        for sig, grace in ((signal.SIGTERM, CANCEL_GRACE), (signal.SIGKILL, 5.0)):
            for rec in running_.values():
                with suppress(ProcessLookupError):
                    os.killpg(rec["pgid"], sig)
            deadline = time.monotonic() + grace
            while running_:
                # ended once its end is recorded: the launcher may still be starting the
                # job behind it, in a fork that is in its group until it makes its own
                running_ = {
                    i: rec
                    for i, rec in running_.items()
                    if alive(rec, dirs[i]) and not (dirs[i] / "exit.json").exists()
                }
                if not running_ or time.monotonic() >= deadline:
                    break
                time.sleep(0.05)
            if not running_:
                break
        self._dispatch()
        out.update(dict.fromkeys(dirs))
        return out

    def delete_many(self, job_ids: Sequence[str]) -> dict[str, BatchError | None]:
        out: dict[str, BatchError | None] = {}
        for job_id in dict.fromkeys(job_ids):
            try:
                self._delete(job_id)
                out[job_id] = None
            except BatchError as e:
                out[job_id] = e
            except OSError as e:
                out[job_id] = BatchError(f"job {job_id}'s files could not be removed ({e.strerror})")
        return out

    def _delete(self, job_id: str) -> None:
        d = self._dir(job_id)
        if not d.is_dir():
            return
        if self._state(d).status not in (
            JobStatus.COMPLETED,
            JobStatus.FAILED,
            JobStatus.CANCELLED,
        ) or running(d):
            raise BatchError(f"job {job_id} has not ended; cancel it first")
        self._unqueue(d)
        shutil.rmtree(d)
        (self.started / job_id).unlink(missing_ok=True)

    def _unqueue(self, d: Path) -> None:
        """Remove the job's queue marker (named with its owner, from its ``spec.json``; an
        older version's without); one left behind is removed by the next claim."""
        (self.queue / d.name).unlink(missing_ok=True)
        if key := _owner_key_of(d):
            (self.queue / queue_marker(d.name, key)).unlink(missing_ok=True)


def _reap() -> None:
    """Collect the exit of launchers this process started (they would linger as zombies)."""
    for pid in list(_LAUNCHED):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            _LAUNCHED.discard(pid)


def local_bind(bind: str, setting: str) -> tuple[str, Place]:
    """The local backend's ``desktop_bind`` as one IPv4 address (the supervisor's x11vnc
    listens there; 'localhost' is 127.0.0.1, a host name is resolved once, here) and the
    Place its jobs' state.json must name. 0.0.0.0 (every address) is refused: the proxy runs
    on this host, and a job's record could name any address. ValueError naming the setting."""
    fixed = fixed_hosts(bind)
    if fixed is None:
        try:
            unspecified = ipaddress.ip_address(bind).is_unspecified
        except ValueError:
            unspecified = False
        if unspecified:
            raise ValueError(
                f"{setting}desktop_bind = {bind}: the local backend's VNC servers listen on one address"
                " the portal reaches (127.0.0.1, the default, or one of this host's), not on all"
            )
        try:
            address = socket.getaddrinfo(bind, 0, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
        except (OSError, UnicodeError) as e:
            raise ValueError(f"{setting}desktop_bind = {bind}: cannot be resolved ({e})") from None
        fixed = frozenset({address})
    (address,) = fixed
    if ipaddress.ip_address(address).version != 4:
        raise ValueError(f"{setting}desktop_bind = {bind}: must be an IPv4 address (x11vnc runs -noipv6)")
    return address, Place(fixed)


def from_settings(name: str, opts: Mapping[str, str], setting: str | None = None) -> LocalBackend:
    from ..settings import asbool, aslist
    from .sandbox import from_settings as sandbox_from_settings

    return LocalBackend(
        name,
        opts["dir"],
        max_running=int(opts.get("max_running", 4)),
        path=aslist(opts.get("path", "")),
        session_in_argv=asbool(opts.get("session_in_argv", "false")),
        python=opts.get("python", sys.executable),
        sandbox=sandbox_from_settings(opts, setting or f"ijp.batch.{name}."),
        setting=setting,
        max_interactive=int(opts.get("max_interactive", 4)),
        desktop_bind=opts.get("desktop_bind", "").strip() or DEFAULT_BIND,
    )
