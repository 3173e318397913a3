"""Benchmark of the job list (issue 12, points 1 and 6): ``/jobs``, its htmx rows and
``/api/v1/jobs`` with 10,000, 100,000 and 1,000,000 jobs, through HTTP on waitress.

    .venv/bin/python bench/bench_joblist.py                     # SQLite (files kept in IJP_BENCH_DIR)
    IJP_BENCH_DATABASE_URL=postgresql+psycopg://.../ijp_bench .venv/bin/python bench/bench_joblist.py

One database per size (SQLite: a file each under IJP_BENCH_DIR, default
/tmp/ijp-bench-joblist, kept and reused by the next run; PostgreSQL: ``<database>_<size>``
beside the one named, created when missing), filled with one INSERT ... SELECT each
(a recursive CTE on SQLite, generate_series on PostgreSQL). One portal process per size
(waitress, 8 threads, as testing.ini's [server:main]) and this process as the client,
keep-alive connections: for each round every case is asked of every size in turn, so the
ratio 1M/10k is measured in one run with the two sides interleaved. Then 8 clients at once
on the 100,000-job portal. Each figure is printed beside its goal (bench/common.goal).

The jobs: nine in ten db/alice's (the user who asks), one in ten db/bob's; one in 50
Failed, the rest Completed; one in 200 of the job type Sleepcount; one in ten of alice's
tagged calib; one submitted a minute.
"""

from __future__ import annotations

import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from http.cookies import SimpleCookie
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import demo_database, goal, percentile, settings_for  # noqa: E402

from ijpweb.jobs.actions import OLDER, JobQuery  # noqa: E402
from ijpweb.models import Job, Submission  # noqa: E402
from ijpweb.paging import Cursors  # noqa: E402

SIZES = [int(s) for s in os.environ.get("IJP_BENCH_SIZES", "10000,100000,1000000").split(",")]
ROUNDS = int(os.environ.get("IJP_BENCH_ROUNDS", 60))
CLIENTS = 8
PER_CLIENT = int(os.environ.get("IJP_BENCH_PER_CLIENT", 40))
THREADS = 8
SECRET = "bench"  # noqa: S105  (common.settings_for's auth.secret: the cursors below are the portal's own)
BATCH = 100_000

SQLITE_FILL = """
WITH RECURSIVE n(i) AS (SELECT :lo UNION ALL SELECT i + 1 FROM n WHERE i + 1 < :hi)
INSERT INTO job (submission_id, owner, job_type, dataset_ids, datafile_ids, options, argv, backend,
                 backend_job_id, status, exit_code, submitted_at, finished_at, input_names)
SELECT :sub + i / 20, CASE WHEN i % 10 = 0 THEN 'db/bob' ELSE 'db/alice' END,
       CASE WHEN i % 200 = 7 THEN 'Sleepcount' ELSE 'Date' END, '[1]', '[]', '{}', '[]', 'local',
       CAST(i AS TEXT), CASE WHEN i % 50 = 1 THEN 'Failed' ELSE 'Completed' END,
       CASE WHEN i % 50 = 1 THEN 1 ELSE 0 END,
       strftime('%Y-%m-%d %H:%M:%S', '2024-01-01', '+' || i || ' minutes') || '.000000',
       strftime('%Y-%m-%d %H:%M:%S', '2024-01-01', '+' || (i + 1) || ' minutes') || '.000000',
       '{"datasets": [[1, "scan-' || i || '.tif"]], "datafiles": []}'
FROM n
"""
POSTGRESQL_FILL = """
INSERT INTO job (submission_id, owner, job_type, dataset_ids, datafile_ids, options, argv, backend,
                 backend_job_id, status, exit_code, submitted_at, finished_at, input_names)
SELECT :sub + i / 20, CASE WHEN i % 10 = 0 THEN 'db/bob' ELSE 'db/alice' END,
       CASE WHEN i % 200 = 7 THEN 'Sleepcount' ELSE 'Date' END, '[1]'::json, '[]'::json, '{}'::json,
       '[]'::json, 'local', i::text, CASE WHEN i % 50 = 1 THEN 'Failed' ELSE 'Completed' END,
       CASE WHEN i % 50 = 1 THEN 1 ELSE 0 END,
       timestamptz '2024-01-01 00:00:00+00' + i * interval '1 minute',
       timestamptz '2024-01-01 00:00:00+00' + (i + 1) * interval '1 minute',
       ('{"datasets": [[1, "scan-' || i || '.tif"]], "datafiles": []}')::json
FROM generate_series(:lo, :hi - 1) AS i
"""
# one submission per 20 jobs (a click of one job per input; the job list groups them), made first
SQLITE_SUBMISSIONS = """
WITH RECURSIVE n(k) AS (SELECT :lo UNION ALL SELECT k + 1 FROM n WHERE k + 1 < :hi)
INSERT INTO submission (id, owner, job_type, mode, created_at, executable, interactive, resources)
SELECT :sub + k, 'db/alice', 'Date', 'each', '2024-01-01 00:00:00.000000', 'date', 0, '{}' FROM n
"""
POSTGRESQL_SUBMISSIONS = """
INSERT INTO submission (id, owner, job_type, mode, created_at, executable, interactive, resources)
SELECT :sub + k, 'db/alice', 'Date', 'each', timestamptz '2024-01-01 00:00:00+00', 'date', false, '{}'::json
FROM generate_series(:lo, :hi - 1) AS k
"""
TAGS = "INSERT INTO job_tag (job_id, tag, owner) SELECT id, 'calib', owner FROM job WHERE id % 10 = 3 AND id > :after"


