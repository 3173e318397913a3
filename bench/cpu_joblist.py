"""In-process CPU of the job list (fix R, issue 13): ``GET /jobs`` (the page), its htmx rows
and ``/api/v1/jobs`` through the whole WSGI app (WebTest, no HTTP), on bench_joblist.py's
100,000-job SQLite database (run bench_joblist.py once first to build it), logged in as alice.

    .venv/bin/python bench/cpu_joblist.py            # thread CPU a request, p50 / p95 ms
    IJP_BENCH_PROFILE=1 .venv/bin/python bench/cpu_joblist.py   # cProfile of 50 GET /jobs

Thread CPU time (``time.thread_time``) is what a request costs the portal's one GIL, so it
is what limits bench_joblist's 8 clients on one process; wall time on a shared machine is not.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

import jinja2
import webtest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import percentile, settings_for  # noqa: E402

from ijpweb import main  # noqa: E402

SIZE = int(os.environ.get("IJP_BENCH_SIZE", 100_000))
ROUNDS = int(os.environ.get("IJP_BENCH_ROUNDS", 150))
CASES = {
    "/jobs (page)": ("/jobs", {}),
    "/jobs (htmx rows)": ("/jobs", {"HX-Request": "true"}),
    "/jobs?grouped=0 (page)": ("/jobs?grouped=0", {}),
    "/api/v1/jobs": ("/api/v1/jobs", "api"),
}


def app_for(size: int) -> tuple[webtest.TestApp, str]:
    tmp = Path(os.environ.get("IJP_BENCH_DIR") or tempfile.gettempdir()) / "ijp-bench-joblist"
    db = tmp / f"jobs-{size}.sqlite"
    if not db.exists():
        raise SystemExit(f"{db} is missing: run bench/bench_joblist.py first (it builds it)")
    settings = settings_for(f"sqlite:///{db}", tmp / str(size), **{"ijp.batch.local.sandbox": "none"})
    app = webtest.TestApp(main({}, **settings), extra_environ={"HTTP_HOST": "127.0.0.1"})
    app.get("/login")
    app.post("/login", {"username": "alice", "password": "alice-demo", "csrf_token": app.cookies["csrf_token"]},
             status=303)  # fmt: skip
    token = app.post_json("/api/v1/session", {"username": "alice", "password": "alice-demo"}, status=201).json
    return app, token["token"]


def get(app: webtest.TestApp, token: str, path: str, headers) -> int:
    if headers == "api":
        headers = {"Authorization": f"Bearer {token}"}
    return len(app.get(path, headers=headers, status=200).body)


RENDER = [0.0]  # thread CPU in Jinja's Template.render (the page's template) since reset


def time_rendering() -> None:
    """Count the thread CPU each request spends rendering its template (pyramid_jinja2 calls
    Template.render once a request), to tell the template's cost from the rest."""
    render = jinja2.Template.render

    def timed(self, *args, **kwargs):
        t = time.thread_time()
        try:
            return render(self, *args, **kwargs)
        finally:
            RENDER[0] += time.thread_time() - t

    jinja2.Template.render = timed


def log_out(app: webtest.TestApp, token: str) -> None:
    """End the run's token and web session (a user may hold 50 live tokens)."""
    app.delete("/api/v1/session", headers={"Authorization": f"Bearer {token}"})
    app.post("/logout", {"csrf_token": app.cookies["csrf_token"]}, status=303)


def main_() -> None:
    app, token = app_for(SIZE)
    try:
        measure(app, token)
    finally:
        log_out(app, token)


def measure(app: webtest.TestApp, token: str) -> None:
    if os.environ.get("IJP_BENCH_PROFILE"):
        for _ in range(10):
            get(app, token, "/jobs", {})
        prof = cProfile.Profile()
        began = time.perf_counter()
        prof.enable()
        for _ in range(50):
            get(app, token, "/jobs", {})
        prof.disable()
        took = (time.perf_counter() - began) / 50 * 1000
        print(f"50 GET /jobs at {SIZE:,} jobs under cProfile: {took:.1f} ms a request")
        stats = pstats.Stats(prof).strip_dirs()
        stats.sort_stats("cumulative").print_stats(45)
        stats.sort_stats("tottime").print_stats(25)
        return
    time_rendering()
    sizes = {name: get(app, token, path, h) for name, (path, h) in CASES.items()}
    for _ in range(10):  # warm up
        for path, h in CASES.values():
            get(app, token, path, h)
    cpu = {name: [] for name in CASES}
    rendering = {name: [] for name in CASES}
    for _ in range(ROUNDS):  # the cases interleaved
        for name, (path, h) in CASES.items():
            RENDER[0] = 0.0
            t = time.thread_time()
            get(app, token, path, h)
            cpu[name].append((time.thread_time() - t) * 1000)
            rendering[name].append(RENDER[0] * 1000)
    print(
        f"thread CPU a request at {SIZE:,} jobs, {ROUNDS} rounds, ms (min, p50, p95), of it the template's p50:"
    )
    for name, values in cpu.items():
        print(f"  {name:26} {min(values):5.2f} {statistics.median(values):5.2f} {percentile(values, 95):5.2f}"
              f"   template {statistics.median(rendering[name]):5.2f}   ({sizes[name] / 1024:.0f} KB)")  # fmt: skip


if __name__ == "__main__":
    main_()
