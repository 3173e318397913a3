"""Benchmark of issue 12, point 3: 100 one-per-input local jobs, from the click to all
Completed, against the same 100 programs started by a plain ``subprocess.Popen`` loop in
the same sandbox.

The portal's side of a round, through the whole WSGI application on SQLite (testing.ini's
settings, the local backend with ``sandbox = bwrap`` and ``max_running`` as
development.ini, 4):

1. the click: the submission form's POST (job type ``Echo``, ``echo`` with the input's
   id, one job per input, 100 datafiles selected beforehand), which records 100 jobs
   Submitting;
2. what the click wakes (``Scheduler.submit_soon``): the background submitter, chunk by
   chunk, each committed (``Scheduler.submit``);
3. the launchers run the jobs, four at a time, each starting the next as its own ends;
4. as soon as the last job's end is on disk, one harvest cycle (``Scheduler.harvest``),
   which must find all 100 Completed.

The time the harvester takes to come round (``ijp.harvest.seconds``, a setting) is left
out: it is the period of a poll, not the speed of a start. The harvest cycle itself is in.

The plain side: the 100 programs of the portal's previous round, each with the very argv
its launcher built (bubblewrap's, from ``ijpweb.batch.runner.bwrap_argv``, and the same
sandbox: system read-only, /etc's private files hidden, its own work and output
directories, no network, a private /tmp), built before the clock starts; then
``subprocess.Popen`` for each (stdout and stderr to files, as a job's) and a wait for all.
It starts all 100 at once (no queue): it is what a shell loop would do.

The rounds alternate (portal, plain, portal, ...), so the machine's noise falls on both.

    .venv/bin/python bench/bench_localjobs.py       # IJP_BENCH_ROUNDS=5, IJP_BENCH_JOBS=100
    IJP_BENCH_PROFILE=1 .venv/bin/python bench/bench_localjobs.py   # + cProfile of one click

``IJP_BENCH_SOURCE=DIR`` runs it on another tree of the ijpweb package (a copy with an
older ``ijpweb/batch``, say): that is how bench/README.md's "before" was taken.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
SOURCE = os.environ.get("IJP_BENCH_SOURCE")
if SOURCE:  # another tree of ijpweb than the editable install's (the "before" figures)
    sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f)]
    sys.path.insert(0, SOURCE)

import sqlalchemy as sa  # noqa: E402
import transaction  # noqa: E402
import webtest  # noqa: E402
from common import demo_database, goal, settings_for  # noqa: E402

from ijpweb import main as make_app  # noqa: E402
from ijpweb.batch.runner import JobSetup  # noqa: E402
from ijpweb.models import Job, get_session_factory, get_tm_session  # noqa: E402
from ijpweb.states import JobStatus  # noqa: E402

JOBS = int(os.environ.get("IJP_BENCH_JOBS", 100))
ROUNDS = int(os.environ.get("IJP_BENCH_ROUNDS", 5))
MAX_RUNNING = int(os.environ.get("IJP_BENCH_MAX_RUNNING", 4))
PROFILE = bool(os.environ.get("IJP_BENCH_PROFILE"))

ECHO = """<jobType acceptsDatasets='false' acceptsDatafiles='true'>
    <name>Echo</name>
    <multiple>true</multiple>
    <executable>echo</executable>
    <type>batch</type>
