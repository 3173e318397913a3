"""Bounded catalog queries (issue 10, point 5): what the limits cost, and what they save.

    .venv/bin/python bench/bench_queries.py                     # SQLite (a temp file)
    IJP_BENCH_DATABASE_URL=postgresql+psycopg://... .venv/bin/python bench/bench_queries.py

1. Overhead: ordinary catalog requests (the dataset search page, a dataset's page with its
   job parameters, an /icat search) through the whole WSGI app, with the time limit on
   (5 s: the SQLite progress handler, or PostgreSQL's savepoint and statement_timeout)
   and off (0). Prints p50/p95 in ms of 200 requests each, the two alternating; then the
   mean cost of one small statement through the catalog, in-process, with and without.
2. The attack of the issue: 8 concurrent long COUNT queries (a cross join through the
   facility) on a waitress server with 8 threads, and an unrelated request sent 0.5 s
   later: how long it waits, and how long the attackers' requests take.
3. Memory: a 7-join entity query of about 390,000 rows, in a fresh process each, with
   maxEntities 10000 and with it out of the way (10,000,000, as the portal behaved before):
   the time of the request and the process's peak RSS growth.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import sqlalchemy as sa
import transaction
import webtest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import demo_database, percentile, settings_for  # noqa: E402

from ijpweb import main  # noqa: E402
from ijpweb.models import get_engine, get_session_factory, get_tm_session  # noqa: E402

ROUNDS = int(os.environ.get("IJP_BENCH_ROUNDS", 200))
LONG = "SELECT COUNT(f) FROM Facility f " + " ".join(  # noqa: S608 - ICAT's JPQL, not SQL
    f"JOIN f.investigations i{n} JOIN i{n}.datasets d{n} JOIN d{n}.datafiles x{n}" for n in range(3)
)
# 7 joins: bob's datafiles, each with every datafile of its investigation and every dataset of
# the same type there (as in the issue: 7 joins, about 370,000 rows)
WIDE = (
    "SELECT df FROM Datafile df JOIN df.dataset ds JOIN ds.investigation i JOIN i.datasets ds2 "
    "JOIN ds2.datafiles df2 JOIN df2.dataset ds3 JOIN ds3.type t JOIN t.datasets ds4 WHERE ds4.investigation = i.id"
)


def prepare(url: str, tmp: Path):
    return demo_database(settings_for(url, tmp))


def icat_session(app: webtest.TestApp, user: str) -> str:
    body = {"plugin": "db", "credentials": [{"username": user}, {"password": f"{user}-demo"}]}
    return app.post("/icat/session", {"json": json.dumps(body)}).json["sessionId"]


def overhead(url: str, tmp: Path, engine) -> None:
    apps = {}
    for name, seconds in (("limit on (5 s)", "5"), ("limit off", "0")):
        app = webtest.TestApp(
            main({}, dbengine=engine, **settings_for(url, tmp, **{"ijp.catalog.query_seconds": seconds}))
        )
        app.get("/login")  # (sets the CSRF cookie)
        app.post(
            "/login",
            {"username": "bob", "password": "bob-demo", "csrf_token": app.cookies["csrf_token"]},
            status=303,
        )
        apps[name] = (app, icat_session(app, "bob"))
    ds_id = apps["limit off"][0].get("/api/v1/datasets", {"per_page": 1}).json["datasets"][0]["id"]
    requests = {
        "GET /datasets (search page)": lambda a, s: a.get("/datasets"),
        f"GET /datasets/{ds_id} (with job parameters)": lambda a, s: a.get(f"/datasets/{ds_id}"),
        "GET /icat/entityManager (26 datasets, INCLUDE)": lambda a, s: a.get(
            "/icat/entityManager",
            {"sessionId": s, "query": "SELECT ds FROM Dataset ds INCLUDE ds.investigation"},
        ),
    }
    print(f"{'request':48} {'limit on p50/p95':>20} {'limit off p50/p95':>20}")
    for label, call in requests.items():
        times: dict[str, list[float]] = {name: [] for name in apps}
        for app, sid in apps.values():
            call(app, sid)  # warm up
        for _ in range(ROUNDS):
            for name, (app, sid) in apps.items():
                started = time.perf_counter()
                call(app, sid)
                times[name].append((time.perf_counter() - started) * 1000)
        cells = [f"{percentile(t, 50):8.1f} / {percentile(t, 95):5.1f}" for t in times.values()]
        print(f"{label:48} {cells[0]:>20} {cells[1]:>20}")


def per_statement(engine) -> None:
    """The time limit's own cost on one small statement, in-process (no HTTP, no templates)."""
    from ijpweb.catalog.embedded import CatalogLimits, EmbeddedCatalog
    from ijpweb.catalog.icatdb import TABLES

    ds = TABLES["Dataset"]
    select = sa.select(ds.c.id, ds.c.name).where(ds.c.id == 1)
    tm = transaction.TransactionManager(explicit=True)
    tm.begin()
    blocks: dict[int, list[float]] = {5: [], 0: []}
    try:
        db = get_tm_session(get_session_factory(engine), tm)
        catalogs = {s: EmbeddedCatalog(db, limits=CatalogLimits(query_seconds=s)) for s in blocks}
        for _ in range(ROUNDS):  # blocks of 50 statements, the two kinds alternating (the load drifts)
            for seconds, catalog in catalogs.items():
                started = time.perf_counter()
                for _ in range(50):
                    catalog.run(select).all()
                blocks[seconds].append((time.perf_counter() - started) / 50 * 1e6)
    finally:
        tm.abort()
    on, off = (statistics.median(blocks[s]) for s in (5, 0))
    print(
        f"one small statement (median of {ROUNDS} blocks of 50): {on:.0f} us with the limit, {off:.0f} us without"
    )


