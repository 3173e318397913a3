"""Job directories on disk, as the local and SLURM backends keep them: ``work/`` (the
job's working directory), ``spec.json`` (mode 0600: it may carry the session id),
``stdout`` and ``stderr``. And the argv and environment a job starts with."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from ..planning import SESSION_ARG, SESSION_ENV
from . import STREAMS, BatchError, JobSpec

# The environment a job starts with: nothing of the portal's own (it may hold secrets).
PASSED_ENV = ("LANG", "LC_ALL", "TZ", "TMPDIR")


def job_env(spec: JobSpec, path: Sequence[str]) -> dict[str, str]:
    env = {k: os.environ[k] for k in PASSED_ENV if k in os.environ}
    env["PATH"] = os.pathsep.join([*path, os.environ.get("PATH", os.defpath)])
    env["HOME"] = os.environ.get("HOME", "/")
    env["IJP_JOB_ID"] = str(spec.job_id)
    env["IJP_USER"] = spec.owner
    env.update(spec.env)
    return env


def job_argv(spec: JobSpec, session_in_argv: bool) -> list[str]:
    """The argv without the session stand-in; with the real session only where a
    facility opts in for legacy scripts (``ps`` then shows it)."""
    argv = []
    for a in spec.args:
        if a == SESSION_ARG:
            if session_in_argv and SESSION_ENV in spec.env:
                argv.append("--sessionId=" + spec.env[SESSION_ENV])
            continue
        argv.append(a)
    return argv


def read_json(path: Path) -> dict | None:
    """A record a job left on disk, or None while it is not there (or half-written)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def prepare(root: Path, spec: JobSpec, path: Sequence[str], session_in_argv: bool) -> tuple[Path, bool]:
    """Create the job's directory ``root/<job id>`` atomically with its spec.json (the
    program, its argv and environment); return (path, created). An existing directory
    (the same portal job submitted again) is kept as it is."""
    name = str(spec.job_id)
    payload = {
        "executable": spec.executable,
        "argv": job_argv(spec, session_in_argv),
        "env": job_env(spec, path),
    }
    d = root / name
    if d.exists():
        return d, False
    tmp = root / f".{name}.new"
    shutil.rmtree(tmp, ignore_errors=True)
    os.mkdir(tmp)
    os.mkdir(tmp / "work")
    fd = os.open(tmp / "spec.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(payload, fh)
    os.rename(tmp, d)  # stdout and stderr appear when the job starts
    return d, True


def read_stream(d: Path, stream: str, offset: int, limit: int) -> bytes:
    if stream not in STREAMS:
        raise BatchError(f"no such stream {stream!r}")
    try:
        with open(d / stream, "rb") as fh:
            fh.seek(max(0, offset))
            return fh.read(limit)
    except FileNotFoundError:
        return b""
