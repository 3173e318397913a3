"""Fifty users at once (issue 12, points 5 and 6): the portal started as production runs it,
fifty clients for a minute on a mixed workload, through HTTP.

    .venv/bin/python bench/bench_load.py                     # SQLite, one portal process
    IJP_BENCH_DATABASE_URL=postgresql+psycopg://... .venv/bin/python bench/bench_load.py
    options: --seconds 60 --clients 50 --processes N --jobs 100000 --profile

The server: ``pserve`` with production.ini's own settings (its [app:main], its waitress
``threads``, its pool sizes, its argon2 hasher, the bubblewrap sandbox), each process on a
Unix socket of its own as behind Apache, the clients sending X-Forwarded-For as Apache does
and spread over the processes as Apache's balancer spreads them. Only what must differ on
this machine is changed: the database, the directories, no prefix-independent paths.
On PostgreSQL ``--processes`` (default 2) portal processes share the database; SQLite is
for one process only.

The data: the demo catalog, 50 more catalog users (members of the demo investigations,
with passwords hashed by the portal's hasher) and ``--jobs`` finished jobs spread over them.

The load, after each client has logged in twice (the web form and /api/v1/session: 100
logins, timed): each of ``--clients`` threads, as its own user, picks at random with these
weights and without pause: the job list page (30), one of its jobs' page (30), a dataset
search by name or type (25), an /api/v1 submission of one Date job (10), and a web login
(5: GET /login, POST /login). Every answer is checked (status and, for submissions, the
jobs made). Afterwards every submitted job is looked up in the database: each must be there,
terminal or still live.

``--profile`` samples the portal processes' request threads every 5 ms (sys._current_frames)
and counts SQL statements per request kind; the report is printed at the end.
"""

from __future__ import annotations

import argparse
import collections
import configparser
import contextlib
import cProfile
import http.client
import json
import os
import pstats
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from common import demo_database, goal, percentile, settings_for  # noqa: E402

USERS = 50
PASSWORD = "load-user-password-{:02d}"  # noqa: S105 - the benchmark's own throw-away users
WEIGHTS = {"job list": 30, "job page": 30, "dataset search": 25, "submission": 10, "login": 5}
SECRET = "bench-load-secret-" + "0" * 32  # noqa: S105 - a throw-away database's
IDS_KEY = "bench-load-ids-key-not-for-production"


# --- the database -------------------------------------------------------------------------


def prepare(url: str, tmp: Path, jobs: int) -> list[str]:
    """Migrate, load the demo, add the bench users and finished jobs up to ``jobs`` of theirs
    (a database of an earlier run keeps what it has and gets what is missing); return the
    users' names."""
    from ijpweb.catalog.icatdb import TABLES as T
    from ijpweb.models import DbCredential, Job, Submission
    from ijpweb.passwords import hash_password
    from ijpweb.states import JobStatus

    engine = demo_database(settings_for(url, tmp))
    names = [f"load{i:02d}" for i in range(USERS)]
    now = datetime.now(UTC)
    with engine.begin() as c:
        known = {
            r[0] for r in c.execute(sa.select(DbCredential.username).where(DbCredential.username.in_(names)))
        }
        invs = [r.id for r in c.execute(sa.select(T["Investigation"].c.id).order_by(T["Investigation"].c.id))]
        for i, name in enumerate(names):
            if name in known:
                continue
            c.execute(
                sa.insert(DbCredential).values(username=name, password_hash=hash_password(PASSWORD.format(i)))
            )
            uid = c.execute(T["User"].insert().values(name=f"db/{name}", fullName=name, createId="simple/root",
                                                      createTime=now)).inserted_primary_key[0]  # fmt: skip
            for inv in (invs[i % len(invs)], invs[(i + 1) % len(invs)]):
                c.execute(T["InvestigationUser"].insert().values(user_id=uid, investigation_id=inv, role="member",
                                                                 createId="simple/root", createTime=now))  # fmt: skip
        have = c.execute(
            sa.select(sa.func.count()).select_from(Job).where(Job.owner.like("db/load%"))
        ).scalar()
        share = max(0, jobs - have) // USERS
        statuses = [JobStatus.COMPLETED] * 8 + [JobStatus.FAILED, JobStatus.CANCELLED]
        for k, name in enumerate(names if share else []):
            sub = c.execute(sa.insert(Submission).values(owner=f"db/{name}", job_type="Date", mode="each",
                                                         executable="date", created_at=now)).inserted_primary_key[0]  # fmt: skip
            rows = [
                {"submission_id": sub, "owner": f"db/{name}", "job_type": "Date", "dataset_ids": [], "datafile_ids": [],
                 "options": {}, "argv": ["date"], "backend": "local", "backend_job_id": f"bench-{k}-{have + i}",
                 "status": statuses[i % len(statuses)], "exit_code": 0,
                 "submitted_at": now - timedelta(minutes=share - i), "finished_at": now - timedelta(minutes=share - i)}
                for i in range(share)
            ]  # fmt: skip
            for start in range(0, len(rows), 10_000):
                c.execute(sa.insert(Job), rows[start : start + 10_000])
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()
    return names


