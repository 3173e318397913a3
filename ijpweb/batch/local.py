"""The local backend, successor of ijp.unixbatch: jobs run on this machine.

Each job has a directory ``<root>/<id>/`` (see jobdirs.py) holding ``spec.json``,
``work/``, ``output/``, ``stdout``, ``stderr`` and the records the launcher
(:mod:`ijpweb.batch.runner`) writes: ``started.json`` and ``exit.json``. A cancel leaves
``cancelled.json``. Everything is on disk, so running and finished jobs survive a
restart of the portal.

At most ``max_running`` jobs run at once; the rest wait, Queued, and start in order
whenever the backend is next asked (a submit, a harvest, a cancel). ``queue/<id>`` marks
a job waiting to start and ``running/<id>`` one started, so a hand-over looks at those
few, never at every job directory; the backend's lock covers only the claim of the jobs
to start. The launcher is started by path with the standard library only, in a session
of its own, once the lock is released, and nothing waits for it; a launcher whose job
ends starts the next queued jobs as forks of itself.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from ..states import JobStatus
from . import BatchError, BatchState, JobSpec
from .jobdirs import clean_leftovers, prepare, private_dir, read_stream
from .runner import (
    CONFIG,
    GRACE_SECONDS,
    PRIVATE_ENV,
    QUEUE,
    STARTED,
    alive,
    dispatch,
    kill_sandbox,
    launch_pending,
    launcher,
    launcher_alive,
    locked,
    mark,
    names,
    read_json,
    running,
    write_json,
)
from .sandbox import Sandbox, describe, for_job

# seconds a cancelled job has to end before SIGKILL: the wrapper's own grace, and a little
CANCEL_GRACE = GRACE_SECONDS + 1.0
RUNNER = str(Path(__file__).resolve().with_name("runner.py"))
_LAUNCHED: set[int] = set()  # launchers this process started and has not reaped yet


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


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
        self.queue = self.root / QUEUE  # queue/<id>: waiting to start
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
                if running(d):
                    mark(self.started, name)
                elif not any((d / f).exists() for f in ("launched", "cancelled.json", "exit.json")):
                    mark(self.queue, name)
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
            if alive(started, d):
                if cancelled is not None:
                    return BatchState(JobStatus.CANCELLED, None, "cancelled", start_at)
                return BatchState(JobStatus.RUNNING, started_at=start_at)
            if (d / "exit.json").exists():  # it ended since exit.json was read above
                return LocalBackend._lifecycle(d, started)
            kill_sandbox(d)  # its launcher has gone: nothing of the job may run on unwatched
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
            if launcher(d) is not None and not launcher_alive(d):
                if (again := read_json(d / "started.json")) is not None:  # it started meanwhile
                    return LocalBackend._lifecycle(d, again)
                return BatchState(JobStatus.FAILED, None, "the job's wrapper ended before it started the job")
            return BatchState(JobStatus.QUEUED, reason="starting")
        return BatchState(JobStatus.QUEUED)

    def _dispatch(self) -> None:
        """Start queued jobs, oldest first, while fewer than ``max_running`` run (see
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
            raise BatchError("the local backend does not run interactive jobs")
        _, created = prepare(
            self.root,
            spec,
            self.path,
            self.session_in_argv,
            for_job(self.sandbox, spec),
            before_rename=lambda name: mark(self.queue, name),
        )
        if created:
            self._dispatch()
        return str(spec.job_id)

    def find(self, job_ids: Sequence[int]) -> dict[int, str]:
        return {i: str(i) for i in job_ids if (self.root / str(i)).is_dir()}

    def estimate(self, spec: JobSpec) -> float | None:
        waiting = len(names(self.queue))
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

    def cancel(self, job_id: str) -> None:
        d = self._dir(job_id)
        if not d.is_dir():
            raise BatchError(f"job {job_id} is not known to the local backend")
        if (d / "exit.json").exists():
            return
        with locked(self.root):
            if not (d / "cancelled.json").exists():
                write_json(d / "cancelled.json", {"at": datetime.now().astimezone().isoformat()})
            (self.queue / job_id).unlink(missing_ok=True)
            (d / PRIVATE_ENV).unlink(missing_ok=True)  # its session: it will not be needed
        started = read_json(d / "started.json")
        if started is None and (d / "launched").exists():  # starting: wait for its record
            deadline = time.monotonic() + 5.0
            while (
                started is None and (launch_pending(d) or launcher_alive(d)) and time.monotonic() < deadline
            ):
                time.sleep(0.01)
                started = read_json(d / "started.json")
        if started is not None and alive(started, d):
            # SIGTERM (the launcher passes it on to the job), and SIGKILL after a grace
            # period: once cancel returns the job has ended, so it can be deleted at once
            for sig, grace in ((signal.SIGTERM, CANCEL_GRACE), (signal.SIGKILL, 5.0)):
                with suppress(ProcessLookupError):
                    os.killpg(started["pgid"], sig)
                deadline = time.monotonic() + grace
                # ended once its end is recorded: the launcher may still be starting the
                # job behind it, in a fork that is in its group until it makes its own
                while alive(started, d) and not (d / "exit.json").exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
                if not alive(started, d) or (d / "exit.json").exists():
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
        ) or running(d):
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
    )
