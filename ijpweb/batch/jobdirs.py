"""Job directories on disk, as the local and SLURM backends keep them (mode 0700, files
0600): ``spec.json`` (the program, its argv, its environment without secrets, and its
sandbox), ``secret.json`` (the catalog session; the launcher deletes it before the
program starts), ``work/`` (the job's working directory and HOME), ``output/`` (what it
leaves for the user), ``stdout`` and ``stderr``. And the argv and environment a job
starts with."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..planning import SESSION_ARG
from . import STREAMS, BatchError, JobSpec
from .runner import PRIVATE_ENV

# The environment a job starts with: nothing of the portal's own (it may hold secrets).
PASSED_ENV = ("LANG", "LC_ALL", "TZ", "TMPDIR")
NEW = ".new"  # under the root: job directories being written, renamed into place when whole
LEFTOVER_SECONDS = 3600  # a directory being written for this long was left by a crash


def job_env(spec: JobSpec, path: Sequence[str], jobdir: Path) -> dict[str, str]:
    """The environment, without ``spec.env`` (the secrets: they go to ``secret.json``)."""
    env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    env["PATH"] = os.pathsep.join([*path, os.environ.get("PATH", os.defpath)])
    env["HOME"] = str(jobdir / "work")
    env["JOB_WORK_DIR"] = str(jobdir / "work")
    env["JOB_OUTPUT_DIR"] = str(jobdir / "output")
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


def clean_leftovers(root: Path) -> None:
    """Remove job directories a crash left half-written (``.new/<id>.<pid>``): their
    writer has gone, or they are older than an hour. They may hold a session."""
    try:
        entries = list(os.scandir(root / NEW))
    except FileNotFoundError:
        return
    for e in entries:
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
) -> tuple[Path, bool]:
    """Create the job's directory ``root/<job id>`` atomically; return (path, created).
    An existing directory (the same portal job submitted again) is kept as it is.
    ``before_rename`` is called just before the directory appears (the local backend
    queues the job there)."""
    name = str(spec.job_id)
    d = root / name
    if d.exists():
        return d, False
    private_dir(root / NEW)
    tmp = root / NEW / f"{name}.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        os.mkdir(tmp, 0o700)
        os.mkdir(tmp / "work", 0o700)
        os.mkdir(tmp / "output", 0o700)
        _write(
            tmp / "spec.json",
            {
                "executable": spec.executable,
                "argv": job_argv(spec, session_in_argv),
                "env": job_env(spec, path, d),
                "sandbox": dict(sandbox or {"type": "none"}),
            },
        )
        if spec.env:
            _write(tmp / PRIVATE_ENV, dict(spec.env))
        if before_rename is not None:
            before_rename(name)
        os.rename(tmp, d)  # stdout and stderr appear when the job starts
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(e, OSError) and d.is_dir():  # another process prepared it meanwhile
            return d, False
        raise
    return d, True


def read_stream(d: Path, stream: str, offset: int, limit: int) -> bytes:
    if stream not in STREAMS:
        raise BatchError(f"no such stream {stream!r}")
    try:
        with open(d / stream, "rb") as fh:
            # Past the end there is nothing to read; seeking there may even fail (EINVAL
            # beyond the filesystem's largest file size, while offsets go up to 2^63-1).
            if max(0, offset) >= os.fstat(fh.fileno()).st_size:
                return b""
            fh.seek(max(0, offset))
            return fh.read(limit)
    except FileNotFoundError:
        return b""