# --- the portal, as production runs it ----------------------------------------------------


def write_ini(
    tmp: Path, url: str, processes: int, overrides: dict[str, str]
) -> tuple[Path, list[tuple[str, Path]]]:
    """production.ini with this machine's database and directories, and one [server:pN]
    section per process (production.ini's [server:main], on a socket in ``tmp``)."""
    prod = configparser.RawConfigParser(strict=False)
    prod.optionxform = str
    prod.read(ROOT / "production.ini", encoding="utf-8")
    app = prod["app:main"]
    app.update({
        "sqlalchemy.url": url, "ijp.jobtypes_dir": str(ROOT / "jobtypes"), "ijp.datasettypes_dir": str(ROOT / "datasettypes"),
        "ijp.filestore": str(tmp / "files"), "ijp.batch.local.dir": str(tmp / "jobs"),
        "ijp.batch.local.path": str(ROOT / "jobtypes" / "scripts"), "ijp.scheduler.namespace": f"bench-load-{os.getpid()}",
        "ijp.batch.local.read_only": "",
    })  # fmt: skip
    server = dict(prod["server:main"])
    for key, value in overrides.items():  # --set: server.threads=4, sqlalchemy.pool_size=10...
        if key.startswith("server."):
            server[key.removeprefix("server.")] = value
        else:
            app[key] = value
    sockets = []
    for section in [s for s in prod.sections() if s.startswith("server:")]:
        prod.remove_section(section)
    for n in range(processes):
        name, path = f"p{n}", tmp / f"p{n}.sock"
        prod[f"server:{name}"] = {**server, "unix_socket": str(path)}
        sockets.append((name, path))
    prod["alembic"]["script_location"] = str(ROOT / "migrations")
    ini = tmp / "bench-production.ini"
    with open(ini, "w", encoding="utf-8") as f:
        prod.write(f)
    return ini, sockets


def start_portal(ini: Path, name: str, profile_dir: Path | None, how: str, log: Path) -> subprocess.Popen:
    env = dict(os.environ, IJP_AUTH_SECRET=SECRET, IJP_IDS_KEY=IJP_IDS_KEY_VALUE, PYTHONPATH=str(ROOT))
    if profile_dir is not None:
        cmd = [sys.executable, str(Path(__file__)), "--serve-profiled", str(ini), name, str(profile_dir / f"{name}.json"),
               how]  # fmt: skip
    else:
        cmd = [str(ROOT / ".venv" / "bin" / "pserve"), str(ini), "--server-name", name]
    return subprocess.Popen(
        cmd, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
    )  # noqa: S603


IJP_IDS_KEY_VALUE = IDS_KEY


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP on a Unix socket, as Apache's BalancerMember "unix:...|http://main" talks."""

    def __init__(self, path: Path, timeout: float = 60):
        super().__init__("localhost", timeout=timeout)
        self.socket_path = str(path)

    def connect(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        s.connect(self.socket_path)
        self.sock = s


def wait_ready(sockets, procs, prefix: str, deadline: float) -> None:
    for (_, path), proc in zip(sockets, procs, strict=True):
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"a portal process ended at start (exit {proc.returncode}); see its log")
            try:
                c = UnixHTTPConnection(path, 5)
                c.request("GET", prefix + "/healthz", headers={"Host": "ijp.example.org"})
                if c.getresponse().status in (200, 503):
                    c.close()
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the portal did not start within 120 s")
            time.sleep(0.2)


