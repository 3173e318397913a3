"""The local backend, successor of ijp.unixbatch: jobs run on this machine.

Each job has a directory ``<root>/<id>/`` holding ``spec.json`` (mode 0600: it may carry
the session id), ``work/`` (the job's working directory), ``stdout``, ``stderr`` and the
records the wrapper (:mod:`ijpweb.batch.runner`) writes: ``started.json`` and
``exit.json``. A cancel leaves ``cancelled.json``. Everything is on disk, so running
and finished jobs survive a restart of the portal.

At most ``max_running`` jobs run at once; the rest wait, Queued, and start in order
whenever the backend is next asked (a submit, a harvest, a cancel).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from ..models.jobs import JobStatus
from . import BatchError, BatchState, JobSpec
from .jobdirs import prepare, read_json, read_stream
from .runner import GRACE_SECONDS, write_json

# seconds a cancelled job has to end before SIGKILL: the wrapper's own grace, and a little
CANCEL_GRACE = GRACE_SECONDS + 1.0


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


class LocalBackend:
    def __init__(
        self,
        name: str,
        root: str | os.PathLike,
        max_running: int = 4,
        path: Sequence[str] = (),
        session_in_argv: bool = False,
        python: str = sys.executable,
    ):
        self.name = name
        self.root = Path(root)
        self.max_running = max(1, int(max_running))
        self.path = [str(p) for p in path]
        self.session_in_argv = session_in_argv
        self.python = python
        self.root.mkdir(parents=True, exist_ok=True)

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
            return BatchState(JobStatus.QUEUED, reason="starting")
        return BatchState(JobStatus.QUEUED)

    def _running(self, d: Path) -> bool:
        if (d / "exit.json").exists():
            return False
        started = read_json(d / "started.json")
        if started is not None:
            return _alive(started["pid"], d)
        return (d / "launched").exists() and not (d / "cancelled.json").exists()

    def _dispatch(self) -> None:
        """Start queued jobs, oldest first, while fewer than ``max_running`` run."""
        with self._locked():
            dirs = sorted((p for p in self.root.iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
            running = sum(1 for d in dirs if self._running(d))
            for d in dirs:
                if running >= self.max_running:
                    break
                if (d / "launched").exists() or (d / "cancelled.json").exists():
                    continue
                (d / "launched").touch()
                proc = subprocess.Popen(
                    [self.python, "-m", "ijpweb.batch.runner", str(d)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    close_fds=True,
                    cwd=d,
                    env=self._env_for_runner(),
                )
                proc.wait(timeout=30)  # the wrapper forks and its parent returns at once
                running += 1

    def _env_for_runner(self) -> dict[str, str]:
        env = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL") if k in os.environ}
        pkg_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = pkg_root
        return env

    # --- the protocol ------------------------------------------------------------------

    def submit(self, spec: JobSpec) -> str:
        if spec.interactive:
            raise BatchError("the local backend does not run interactive jobs")
        _, created = prepare(self.root, spec, self.path, self.session_in_argv)
        if created:
            self._dispatch()
        return str(spec.job_id)

    def find(self, job_ids: Sequence[int]) -> dict[int, str]:
        return {i: str(i) for i in job_ids if (self.root / str(i)).is_dir()}

    def estimate(self, spec: JobSpec) -> float | None:
        dirs = [p for p in self.root.iterdir() if p.name.isdigit()]
        waiting = sum(1 for d in dirs if not (d / "launched").exists())
        return (
            0.0 if waiting == 0 and sum(map(self._running, dirs)) < self.max_running else float(waiting + 1)
        )

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
        started = read_json(d / "started.json")
        if started is not None and _alive(started["pid"], d):
            # SIGTERM, and SIGKILL after a grace period: once cancel returns the job has
            # ended, so it can be deleted at once
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


def from_settings(name: str, opts: Mapping[str, str]) -> LocalBackend:
    from ..settings import asbool, aslist

    return LocalBackend(
        name,
        opts["dir"],
        max_running=int(opts.get("max_running", 4)),
        path=aslist(opts.get("path", "")),
        session_in_argv=asbool(opts.get("session_in_argv", "false")),
    )
