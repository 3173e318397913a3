"""Benchmark of issue 14 on the local backend: how long a desktop session takes to start and
to end, and what the interactive jobs' records cost a harvest.

(a) ``submit`` of an interactive job (the program: ``sleep``) until ``states()`` reports its
    desktop (the supervisor started Xvfb, the program and x11vnc, and x11vnc answered with
    its RFB banner), with ``sandbox = bwrap`` (the default) and ``sandbox = none``;
(b) ``end_sessions`` of that one session until it has returned (the session COMPLETED and
    every process of it gone, which end_sessions waits for);
(c) ``states()`` of 1,000 ended jobs, batch against interactive (each interactive one also
    reads its end.json/desktop/ended.json): the harvest's cost per job.

    .venv/bin/python bench/bench_desktop.py        # IJP_BENCH_ROUNDS=10
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from common import goal, percentile  # noqa: E402

from ijpweb.batch import JobSpec  # noqa: E402
from ijpweb.batch.local import LocalBackend  # noqa: E402
from ijpweb.batch.sandbox import Sandbox  # noqa: E402

ROUNDS = int(os.environ.get("IJP_BENCH_ROUNDS", "10"))


def spec(job_id: int) -> JobSpec:
    return JobSpec(
        job_id, "db/bob", "/bin/sleep", ("600",), {"IJP_SESSION_ID": "bench-session"}, interactive=True,
        desktop={"time_limit": 600, "geometry": "1280x800", "ready_timeout": 60},
    )  # fmt: skip


def start_and_end(kind: str, tmp: Path) -> tuple[list[float], list[float]]:
    backend = LocalBackend("local", tmp / kind, sandbox=Sandbox(kind=kind), max_interactive=2)
    starts, ends = [], []
    for i in range(1, ROUNDS + 2):  # the first is a warm-up
        t = time.perf_counter()
        backend.submit(spec(i))
        while backend.states([str(i)])[str(i)].desktop is None:
            time.sleep(0.005)
        started = time.perf_counter()
        assert backend.end_sessions([str(i)], "ended by the user") == {str(i): None}
        ended = time.perf_counter()
        assert backend.states([str(i)])[str(i)].reason == "ended by the user"
        if i > 1:
            starts.append((started - t) * 1000)
            ends.append((ended - started) * 1000)
    return starts, ends


def ended_dirs(root: Path, n: int, interactive: bool) -> list[str]:
    backend = LocalBackend("local", root, sandbox=Sandbox(kind="none"))
    at = "2026-11-30T18:00:00+00:00"
    for i in range(1, n + 1):
        d = root / str(i)
        (d / "work").mkdir(parents=True)
        (d / "spec.json").write_text(json.dumps({"env": {"IJP_USER": "db/bob"}}))
        (d / "started.json").write_text(
            json.dumps({"pid": 1, "pgid": 1, "began": "0", "at": at, "host": "h", "cores": 2})
        )
        (d / "exit.json").write_text(json.dumps({"code": 0, "signal": None, "at": at}))
        if interactive:
            (d / "desktop").mkdir()
            (d / "desktop.secret").write_text(json.dumps({"password": "abcd1234"}))
            (d / "desktop" / "ended.json").write_text(
                json.dumps({"reason": "the program exited (exit code 0)"})
            )
    ids = [str(i) for i in range(1, n + 1)]
    backend.states(ids)
    return backend, ids


def harvest_cost(tmp: Path) -> dict[str, float]:
    out = {}
    for kind in ("batch", "interactive"):
        backend, ids = ended_dirs(tmp / f"h-{kind}", 1000, kind == "interactive")
        times = []
        for _ in range(7):
            t = time.perf_counter()
            states = backend.states(ids)
            times.append((time.perf_counter() - t) * 1000)
        assert all(s.status.name == "COMPLETED" for s in states.values())
        out[kind] = sorted(times)[3]
    return out


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="ijp-bench-desktop-"))
    try:
        for kind in ("bwrap", "none"):
            starts, ends = start_and_end(kind, tmp)
            print(f"(a) submit to desktop ready, sandbox = {kind:5}  p50 {percentile(starts, 50):7.1f} ms   "
                  f"p95 {percentile(starts, 95):7.1f} ms   ({ROUNDS})")  # fmt: skip
            print(f"(b) end_sessions, all gone, sandbox = {kind:5}   p50 {percentile(ends, 50):7.1f} ms   "
                  f"p95 {percentile(ends, 95):7.1f} ms   ({ROUNDS})")  # fmt: skip
            if kind == "bwrap":
                goal(
                    "(a) a session ready, p95 (the ready timeout: 60 s)",
                    percentile(starts, 95) / 1000,
                    60,
                    " s",
                )
        cost = harvest_cost(tmp)
        print(f"(c) states() of 1,000 ended jobs: batch {cost['batch']:.1f} ms, interactive "
              f"{cost['interactive']:.1f} ms (median of 7)")  # fmt: skip
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
