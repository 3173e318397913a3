"""The local backend, successor of ijp.unixbatch: jobs run on this machine.

Each job has a directory ``<root>/<id>/`` (see jobdirs.py) holding ``spec.json``,
``work/``, ``output/``, ``stdout``, ``stderr`` and the records the launcher
(:mod:`ijpweb.batch.runner`) writes: ``started.json`` and ``exit.json``. A cancel leaves
``cancelled.json``. Everything is on disk, so running and finished jobs survive a
restart of the portal.

At most ``max_running`` jobs run at once; the rest wait, Queued, and start in order
whenever the backend is next asked (a submit, a harvest, a cancel). ``queue/<id>`` marks
a job waiting to start and ``running/<id>`` one started, so a hand-over looks at those
few, never at every job directory. The launcher is started by path with the standard
library only, in a session of its own, and nothing waits for it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from ..models.jobs import JobStatus
from . import BatchError, BatchState, JobSpec
from .jobdirs import clean_leftovers, prepare, private_dir, read_json, read_stream
from .runner import GRACE_SECONDS, write_json
from .sandbox import Sandbox, describe, for_job

# seconds a cancelled job has to end before SIGKILL: the wrapper's own grace, and a little
CANCEL_GRACE = GRACE_SECONDS + 1.0
RUNNER = str(Path(__file__).resolve().with_name("runner.py"))
# a start the portal did not finish (it stopped between claiming the job and starting
# its launcher) is retried after this many seconds
UNFINISHED_START = 60.0
_LAUNCHED: set[int] = set()  # launchers this process started and has not reaped yet


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _alive(pid: int, jobdir: Path) -> bool:
    """Is ``pid`` still our runner for ``jobdir`` (and not a recycled pid)?"""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    if stat[stat.rindex(")") + 2] == "Z":
        return False
    return str(jobdir).encode() in cmdline


def _names(d: Path) -> list[str]:
    try:
        return [n for n in os.listdir(d) if n.isdigit()]
    except FileNotFoundError:
        return []


def _mark(d: Path, name: str) -> None:
    """The marker ``d/name`` (``d`` made if needed: tests and operators may remove it)."""
    try:
        (d / name).touch()
    except FileNotFoundError:
        private_dir(d)
        (d / name).touch()


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


class LocalBackend:
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
        self.queue = self.root / "queue"  # queue/<id>: waiting to start
        self.started = self.root / "running"  # running/<id>: started, until its launcher ends
        clean_leftovers(self.root)
        if not self.queue.is_dir():
            self._index()

    # --- helpers -----------------------------------------------------------------------

    def _dir(self, job_id: str) -> Path:
        if not job_id.isdigit():
            raise BatchError(f"no such job {job_id!r}")
        return self.root / job_id

    @contextmanager
    def _locked(self):
        with open(self.root / ".lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _index(self) -> None:
        """Markers for the job directories of an older version (one pass, once)."""
        with self._locked():
            for name in _names(self.root):
                d = self.root / name
                if self._running(d):
                    _mark(self.started, name)
                elif not any((d / f).exists() for f in ("launched", "cancelled.json", "exit.json")):
                    _mark(self.queue, name)
            private_dir(self.queue)

    def _state(self, d: Path) -> BatchState:
        if not d.is_dir():
            return BatchState(JobStatus.UNKNOWN, reason="not found on the local backend")
        started = read_json(d / "started.json")
        state = self._lifecycle(d, started)
        if started and "host" in started:  # one host; the cores its wrapper could use
            return replace(state, nodes=1, cores=started.get("cores"), hosts=started["host"])
        return state

    @staticmethod
    def _lifecycle(d: Path, started: dict | None) -> BatchState:
        ended = read_json(d / "exit.json")
        cancelled = read_json(d / "cancelled.json")
        start_at = _ts(started["at"]) if started else None
        if ended is not None:
            end_at = _ts(ended["at"])
            if cancelled is not None:
                return BatchState(JobStatus.CANCELLED, None, "cancelled", start_at, end_at)
            if ended.get("signal"):
                sig = signal.Signals(ended["signal"]).name
                return BatchState(JobStatus.FAILED, None, f"killed by {sig}", start_at, end_at)
            code = ended.get("code")
            if code == 0:
                return BatchState(JobStatus.COMPLETED, 0, None, start_at, end_at)
            reason = "program not found or not executable" if code == 127 else f"exit code {code}"
            return BatchState(JobStatus.FAILED, code, reason, start_at, end_at)
        if started is not None:
            if _alive(started["pid"], d):
                if cancelled is not None:
                    return BatchState(JobStatus.CANCELLED, None, "cancelled", start_at)
                return BatchState(JobStatus.RUNNING, started_at=start_at)
            if cancelled is not None:
                return BatchState(JobStatus.CANCELLED, None, "cancelled", start_at)
            return BatchState(
                JobStatus.FAILED,
                None,
                "the job's wrapper ended without recording an exit code (killed, or the machine restarted)",
                start_at,
            )
        if cancelled is not None:
            return BatchState(JobStatus.CANCELLED, None, "cancelled before it started")
        if (d / "launched").exists():
            if _launcher(d) is not None and not _launcher_alive(d):
                return BatchState(JobStatus.FAILED, None, "the job's wrapper ended before it started the job")
            return BatchState(JobStatus.QUEUED, reason="starting")
        return BatchState(JobStatus.QUEUED)

    def _running(self, d: Path) -> bool:
        if (d / "exit.json").exists():
            return False
        started = read_json(d / "started.json")
        if started is not None:
            return _alive(started["pid"], d)
        if not (d / "launched").exists():
            return False
        if _launcher(d) is not None:
            return _launcher_alive(d)
        return not (d / "cancelled.json").exists()

    def _count_running(self) -> int:
        """Jobs started and not ended; markers of ended ones go (a launcher killed before
        it could remove its own), and a start the portal left unfinished is queued again."""
        count = 0
        for name in _names(self.started):
            d = self.root / name
            if (
                d.is_dir()
                and (d / "launched").exists()
                and _launcher(d) is None
                and not (d / "started.json").exists()
                and _age(d / "launched") > UNFINISHED_START
            ):
                (d / "launched").unlink()
                _mark(self.queue, name)
                (self.started / name).unlink(missing_ok=True)
            elif d.is_dir() and self._running(d):
                count += 1
            else:
                (self.started / name).unlink(missing_ok=True)
        return count

    def _dispatch(self) -> None:
        """Start queued jobs, oldest first, while fewer than ``max_running`` run. Only the
        markers are read, and nothing waits for a launcher under the lock."""
        with self._locked():
            _reap()
            waiting = _names(self.queue)
            if not waiting:
                return
            running = self._count_running()
            for name in sorted(waiting, key=int):
                if running >= self.max_running:
                    break
                d, marker = self.root / name, self.queue / name
                if not d.is_dir():  # being prepared, or gone (deleted, or a crash while preparing)
                    if _age(marker) > UNFINISHED_START:
                        marker.unlink(missing_ok=True)
                    continue
                if any((d / f).exists() for f in ("launched", "cancelled.json", "started.json")):
                    marker.unlink(missing_ok=True)
                    continue
                self._launch(d)
                running += 1

    def _launch(self, d: Path) -> None:
        _mark(self.started, d.name)
        (d / "launched").touch()
        (self.queue / d.name).unlink(missing_ok=True)
        try:
            pid = os.posix_spawn(
                self.python,
                [self.python, "-I", "-S", RUNNER, str(d)],
                self._env_for_runner(),
                file_actions=[
                    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                    (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                    (os.POSIX_SPAWN_DUP2, 1, 2),
                ],
                setsid=True,  # its own session and group: a cancel signals exactly it
            )
        except OSError as e:
            write_json(
                d / "exit.json", {"code": 127, "signal": None, "at": datetime.now().astimezone().isoformat()}
            )
            with open(d / "stderr", "a") as err:
                err.write(f"ijp: cannot start the job's launcher: {e.strerror}\n")
            return
        _LAUNCHED.add(pid)
        (d / "launched").write_text(f"{pid} {_started_at(pid)}")

    @staticmethod
    def _env_for_runner() -> dict[str, str]:
        return {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL") if k in os.environ}

    # --- the protocol ------------------------------------------------------------------

    def submit(self, spec: JobSpec) -> str:
        if spec.interactive:
            raise BatchError("the local backend does not run interactive jobs")
        _, created = prepare(
            self.root,
            spec,
            self.path,
            self.session_in_argv,
            for_job(self.sandbox, spec),
            before_rename=lambda name: _mark(self.queue, name),
        )
        if created:
            self._dispatch()
        return str(spec.job_id)

    def find(self, job_ids: Sequence[int]) -> dict[int, str]:
        return {i: str(i) for i in job_ids if (self.root / str(i)).is_dir()}

    def estimate(self, spec: JobSpec) -> float | None:
        waiting = len(_names(self.queue))
        running = len(_names(self.started))
        return 0.0 if waiting == 0 and running < self.max_running else float(waiting + 1)

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

    def cancel(self, job_id: str) -> None:
        d = self._dir(job_id)
        if not d.is_dir():
            raise BatchError(f"job {job_id} is not known to the local backend")
        if (d / "exit.json").exists():
            return
        with self._locked():
            if not (d / "cancelled.json").exists():
                write_json(d / "cancelled.json", {"at": datetime.now().astimezone().isoformat()})
            (self.queue / job_id).unlink(missing_ok=True)
        started = read_json(d / "started.json")
        if started is None and _launcher(d) is not None:  # starting: wait for its record
            deadline = time.monotonic() + 5.0
            while started is None and _launcher_alive(d) and time.monotonic() < deadline:
                time.sleep(0.01)
                started = read_json(d / "started.json")
        if started is not None and _alive(started["pid"], d):
            # SIGTERM (the launcher passes it on to the job), and SIGKILL after a grace
            # period: once cancel returns the job has ended, so it can be deleted at once
            for sig, grace in ((signal.SIGTERM, CANCEL_GRACE), (signal.SIGKILL, 5.0)):
                with suppress(ProcessLookupError):
                    os.killpg(started["pgid"], sig)
                deadline = time.monotonic() + grace
                while _alive(started["pid"], d) and time.monotonic() < deadline:
                    time.sleep(0.05)
                if not _alive(started["pid"], d):
                    break
        self._dispatch()

    def delete(self, job_id: str) -> None:
        d = self._dir(job_id)
        if not d.is_dir():
            return
        if self._state(d).status not in (
            JobStatus.COMPLETED,
            JobStatus.FAILED,
            JobStatus.CANCELLED,
        ) or self._running(d):
            raise BatchError(f"job {job_id} has not ended; cancel it first")
        shutil.rmtree(d)
        (self.queue / job_id).unlink(missing_ok=True)
        (self.started / job_id).unlink(missing_ok=True)


def _reap() -> None:
    """Collect the exit of launchers this process started (they would linger as zombies)."""
    for pid in list(_LAUNCHED):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            _LAUNCHED.discard(pid)


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command's name (state first)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def _started_at(pid: int) -> str:
    """When the process began (clock ticks after boot): with the pid, who it is."""
    fields = _stat(pid)
    return fields[19] if fields else "0"


def _launcher(d: Path) -> tuple[int, str] | None:
    """The pid of the job's launcher and when it began, once the backend has started it."""
    try:
        pid, _, began = (d / "launched").read_text().strip().partition(" ")
    except OSError:
        return None
    return (int(pid), began) if pid.isdigit() else None


def _launcher_alive(d: Path) -> bool:
    """Is the job's launcher still running? By pid and start time: its command line may
    not be there yet while it execs, and a pid may be reused."""
    launcher = _launcher(d)
    fields = _stat(launcher[0]) if launcher else None
    return bool(fields) and fields[0] != "Z" and fields[19] == launcher[1]


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
        sandbox=sandbox_from_settings(opts),
        setting=setting,
    )