def _get(url: str, timeout: float = 600):
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as res:  # noqa: S310 - our own server
            status = res.status
    except urllib.error.HTTPError as e:
        status = e.code
    return status, time.monotonic() - started


def attack(url: str, tmp: Path, engine) -> None:
    import waitress.server

    app = main({}, dbengine=engine, **settings_for(url, tmp))
    server = waitress.create_server(app, host="127.0.0.1", port=0, threads=8)
    threading.Thread(target=server.run, daemon=True).start()
    base = f"http://127.0.0.1:{server.effective_port}"
    body = {"plugin": "db", "credentials": [{"username": "carol"}, {"password": "carol-demo"}]}
    data = urllib.parse.urlencode({"json": json.dumps(body)}).encode()
    with urllib.request.urlopen(f"{base}/icat/session", data=data) as res:  # noqa: S310
        sid = json.load(res)["sessionId"]
    query = urllib.parse.urlencode({"sessionId": sid, "query": LONG})
    results: list[tuple[int, float]] = []
    threads = [
        threading.Thread(target=lambda: results.append(_get(f"{base}/icat/entityManager?{query}")))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    time.sleep(0.5)
    status, waited = _get(f"{base}/icat/session/{sid}")
    for t in threads:
        t.join()
    # (the server's daemon thread ends with the process: closing it under a running loop
    # makes waitress print errors)
    took = sorted(t for _, t in results)
    print(f"8 concurrent long COUNTs: statuses {sorted({s for s, _ in results})}, each took "
          f"{took[0]:.2f}-{took[-1]:.2f} s; an unrelated request sent 0.5 s later: {status} after {waited:.2f} s")  # fmt: skip


def memory(url: str, tmp: Path, max_entities: str) -> None:
    """(in a fresh process) one request for WIDE as bob: time and peak RSS growth."""
    engine = get_engine(settings_for(url, tmp))
    settings = settings_for(
        url, tmp, **{"ijp.catalog.max_entities": max_entities, "ijp.catalog.query_seconds": "0"}
    )
    app = webtest.TestApp(main({}, dbengine=engine, **settings))
    sid = icat_session(app, "bob")
    count = app.get(
        "/icat/entityManager", {"sessionId": sid, "query": WIDE.replace("SELECT df ", "SELECT COUNT(df) ")}
    )
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    res = app.get("/icat/entityManager", {"sessionId": sid, "query": WIDE}, expect_errors=True)
    took = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    answer = (
        f"{len(res.json)} entities, {len(res.body) / 1e6:.0f} MB"
        if res.status_int == 200
        else res.json["message"]
    )
    print(f"maxEntities {int(max_entities):>10,}: {count.json[0]:,} rows match; {res.status_int} ({answer}) "
          f"in {took:.2f} s, peak RSS {before / 1024:.0f} -> {after / 1024:.0f} MiB")  # fmt: skip


def main_() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "memory":
        memory(sys.argv[2], Path(sys.argv[3]), sys.argv[4])
        return
    tmp = Path(tempfile.mkdtemp(prefix="ijp-bench-"))
    url = os.environ.get("IJP_BENCH_DATABASE_URL") or f"sqlite:///{tmp / 'bench.sqlite'}"
    engine = prepare(url, tmp)
    print(f"database: {engine.dialect.name}")
    print("-- 1. the time limit's cost on ordinary requests (ms)")
    overhead(url, tmp, engine)
    per_statement(engine)
    print("-- 2. the attack: 8 long queries on 8 threads (limit 5 s)")
    attack(url, tmp, engine)
    print("-- 3. a 7-join query of about 390,000 entities, each in a fresh process")
    for max_entities in ("10000", "10000000"):
        subprocess.run([sys.executable, __file__, "memory", url, str(tmp), max_entities], check=True)  # noqa: S603


if __name__ == "__main__":
    main_()