</jobType>
"""


class Portal:
    def __init__(self, tmp: Path):
        types = tmp / "jobtypes"
        types.mkdir()
        (types / "echo.xml").write_text(ECHO)
        self.settings = settings_for(
            f"sqlite:///{tmp / 'bench.sqlite'}", tmp,
            **{"ijp.jobtypes_dir": str(types), "ijp.batch.local.max_running": str(MAX_RUNNING)},
        )  # fmt: skip
        self.engine = demo_database(self.settings)
        self.app = make_app({"__file__": str(ROOT / "testing.ini")}, **self.settings)
        self.registry = self.app.app.registry if hasattr(self.app, "app") else self.app.registry
        self.scheduler = self.registry["ijp.scheduler"]
        self.local = self.registry["ijp.backends"]["local"]
        self.web = webtest.TestApp(self.app, extra_environ={"HTTP_HOST": "example.com"})
        self.web.get("/login")
        self.web.post("/login", {"username": "alice", "password": "alice-demo",
                                 "csrf_token": self.web.cookies["csrf_token"]}, status=303)  # fmt: skip
        self.token = self.web.cookies["csrf_token"]
        chosen = self.visible()
        assert len(chosen) >= JOBS, f"alice sees {len(chosen)} datafiles, {JOBS} are needed"
        for i in chosen[:JOBS]:
            self.web.post("/selection", {"action": "set", "kind": "datafile", "id": str(i), "checked": "1"},
                          headers={"HX-Request": "true", "X-CSRF-Token": self.token})  # fmt: skip

    def visible(self) -> list[int]:
        """The datafiles alice may read (the catalog's rules), in order."""
        catalog = self.registry["ijp.catalog_for"]
        tm = transaction.TransactionManager(explicit=True)
        with tm:
            db = get_tm_session(get_session_factory(self.engine), tm)
            cat = catalog(db)
            session = cat.login("db", {"username": "alice", "password": "alice-demo"}).session_id
            return sorted(cat.query(session, "SELECT df.id FROM Datafile df"))

    def click(self) -> None:
        form = self.web.get("/submit", {"jobtype": "Echo"}).forms["job-form"]
        form["mode"] = "each"
        form.submit(status=303)

    def round(self) -> dict[str, float]:
        """One round: seconds from the click to all Completed ("total"), and its phases:
        the click, the hand-over (the submitter), the jobs' run after it, the harvest."""
        with self.engine.connect() as conn:
            before = conn.scalar(sa.select(sa.func.max(Job.id))) or 0
        start = time.perf_counter()
        self.click()
        clicked = time.perf_counter()
        self.scheduler.submit()  # what the click wakes
        handed = time.perf_counter()
        with self.engine.connect() as conn:
            ids = conn.execute(sa.select(Job.id).where(Job.id > before)).scalars().all()
        assert len(ids) == JOBS, f"{len(ids)} jobs were made"
        ends = [self.local.root / str(i) / "exit.json" for i in ids]
        deadline = time.monotonic() + 600
        for end in ends:
            while not end.exists():
                if time.monotonic() > deadline:
                    raise SystemExit(f"{end} did not appear")
                time.sleep(0.001)
        harvest_from = time.perf_counter()
        self.scheduler.harvest()
        end = time.perf_counter()
        with self.engine.connect() as conn:
            states = conn.execute(sa.select(Job.status, sa.func.count()).where(Job.id > before)
                                  .group_by(Job.status)).all()  # fmt: skip
        assert dict(states) == {JobStatus.COMPLETED: JOBS}, f"not all Completed: {states}"
        self.last = ids
        return {"total": end - start, "click": clicked - start, "hand-over": handed - clicked,
                "run": harvest_from - handed, "harvest": end - harvest_from}  # fmt: skip


def plain_commands(portal: Portal, tmp: Path) -> list[tuple[list[str], dict, str, Path]]:
    """The argv, environment and directories of the portal's last round's jobs, rebuilt
    as their launchers built them, in fresh copies of their directories."""
    out = []
    for i in portal.last:
        src = portal.local.root / str(i)
        d = tmp / str(i)
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(mode=0o700)
        for sub in ("work", "output"):
            (d / sub).mkdir(mode=0o700)
        shutil.copy(src / "spec.json", d / "spec.json")
        setup = JobSetup(d)
        out.append((setup.command(), setup.env, setup.work, d))
    return out


def plain_round(commands) -> float:
    start = time.perf_counter()
    children = []
    for argv, env, cwd, d in commands:
        with open(d / "stdout", "wb") as out, open(d / "stderr", "wb") as err:
            children.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                             cwd=cwd, env=env, close_fds=True))  # fmt: skip
    codes = [c.wait() for c in children]
    took = time.perf_counter() - start
    assert codes == [0] * len(codes), f"exit codes {sorted(set(codes))}"
    return took


def main() -> int:
    if not os.access("/usr/bin/bwrap", os.X_OK):
        print("SKIPPED: bubblewrap is not installed (apt-get install bubblewrap)")
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="ijp-bench-localjobs-"))
    try:
        portal = Portal(tmp)
        plain_dir = tmp / "plain"
        plain_dir.mkdir()
        portal.round()  # warm-up: the first round compiles templates, fills caches
        import ijpweb

        print(f"source: {Path(ijpweb.__file__).parent}")
        print(f"{JOBS} one-per-input echo jobs, max_running {MAX_RUNNING}, sandbox bwrap; "
              f"{ROUNDS} interleaved rounds; load average {os.getloadavg()[0]:.1f}")  # fmt: skip
        rounds, plain = [], []
        for _ in range(ROUNDS):
            commands = plain_commands(portal, plain_dir)
            plain.append(plain_round(commands))
            if PROFILE and not rounds:
                prof = cProfile.Profile()
                prof.enable()
            rounds.append(portal.round())
            if PROFILE and len(rounds) == 1:
                prof.disable()
                text = io.StringIO()
                pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(25)
                print(text.getvalue())
        ours = [r["total"] for r in rounds]
        med, pmed = statistics.median(ours), statistics.median(plain)
        print(
            f"    portal, click to all Completed     median {med:6.2f} s   ({', '.join(f'{t:.2f}' for t in ours)})"
        )
        phases = ", ".join(
            f"{k} {statistics.median(r[k] for r in rounds):.2f} s"
            for k in ("click", "hand-over", "run", "harvest")
        )
        print(f"        of which (medians): {phases}")
        print(f"    plain Popen loop, same sandbox     median {pmed:6.2f} s   "
              f"({', '.join(f'{t:.2f}' for t in plain)})")  # fmt: skip
        ratios = [a / b for a, b in zip(ours, plain, strict=True)]
        goal(f"{JOBS} local jobs, click to all Completed / Popen loop", statistics.median(ratios), 3, "x")
        print(f"load average at the end {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
