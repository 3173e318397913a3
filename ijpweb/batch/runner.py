"""The wrapper the local backend starts for each job: ``python -m ijpweb.batch.runner DIR``.

It detaches (double fork, own session and process group), records its start, runs the
job's program with stdout and stderr going to files in DIR, and records the end and the
exit code, all on disk, so the portal can restart at any time without losing track.
On SIGTERM (a cancel) it lets the program end, and after a grace period kills whatever
is left of its own process group. No Pyramid, no database: the standard library only.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

GRACE_SECONDS = 5.0


def now() -> str:
    return datetime.now(UTC).isoformat()


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _group_members(pgid: int) -> list[int]:
    me, out = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(entry))
    return out


def _kill_members(pgid: int) -> None:
    for pid in _group_members(pgid):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def run(jobdir: Path) -> int:
    spec = json.loads((jobdir / "spec.json").read_text())
    terminated = {"at": None}

    def on_term(_sig, _frame):
        if terminated["at"] is None:
            terminated["at"] = time.monotonic()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    write_json(
        jobdir / "started.json",
        {
            "pid": os.getpid(),
            "pgid": os.getpgrp(),
            "at": now(),
            "host": socket.gethostname(),
            "cores": len(os.sched_getaffinity(0)),
        },
    )
    if (jobdir / "cancelled.json").exists():
        write_json(jobdir / "exit.json", {"code": None, "signal": None, "at": now()})
        return 0
    try:
        with open(jobdir / "stdout", "ab") as out, open(jobdir / "stderr", "ab") as err:
            child = subprocess.Popen(
                [spec["executable"], *spec["argv"]],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=jobdir / "work",
                env=spec["env"],
                close_fds=True,
            )
    except OSError as e:
        with open(jobdir / "stderr", "a") as err:
            err.write(f"ijp: cannot start {spec['executable']}: {e.strerror}\n")
        write_json(jobdir / "exit.json", {"code": 127, "signal": None, "at": now()})
        return 0
    pgid = os.getpgrp()
    while True:
        try:
            rc = child.wait(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            pass
        if terminated["at"] is not None and time.monotonic() - terminated["at"] > GRACE_SECONDS:
            _kill_members(pgid)
    if terminated["at"] is not None:
        # The program is gone; make sure nothing it started lingers in the group.
        _kill_members(pgid)
    code, sig = (rc, None) if rc >= 0 else (None, -rc)
    write_json(jobdir / "exit.json", {"code": code, "signal": sig, "at": now()})
    return 0


def main(argv: list[str]) -> int:
    jobdir = Path(argv[1]).resolve()
    if os.fork() > 0:  # the parent returns at once, so the portal never waits
        return 0
    os.setsid()  # own session and process group: cancel kills exactly this group
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    try:
        run(jobdir)
    finally:
        os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