# --- the clients --------------------------------------------------------------------------


class Client:
    """One user's browser and API script, through the balancer: a connection to each portal
    process, requests spread round-robin (cookies and tokens work in every process)."""

    def __init__(self, k: int, user: str, sockets, prefix: str):
        self.k, self.user, self.password, self.prefix = k, user, PASSWORD.format(k), prefix
        self.conns = [UnixHTTPConnection(path) for _, path in sockets]
        self.turn = k
        self.cookies: dict[str, str] = {}
        self.token = ""
        self.job_ids: list[int] = []
        self.submitted: list[int] = []
        self.address = f"10.1.{k // 250}.{k % 250 + 1}"

    def request(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
        self.turn += 1
        i = self.turn % len(self.conns)
        h = {"Host": "ijp.example.org", "X-Forwarded-For": self.address, "X-Forwarded-Proto": "https",
             **(headers or {})}  # fmt: skip
        if method == "POST":
            h["Origin"] = "https://ijp.example.org"  # (as a browser sends it; Pyramid checks it over https)
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        t = time.monotonic()
        for attempt in (0, 1):
            conn = self.conns[i]
            try:
                conn.request(method, self.prefix + path, body=body, headers=h)
                r = conn.getresponse()
                data = r.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()  # a kept-alive connection the server closed: once more on a new one
                if attempt:
                    raise
        self.last_ms = (time.monotonic() - t) * 1000
        self.last = (method, path, r.status, data[:300])
        for value in r.headers.get_all("Set-Cookie") or []:
            name, _, rest = value.partition("=")
            self.cookies[name.strip()] = rest.split(";", 1)[0]
        return r.status, data

    def web_login(self) -> list[tuple[str, bool, float]]:
        s1, _ = self.request("GET", "/login")
        first = self.last_ms
        form = urllib.parse.urlencode({"username": self.user, "password": self.password,
                                       "csrf_token": self.cookies.get("csrf_token", ""), "next": ""})  # fmt: skip
        s2, _ = self.request(
            "POST", "/login", form.encode(), {"Content-Type": "application/x-www-form-urlencoded"}
        )
        return [("login form", s1 == 200, first), ("login", s2 == 303, self.last_ms)]

    def api_login(self) -> bool:
        s, data = self.request("POST", "/api/v1/session", json.dumps({"username": self.user, "password": self.password}).encode(),
                               {"Content-Type": "application/json"})  # fmt: skip
        if s == 201:
            self.token = json.loads(data)["token"]
        return s == 201

    def step(self, kind: str, rng: random.Random) -> list[tuple[str, bool, float]]:
        """One click of ``kind``: each request made, whether its answer was right, its ms."""
        if kind == "job list":
            s, _ = self.request("GET", "/jobs")
            return [(kind, s == 200, self.last_ms)]
        if kind == "job page":
            job = rng.choice(self.submitted[-20:] + self.job_ids)
            s, _ = self.request("GET", f"/jobs/{job}")
            return [(kind, s == 200, self.last_ms)]
        if kind == "dataset search":
            q = {"name": rng.choice(["confocal", "widefield", "light", "0"])} if rng.random() < 0.5 else \
                {"type": rng.choice(["widefield", "confocal", "lightsheet"])}  # fmt: skip
            s, _ = self.request("GET", "/datasets?" + urllib.parse.urlencode(q))
            return [(kind, s == 200, self.last_ms)]
        if kind == "submission":
            body = json.dumps({"job_type": "Date"}).encode()
            s, data = self.request("POST", "/api/v1/submissions", body,
                                   {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"})  # fmt: skip
            ok = s == 201
            if ok:
                self.submitted += [j["id"] for j in json.loads(data)["jobs"]]
            return [(kind, ok, self.last_ms)]
        return self.web_login()


def run_clients(clients, seconds: float, rate: float = 0, seed: int = 12):
    """Each client in its own thread until the deadline, without pause (``rate`` 0) or
    each starting a click every len(clients)/rate seconds (so that all together offer
    ``rate`` clicks a second; a client that falls behind starts its next at once); return
    the (kind, ok, start, milliseconds) of every request."""
    records: list[tuple[str, bool, float, float]] = []
    lock = threading.Lock()
    kinds, weights = list(WEIGHTS), list(WEIGHTS.values())
    begin = time.monotonic()
    end = begin + seconds
    interval = len(clients) / rate if rate else 0.0
    failures: list = []

    def loop(client: Client):
        rng = random.Random(seed * 1000 + client.k)  # noqa: S311 - a workload, not a secret
        mine = []
        due = begin + rng.uniform(0, interval)
        while time.monotonic() < end:
            if interval:
                time.sleep(max(0.0, due - time.monotonic()))
                due = max(due + interval, time.monotonic() - interval)
            kind = rng.choices(kinds, weights)[0]
            t = time.monotonic()
            try:
                results = client.step(kind, rng)
            except Exception:  # noqa: BLE001 - counted as the error it is
                results = [(kind, False, (time.monotonic() - t) * 1000)]
            mine += [(k, ok, t, ms) for k, ok, ms in results]
            if not all(ok for _, ok, _ in results) and len(failures) < 5:
                failures.append(getattr(client, "last", None))
        with lock:
            records.extend(mine)

    threads = [threading.Thread(target=loop, args=(c,)) for c in clients]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for failure in failures:
        print(f"   an error: {failure}")
    return records


def warm_up(clients) -> None:
    """Each client clicks each kind once, untimed: a process compiles each template when it
    first renders it (about 20 ms each, and several threads may compile the same one at
    once), which is the first minute after a start, not the steady state measured here."""
    rng = random.Random(0)  # noqa: S311 - a workload, not a secret

    def clicks(c: Client):
        for kind in WEIGHTS:
            if kind != "login":
                c.step(kind, rng)

    threads = [threading.Thread(target=clicks, args=(c,)) for c in clients]
    for th in threads:
        th.start()
    for th in threads:
        th.join()


def logins(clients) -> tuple[float, list[float], int]:
    """Every client logs in on the web form and on /api/v1 at once: the seconds all took,
    each login's milliseconds, and how many failed."""
    times: list[float] = []
    failed = []
    lock = threading.Lock()

    def one(c: Client):
        t = time.monotonic()
        web = all(ok for _, ok, _ in c.web_login())
        t2 = time.monotonic()
        api = c.api_login()
        t3 = time.monotonic()
        with lock:
            times.extend([(t2 - t) * 1000, (t3 - t2) * 1000])
            failed.extend([not web, not api])

    start = time.monotonic()
    threads = [threading.Thread(target=one, args=(c,)) for c in clients]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return time.monotonic() - start, times, sum(failed)


# --- the profile (--profile) --------------------------------------------------------------


def serve_profiled(ini: str, name: str, out: str, how: str) -> None:
    """pserve, with a sampler of the request threads, the SQL statements and CPU time per
    request kind and (``how`` = cprofile) cProfile in every request thread, timed by each
    thread's CPU time, written next to ``out`` at SIGTERM."""
    deterministic = how == "cprofile"
    from pyramid.router import Router
    from sqlalchemy.engine import Engine

    here = threading.get_ident()
    stacks: collections.Counter = collections.Counter()
    leaves: collections.Counter = collections.Counter()
    statements = threading.local()
    per_kind: dict[str, list[int]] = collections.defaultdict(list)
    samples = [0]

    @sa.event.listens_for(Engine, "before_cursor_execute")
    def _count(*_a):
        statements.n = getattr(statements, "n", 0) + 1

    connections = [0]

    @sa.event.listens_for(sa.pool.Pool, "connect")
    def _connected(*_a):
        connections[0] += 1

    call = Router.__call__
    cpu: dict[str, list[float]] = collections.defaultdict(list)
    profiles: list = []
    mine = threading.local()

    def counted(self, environ, start_response):
        statements.n = 0
        if deterministic and not hasattr(mine, "profile"):
            mine.profile = cProfile.Profile(time.thread_time)  # (each thread's CPU time)
            profiles.append(mine.profile)
        t = time.thread_time()
        if deterministic:
            mine.profile.enable()
        try:
            return call(self, environ, start_response)
        finally:
            if deterministic:
                mine.profile.disable()
            path = environ.get("PATH_INFO", "")
            kind = (
                environ.get("REQUEST_METHOD", "")
                + " "
                + "/".join("N" if p.isdigit() else p for p in path.split("/")[:4])
            )
            per_kind[kind].append(statements.n)
            cpu[kind].append((time.thread_time() - t) * 1000)

    Router.__call__ = counted

    def where(code) -> str:
        f = code.co_filename
        for cut in ("site-packages/", "/ijpweb/", "/lib/python3"):
            if cut in f:
                f = f.split(cut, 1)[1]
                break
        return f"{f}:{code.co_name}"

    def sample():
        while True:
            time.sleep(0.005)
            for ident, frame in sys._current_frames().items():
                if ident == here or ident == threading.get_ident():
                    continue
                names = []
                f = frame
                while f is not None:
                    names.append(where(f.f_code))
                    f = f.f_back
                if not any("router.py" in n for n in names):
                    continue  # an idle thread (waiting for a request), the scheduler's...
                samples[0] += 1
                leaves[names[0]] += 1
                for n in set(names):
                    stacks[n] += 1

    def thread_cpu() -> dict[str, float]:
        """CPU seconds of this process's threads so far, by kind of thread (the request
        threads, waitress's main loop, the scheduler's...), from /proc."""
        names = {t.native_id: t.name for t in threading.enumerate()}
        tick = os.sysconf("SC_CLK_TCK")
        out: collections.Counter = collections.Counter()
        for task in Path("/proc/self/task").iterdir():
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                name = names.get(int(task.name), "(a thread not of Python's)")
                kind = "".join(c for c in name if not c.isdigit()).rstrip("-_ ") or name
                out[kind] += (int(fields[11]) + int(fields[12])) / tick
        return dict(out)

    def dump(*_):
        data = {"samples": samples[0], "connections": connections[0], "threads": thread_cpu(), "cumulative": stacks.most_common(80), "self": leaves.most_common(40),
                "statements": {k: [len(v), statistics.mean(v), statistics.mean(cpu[k])] for k, v in per_kind.items()}}  # fmt: skip
        Path(out).write_text(json.dumps(data))
        if profiles:
            stats = pstats.Stats(profiles[0])
            for prof in profiles[1:]:
                stats.add(prof)
            stats.dump_stats(out + ".pstats")
        os._exit(0)

    signal.signal(signal.SIGTERM, dump)
    threading.Thread(target=sample, daemon=True).start()
    from pyramid.scripts.pserve import main as pserve

    pserve(["pserve", ini, "--server-name", name])


def print_profile(profile_dir: Path) -> None:
    for f in sorted(profile_dir.glob("*.json")):
        data = json.loads(f.read_text())
        n = max(1, data["samples"])
        print(f"-- profile of {f.stem}: {data['samples']} samples of busy request threads; "
              f"{data['connections']} database connections opened")  # fmt: skip
        print(
            "   CPU seconds by thread: "
            + ", ".join(f"{k} {v:.1f}" for k, v in sorted(data["threads"].items(), key=lambda kv: -kv[1]))
        )
        print("   cumulative (share of busy samples in which the function is on the stack):")
        for name, count in data["cumulative"][:45]:
            print(f"   {100 * count / n:5.1f}%  {name}")
        print("   self (the innermost frame):")
        for name, count in data["self"][:25]:
            print(f"   {100 * count / n:5.1f}%  {name}")
        print("   per request: SQL statements, CPU ms of its thread (Python and SQLite's C)")
        for kind, (count, mean, cpu) in sorted(data["statements"].items(), key=lambda kv: -kv[1][0])[:15]:
            print(f"   {count:7d} x {kind:40} {mean:5.1f} statements  {cpu:6.2f} ms CPU")
        pst = f.with_suffix(".json.pstats")
        if pst.exists():
            print(f"   cProfile (CPU time of the request threads), {pst}:")
            stats = pstats.Stats(str(pst))
            stats.sort_stats("tottime").print_stats(30)
            stats.sort_stats("cumulative").print_stats(40)


# --- the run ------------------------------------------------------------------------------


def account(url: str, submitted: list[int], wait: float) -> dict[str, int]:
    """Every submitted job's state in the database after up to ``wait`` seconds for the
    live ones to end: {'lost': n, status: n...}."""
    from ijpweb.models import Job
    from ijpweb.states import JobStatus

    engine = sa.create_engine(url)
    terminal = {JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED}
    deadline = time.monotonic() + wait
    while True:
        found: dict[int, JobStatus] = {}
        with engine.connect() as c:
            for start in range(0, len(submitted), 1000):
                chunk = submitted[start : start + 1000]
                found.update(c.execute(sa.select(Job.id, Job.status).where(Job.id.in_(chunk))).all())
        if all(s in terminal for s in found.values()) or time.monotonic() > deadline:
            break
        time.sleep(1)
    engine.dispose()
    counts = collections.Counter(str(s.value) for s in found.values())
    counts["lost"] = len(set(submitted) - set(found))
    return dict(counts)


def hashers(rounds: int = 20) -> None:
    """One login's argon2 verification with argon2-cffi's default parameters (what the
    portal used before issue 12) and with the portal's (ijpweb.passwords), interleaved."""
    from argon2 import PasswordHasher

    from ijpweb import passwords

    old = PasswordHasher()
    stored = {"default (m=64 MiB, t=3, p=4)": (old, old.hash("pw")),
              "portal (m=19 MiB, t=2, p=1)": (passwords.HASHER, passwords.hash_password("pw"))}  # fmt: skip
    times: dict[str, list[float]] = {name: [] for name in stored}
    for _ in range(rounds):
        for name, (hasher, h) in stored.items():
            wall, cpu = time.perf_counter(), time.process_time()
            hasher.verify(h, "pw")
            times[name].append(((time.perf_counter() - wall) * 1000, (time.process_time() - cpu) * 1000))
    for name, rows in times.items():
        print(f"argon2 verify, {name}: p50 {statistics.median(w for w, _ in rows):6.1f} ms wall, "
              f"{statistics.median(c for _, c in rows):6.1f} ms CPU (all cores)")  # fmt: skip


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--serve-profiled":
        serve_profiled(*sys.argv[2:6])
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=float(os.environ.get("IJP_BENCH_LOAD_SECONDS", 60)))
    p.add_argument("--clients", type=int, default=USERS)
    p.add_argument(
        "--processes", type=int, default=0, help="portal processes (default: 1 on SQLite, 2 on PostgreSQL)"
    )
    p.add_argument("--rate", type=float, default=0,
                   help="0 (default): a phase without pause, then one paced at 200 clicks/s; N: only one paced at N; "
                        "-1: only the phase without pause")  # fmt: skip
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="change a setting of production.ini's [app:main], or server.KEY of its [server:main]")  # fmt: skip
    p.add_argument("--jobs", type=int, default=int(os.environ.get("IJP_BENCH_LOAD_JOBS", 100_000)))
    p.add_argument("--profile", nargs="?", const="sample", choices=("sample", "cprofile"),
                   help="sample the request threads (sample), or cProfile them by CPU time too (cprofile)")  # fmt: skip
    args = p.parse_args()
    if not 1 <= args.clients <= USERS:
        p.error(f"--clients: 1 to {USERS}")
    tmp = Path(tempfile.mkdtemp(prefix="ijp-bench-load-"))
    url = os.environ.get("IJP_BENCH_DATABASE_URL") or f"sqlite:///{tmp / 'bench.sqlite'}"
    sqlite = url.startswith("sqlite")
    processes = args.processes or (1 if sqlite else 2)
    if sqlite and processes != 1:
        p.error("SQLite is for one portal process only")
    t = time.monotonic()
    names = prepare(url, tmp, args.jobs)
    print(
        f"database: {url.split(':')[0]}, demo catalog + {USERS} users, {args.jobs} jobs (ready in {time.monotonic() - t:.0f} s)"
    )
    overrides = dict(item.split("=", 1) for item in args.set)
    ini, sockets = write_ini(tmp, url, processes, overrides)
    prefix = configparser.RawConfigParser(strict=False)
    prefix.read(ini)
    prefix = prefix["app:main"].get("ijp.prefix", "").strip()
    threads = _server_threads(ini)
    profile_dir = tmp / "profile" if args.profile else None
    if profile_dir:
        profile_dir.mkdir()
    log = tmp / "portal.log"
    procs = [start_portal(ini, name, profile_dir, args.profile or "", log) for name, _ in sockets]
    try:
        wait_ready(sockets, procs, prefix, time.monotonic() + 120)
        started = [_rss_mib(proc.pid)[0] for proc in procs]
        db_pids = [] if sqlite else database_pids(url)
        pool = {
            k: v
            for k, v in configparser_items(ini).items()
            if k.startswith("sqlalchemy.pool") or k.startswith("sqlalchemy.max")
        }
        print(f"portal: {processes} process(es) of pserve/waitress, {threads} threads each, {pool} "
              f"(Unix sockets, X-Forwarded-For as behind Apache); {args.clients} clients"
              + (f"; changed: {overrides}" if overrides else ""))  # fmt: skip
        engine = sa.create_engine(url)
        with engine.connect() as c:
            from ijpweb.models import Job

            owned = {
                name: c.execute(
                    sa.select(Job.id).where(Job.owner == f"db/{name}").order_by(Job.id.desc()).limit(200)
                )
                .scalars()
                .all()
                for name in names
            }  # (each user's newest 200: the pages they look at)
        engine.dispose()
        clients = [Client(k, names[k], sockets, prefix) for k in range(args.clients)]
        for c in clients:
            c.job_ids = owned[c.user]
            if not c.job_ids:
                p.error(f"{c.user} has no jobs: --jobs must be at least {USERS}")
        hashers()
        took, login_ms, login_failed = logins(clients)
        n = len(login_ms)
        print(
            f"{n} logins ({args.clients} clients, web form and API each, at once): {took:.2f} s, "
            f"p50 {statistics.median(login_ms):.0f} ms, p95 {percentile(login_ms, 95):.0f} ms, {login_failed} failed"
        )
        goal(f"{n} logins at once, seconds (issue: 100 took 120 s)", took, 5, " s")
        warm_up(clients)
        if args.rate == 0:
            phases = [("without pause", 0.0), ("paced at 200 clicks/s", 200.0)]
        elif args.rate < 0:
            phases = [("without pause", 0.0)]
        else:
            phases = [(f"paced at {args.rate:g} clicks/s", args.rate)]
        errors = login_failed
        p95s, rates = [], []
        for title, rate in phases:
            before = cpu_snapshot(procs, db_pids)
            records = run_clients(clients, args.seconds, rate)
            e, p95, rps = report(
                f"{title}, {args.clients} clients, {args.seconds:g} s", records, args.seconds
            )
            print_cpu(before, cpu_snapshot(procs, db_pids), len(records), processes)
            errors += e
            p95s.append((rate, p95))
            rates.append(rps)
        submitted = [j for c in clients for j in c.submitted]
        counts = account(url, submitted, wait=120)
        print(f"submitted jobs: {len(submitted)}; in the database after at most 120 s: {counts}")
        goal("errors (logins and both phases)", errors, 0)
        for rate, p95 in p95s:
            goal(
                f"p95 of every request {'without pause' if not rate else f'at {rate:g} clicks/s'}, ms",
                p95,
                300,
                " ms",
            )
        if any(rate == 0 for rate, _ in p95s):
            goal("throughput without pause, requests/s", rates[0], 200, "/s", at_least=True)
        goal("submitted jobs lost", counts.get("lost", 0), 0)
        memory = [_rss_mib(proc.pid) for proc in procs]
        print("portal processes' memory, started / after the load / at the peak: "
              + ", ".join(f"{s:.0f} / {a:.0f} / {b:.0f} MiB" for s, (a, b) in zip(started, memory, strict=True)))  # fmt: skip
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    if profile_dir:
        print_profile(profile_dir)
    if os.environ.get("IJP_BENCH_KEEP"):
        print(f"kept: {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def report(title: str, records, seconds: float) -> tuple[int, float, float]:
    """Print each kind's count, p50, p95 and errors; return the errors, p95 and requests/s."""
    print(f"-- {title}: {len(records)} requests, {len(records) / seconds:.1f}/s")
    by_kind = collections.defaultdict(list)
    for kind, ok, _, ms in records:
        by_kind[kind].append((ok, ms))
    for kind, rows in sorted(by_kind.items()):
        times = [ms for _, ms in rows]
        errors = sum(1 for ok, _ in rows if not ok)
        print(f"   {kind:16} {len(rows):7d}  p50 {statistics.median(times):7.1f} ms  p95 {percentile(times, 95):7.1f} ms"
              f"  errors {errors}")  # fmt: skip
    all_ms = [ms for *_, ms in records]
    errors = sum(1 for _, ok, _, _ in records if not ok)
    p95 = percentile(all_ms, 95)
    print(
        f"   {'all':16} {len(records):7d}  p50 {statistics.median(all_ms):7.1f} ms  p95 {p95:7.1f} ms  errors {errors}"
    )
    return errors, p95, len(records) / seconds


def _stat(pid: int | str) -> list[str]:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def database_pids(url: str) -> list[int]:
    """The PostgreSQL server of ``url`` on this host and its backends (found by the port on
    the postmaster's command line), so that its CPU is told apart from the rest."""
    port = str(sa.engine.make_url(url).port or 5432)
    masters, parents = [], {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError):
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            parents[int(proc.name)] = int(_stat(proc.name)[1])
            if argv and argv[0].endswith(b"postgres") and port.encode() in argv:
                masters.append(int(proc.name))
    return masters + [pid for pid, ppid in parents.items() if ppid in masters]


def cpu_snapshot(procs, db_pids: list[int]) -> dict[str, float]:
    """CPU seconds so far: the portal processes', their finished children's (the jobs'
    launchers and programs), the database's, this client's, and the whole machine's busy
    and total (all cores), from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    out = dict.fromkeys(("portal", "jobs", "database"), 0.0)
    for proc in procs:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = _stat(proc.pid)
            out["portal"] += (int(fields[11]) + int(fields[12])) / tick
            out["jobs"] += (int(fields[13]) + int(fields[14])) / tick
    for pid in db_pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = _stat(pid)
            out["database"] += (int(fields[11]) + int(fields[12])) / tick
    cpu = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = cpu[3] + cpu[4]
    return {**out, "client": time.process_time(), "busy": (sum(cpu) - idle) / tick, "all": sum(cpu) / tick}


def print_cpu(before: dict[str, float], after: dict[str, float], requests: int, processes: int) -> None:
    """Where the machine's CPU went meanwhile, in cores and in ms per request."""
    d = {k: after[k] - before[k] for k in before}
    wall = d["all"] / (os.cpu_count() or 1)
    other = d["busy"] - d["portal"] - d["client"] - d["jobs"] - d["database"]
    per = 1000 / max(1, requests)
    print(f"   CPU, in cores of {os.cpu_count()} (and ms a request): portal processes {d['portal'] / wall:.2f} "
          f"({d['portal'] * per:.1f}), the database {d['database'] / wall:.2f} ({d['database'] * per:.1f}), "
          f"the jobs {d['jobs'] / wall:.2f}, this client {d['client'] / wall:.2f} ({d['client'] * per:.1f}), "
          f"other work on the machine {other / wall:.2f}, idle {(d['all'] - d['busy']) / wall:.2f}")  # fmt: skip
    ours = (d["portal"] + d["jobs"] + d["database"] + d["client"]) * per
    cores = os.cpu_count() or 1
    # (a portal process runs Python on about one core at a time: the GIL)
    most = min(1000 * cores / ours, 1000 * min(cores, processes) / max(0.1, d["portal"] * per))
    print(f"   (computed, not measured: with the machine's {cores} cores to itself this mix would take "
          f"{ours:.1f} ms of CPU a request, so at most about {most:.0f} requests/s with {processes} portal process(es))")  # fmt: skip


def _rss_mib(pid: int) -> tuple[float, float]:
    """The resident memory of the portal process ``pid`` now and at its peak (pserve
    itself, or the profiling wrapper that runs it in its own process), MiB."""
    now = peak = float("nan")
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                now = int(line.split()[1]) / 1024
            if line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    return now, peak


def configparser_items(ini: Path) -> dict[str, str]:
    parser = configparser.RawConfigParser(strict=False)
    parser.read(ini)
    return dict(parser["app:main"])


def _server_threads(ini: Path) -> int:
    parser = configparser.RawConfigParser(strict=False)
    parser.read(ini)
    return int(parser[[s for s in parser.sections() if s.startswith("server:")][0]].get("threads", "4"))


if __name__ == "__main__":
    sys.exit(main())