def database_url(size: int, tmp: Path) -> str:
    base = os.environ.get("IJP_BENCH_DATABASE_URL")
    if not base:
        return f"sqlite:///{tmp / f'jobs-{size}.sqlite'}"
    url = sa.engine.make_url(base)
    name = f"{url.database}_{size}"
    engine = sa.create_engine(base, isolation_level="AUTOCOMMIT")
    with engine.connect() as c:
        if not c.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first():
            c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    return url.set(database=name).render_as_string(hide_password=False)


def fill(engine, size: int) -> float:
    """``size`` jobs in the database (added to what is there); seconds it took."""
    began = time.monotonic()
    with engine.begin() as c:
        have = c.execute(sa.select(sa.func.count(Job.id))).scalar()
        if have >= size:
            return 0.0
        last = c.execute(sa.select(sa.func.max(Job.id))).scalar() or 0
        if have:
            raise SystemExit(f"{engine.url!r} holds {have:,} jobs, not {size:,}: remove it to load it afresh")
        # job i belongs to submission sub + i // 20
        sub = (c.execute(sa.select(sa.func.max(Submission.id))).scalar() or 0) + 1
        pg = engine.dialect.name == "postgresql"
        c.execute(sa.text(POSTGRESQL_SUBMISSIONS if pg else SQLITE_SUBMISSIONS),
                  {"sub": sub, "lo": 0, "hi": (size + 19) // 20})  # fmt: skip
        if pg:  # (ids given: the sequence follows)
            c.exec_driver_sql("SELECT setval('submission_id_seq', (SELECT max(id) FROM submission))")
        fill_sql = sa.text(POSTGRESQL_FILL if pg else SQLITE_FILL)
        for lo in range(0, size, BATCH):
            c.execute(fill_sql, {"sub": sub, "lo": lo, "hi": min(size, lo + BATCH)})
        c.execute(sa.text(TAGS), {"after": last})
    return time.monotonic() - began


def settle(engine) -> None:
    """ANALYZE; on PostgreSQL also VACUUM, as autovacuum would have done after such a load:
    the visibility map lets index-only scans (the bounded counts) skip the table. (Run
    once every database is loaded: a VACUUM right after its load found the rows not yet
    visible to every transaction and marked no page all-visible.)"""
    with engine.connect() as c:
        vacuum = "VACUUM ANALYZE job, job_tag" if engine.dialect.name == "postgresql" else "ANALYZE"
        c.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(vacuum)


def serve(settings_file: str, port: str) -> None:
    """The portal for one database, as a process of its own (``--serve``)."""
    from waitress import serve as waitress_serve

    from ijpweb import main

    settings = json.loads(Path(settings_file).read_text())
    waitress_serve(main({}, **settings), host="127.0.0.1", port=int(port), threads=THREADS, _quiet=True)


class Client:
    """One keep-alive HTTP connection, logged in as db/alice (the cookie for the pages, a
    bearer token for the API)."""

    def __init__(self, port: int, cookie: str = "", token: str = ""):
        self.port, self.cookie, self.token = port, cookie, token
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def request(self, method, path, body=None, headers=None):
        headers = {"Host": f"127.0.0.1:{self.port}", **(headers or {})}
        self.conn.request(method, path, body=body, headers=headers)
        resp = self.conn.getresponse()
        data = resp.read()
        return resp, data

    def login(self) -> Client:
        resp, _ = self.request("GET", "/login")
        jar = SimpleCookie()
        jar.load(", ".join(v for k, v in resp.getheaders() if k.lower() == "set-cookie"))
        csrf = jar["csrf_token"].value
        form = urllib.parse.urlencode({"username": "alice", "password": "alice-demo", "csrf_token": csrf})
        resp, _ = self.request("POST", "/login", form, {"Content-Type": "application/x-www-form-urlencoded",
                                                         "Cookie": f"csrf_token={csrf}"})  # fmt: skip
        assert resp.status == 303, resp.status
        for k, v in resp.getheaders():
            if k.lower() == "set-cookie":
                jar.load(v)
        self.cookie = "; ".join(f"{k}={m.value}" for k, m in jar.items())
        body = json.dumps({"username": "alice", "password": "alice-demo"})
        resp, data = self.request("POST", "/api/v1/session", body, {"Content-Type": "application/json"})
        assert resp.status == 201, (resp.status, data[:200])
        self.token = json.loads(data)["token"]
        return self

    def copy(self) -> Client:
        return Client(self.port, self.cookie, self.token)

    def get(self, path: str, kind: str) -> int:
        """GET ``path`` as a page, htmx rows or API call; the size of the body."""
        headers = {"Cookie": self.cookie}
        if kind == "rows":
            headers["HX-Request"] = "true"
        elif kind == "api":
            headers = {"Authorization": f"Bearer {self.token}"}
        resp, data = self.request("GET", path, headers=headers)
        assert resp.status == 200, (path, resp.status, data[:300])
        return len(data)


def start_portal(settings: dict, tmp: Path, port: int) -> subprocess.Popen:
    settings_file = tmp / f"settings-{port}.json"
    settings_file.write_text(json.dumps(settings))
    proc = subprocess.Popen([sys.executable, __file__, "--serve", str(settings_file), str(port)])
    deadline = time.monotonic() + 60
    while True:
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=2).request("GET", "/login")
            return proc
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise RuntimeError(f"the portal on port {port} did not start") from None
            time.sleep(0.2)


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cases(size: int, deep_id: int) -> dict[str, tuple[str, str]]:
    """Name -> (path, kind). The deep page is the one after job ``deep_id`` (half-way down
    alice's list), with a cursor signed as the portal signs them (the same secret)."""
    cursors = Cursors(SECRET)
    deep = cursors.encode(JobQuery("db/alice").scope(), (OLDER, deep_id))
    deep_failed = cursors.encode(JobQuery("db/alice", status="Failed").scope(), (OLDER, deep_id))
    start = datetime(2024, 1, 1, tzinfo=UTC)  # (job i was submitted i minutes after it)
    middle = urllib.parse.urlencode({"since": (start + timedelta(minutes=size // 4)).isoformat(),
                                     "until": (start + timedelta(minutes=size * 3 // 4)).isoformat()})  # fmt: skip
    return {
        "/jobs (page)": ("/jobs", "page"),
        "/jobs (htmx rows)": ("/jobs", "rows"),
        "/jobs?grouped=0 (page, no groups)": ("/jobs?grouped=0", "page"),
        "/jobs?cursor=half-way (page)": (f"/jobs?cursor={deep}", "page"),
        "/jobs?tag=calib (page)": ("/jobs?tag=calib", "page"),
        "/api/v1/jobs": ("/api/v1/jobs", "api"),
        "/api/v1/jobs?cursor=half-way": (f"/api/v1/jobs?cursor={deep}", "api"),
        "/api/v1/jobs?status=Failed&cursor=half-way": (
            f"/api/v1/jobs?status=Failed&cursor={deep_failed}",
            "api",
        ),
        "/api/v1/jobs?since=&until= (the middle half)": (f"/api/v1/jobs?{middle}", "api"),
    }


def main_() -> None:
    tmp = Path(os.environ.get("IJP_BENCH_DIR") or tempfile.gettempdir()) / "ijp-bench-joblist"
    tmp.mkdir(parents=True, exist_ok=True)
    portals, clients, engines = {}, {}, {}
    try:
        for size in SIZES:
            settings = settings_for(
                database_url(size, tmp), tmp / str(size), **{"ijp.batch.local.sandbox": "none"}
            )
            engine = engines[size] = demo_database(settings)
            took = fill(engine, size)
            print(
                f"{engine.dialect.name}: {size:,} jobs"
                + (f" (loaded in {took:.1f} s)" if took else " (kept)")
            )
            port = free_port()
            portals[size] = start_portal(settings, tmp, port)
            clients[size] = Client(port).login()
        db_name = engines[SIZES[0]].dialect.name
        for engine in engines.values():
            settle(engine)
        deep = {}
        for size, engine in engines.items():
            with engine.connect() as c:
                ids = c.execute(sa.select(sa.func.min(Job.id), sa.func.max(Job.id))).one()
                deep[size] = (ids[0] + ids[1]) // 2
        table = {size: cases(size, deep[size]) for size in SIZES}
        times = {(size, name): [] for size in SIZES for name in table[size]}
        sizes_seen = {}
        for _ in range(3):  # warm up
            for size in SIZES:
                for name, (path, kind) in table[size].items():
                    sizes_seen[(size, name)] = clients[size].get(path, kind)
        for _ in range(ROUNDS):
            for name in table[SIZES[0]]:
                for size in SIZES:
                    path, kind = table[size][name]
                    t = time.perf_counter()
                    clients[size].get(path, kind)
                    times[(size, name)].append((time.perf_counter() - t) * 1000)
        print(f"\nsingle client, {ROUNDS} rounds interleaved (p50 / p95 ms, body size):")
        for name in table[SIZES[0]]:
            cells = "  ".join(
                f"{size:>9,}: {statistics.median(times[(size, name)]):6.1f} / {percentile(times[(size, name)], 95):6.1f}"
                f" ({sizes_seen[(size, name)] / 1024:4.0f} KB)"
                for size in SIZES
            )
            print(f"  {name:44} {cells}")
        print()
        small, big = SIZES[0], SIZES[-1]
        for name in table[small]:
            ratio = statistics.median(times[(big, name)]) / statistics.median(times[(small, name)])
            goal(f"{db_name} {name}: p50 {big:,} / {small:,} jobs", ratio, 1.5, "x")
        worst = max(times, key=lambda k: percentile(times[k], 95))
        goal(
            f"{db_name} single client p95, worst ({worst[1]} at {worst[0]:,})",
            percentile(times[worst], 95),
            100,
            "ms",
        )
        concurrent(db_name, clients, table)
        big_group(db_name, engines[SIZES[-1]])
        for size in SIZES:
            export(db_name, size, clients[size], portals[size].pid)
    finally:
        for proc in portals.values():
            proc.terminate()
        for proc in portals.values():
            proc.wait(timeout=30)
        for engine in engines.values():
            engine.dispose()


def concurrent(db_name: str, clients: dict, table: dict) -> None:
    """CLIENTS clients at once on the 100,000-job portal, each asking PER_CLIENT times
    for the page, the rows and the API's first page in turn."""
    size = 100_000 if 100_000 in clients else sorted(clients)[len(clients) // 2]
    mix = [table[size][n] for n in ("/jobs (page)", "/jobs (htmx rows)", "/api/v1/jobs")]
    times: list[float] = []
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)

    def run(client: Client):
        mine = []
        start.wait()
        for k in range(PER_CLIENT):
            path, kind = mix[k % len(mix)]
            t = time.perf_counter()
            client.get(path, kind)
            mine.append((time.perf_counter() - t) * 1000)
        with lock:
            times.extend(mine)

    threads = [threading.Thread(target=run, args=(clients[size].copy(),)) for _ in range(CLIENTS)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - began
    print(f"\n{CLIENTS} clients at {size:,} jobs: {len(times)} requests in {wall:.1f} s ({len(times) / wall:.0f}/s), "
          f"p50 {statistics.median(times):.1f} ms")  # fmt: skip
    goal(f"{db_name} {CLIENTS} clients at {size:,} jobs: p95", percentile(times, 95), 150, "ms")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def export(db_name: str, size: int, client: Client, pid: int) -> None:
    """GET /jobs/export?format=csv (every one of alice's jobs), read in 64 KB chunks as it
    comes, while another thread samples the portal process's RSS every 20 ms: its peak
    over the RSS before shows whether the export is held in memory."""
    before = rss_kib(pid)
    peak, done = [before], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_kib(pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample)
    sampler.start()
    conn = http.client.HTTPConnection("127.0.0.1", client.port, timeout=600)
    t = time.perf_counter()
    conn.request("GET", "/jobs/export?format=csv", headers={"Cookie": client.cookie})
    resp = conn.getresponse()
    assert resp.status == 200, resp.status
    total, lines = 0, 0
    while chunk := resp.read(65536):
        total += len(chunk)
        lines += chunk.count(b"\n")
    took = time.perf_counter() - t
    done.set()
    sampler.join()
    conn.close()
    print(f"{db_name} export of {lines - 1:,} jobs (of {size:,}): {total / 1e6:.1f} MB in {took:.1f} s "
          f"({(lines - 1) / took:,.0f} jobs/s); portal RSS {before / 1024:.0f} MiB before, "
          f"peak {peak[0] / 1024:.0f} MiB (+{(peak[0] - before) / 1024:.1f})")  # fmt: skip


def big_group(db_name: str, engine, jobs: int = 20_000, rounds: int = 30) -> None:
    """The most a group's meter counts: a submission of 20,000 jobs (the API's 10,000
    datasets and 10,000 datafiles, one job each) added in a transaction rolled back after;
    the time of ijpweb.jobs.actions.submission_counts for it."""
    from sqlalchemy.orm import Session

    from ijpweb.jobs.actions import submission_counts

    with engine.connect() as c, c.begin() as tx:
        sub = c.execute(sa.insert(Submission).values(owner="db/alice", job_type="Date", mode="each",
                                                     executable="date")).inserted_primary_key[0]  # fmt: skip
        c.execute(sa.insert(Job), [{"submission_id": sub, "owner": "db/alice", "job_type": "Date", "backend": "local",
                                    "status": "Completed" if i % 3 else "Failed", "dataset_ids": [], "datafile_ids": [],
                                    "options": {}, "argv": []} for i in range(jobs)])  # fmt: skip
        db = Session(bind=c)
        counts = submission_counts(db, "db/alice", [sub])
        assert counts[sub]["total"] == jobs, counts
        times = []
        for _ in range(rounds):
            t = time.perf_counter()
            submission_counts(db, "db/alice", [sub])
            times.append((time.perf_counter() - t) * 1000)
        tx.rollback()
    print(f"{db_name} a group of {jobs:,} jobs counted (submission_counts): p50 {statistics.median(times):.1f} / "
          f"p95 {percentile(times, 95):.1f} ms")  # fmt: skip


if __name__ == "__main__":
    if sys.argv[1:2] == ["--serve"]:
        serve(*sys.argv[2:4])
    else:
        main_()
