"""The dataset search and a dataset's datafiles at a facility's scale (issue 12, points 1, 2
and 6; part C).

    .venv/bin/python bench/bench_catalog.py                     # SQLite (a file kept in $TMPDIR)
    IJP_BENCH_DATABASE_URL=postgresql+psycopg://... .venv/bin/python bench/bench_catalog.py
    ... bench_catalog.py --profile                              # EXPLAIN ANALYZE + cProfile first

The demo catalog grown in bulk (ijpweb.catalog.demo.scale) to 100,000 more datasets in 500
investigations of 200, each of 10 datafiles, plus one dataset of 10,000 datafiles: 100,042
datasets and 1,010,xxx datafiles. bob belongs to 100 of the new investigations: under the
demo's rules he sees 20,027 datasets. Through the whole WSGI app (WebTest, no network), as
bob, interleaved round by round (so that the machine's noise falls on both sides alike):

- the search page (/datasets, HTML with the run panel) and /api/v1/datasets: the first
  page, and page 500 reached by its cursor (walked to once, next by next, beforehand);
- a name search and a type filter (first pages);
- the page of the dataset with 10,000 datafiles (its first page of 50) and its page 100.

Prints p50/p95 of each and the goals beside them (bench/common.goal). The SQLite file is kept
($TMPDIR/ijp_bench_catalog.sqlite, IJP_BENCH_CATALOG_SQLITE to choose) so that a second run
does not generate the data again.
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
import transaction
import webtest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from common import demo_database, goal, percentile, settings_for  # noqa: E402

from ijpweb import main  # noqa: E402
from ijpweb.catalog import demo  # noqa: E402
from ijpweb.catalog.icatdb import TABLES as T  # noqa: E402
from ijpweb.models import get_session_factory, get_tm_session  # noqa: E402

ROUNDS = int(os.environ.get("IJP_BENCH_ROUNDS", 40))
INVESTIGATIONS, DATASETS_EACH, FILES_EACH, BOBS, BIG = 500, 200, 10, 100, 10_000


def grow(engine) -> float:
    """Generate the data once (seconds taken; 0 when it was there)."""
    with engine.connect() as conn:
        there = conn.execute(
            sa.select(T["Investigation"].c.id).where(T["Investigation"].c.name == "SCALE-00001")
        )
        if there.first() is not None:
            return 0.0
    started = time.perf_counter()
    tm = transaction.TransactionManager(explicit=True)
    with tm:
        db = get_tm_session(get_session_factory(engine), tm)
        conn = db.connection()
        demo.scale(conn, INVESTIGATIONS, DATASETS_EACH, FILES_EACH, {"bob": BOBS}, big_dataset_files=BIG)
    with engine.connect() as conn:
        conn.execute(sa.text("ANALYZE"))
        conn.commit()
    return time.perf_counter() - started


def login(app: webtest.TestApp, user: str) -> dict:
    app.get("/login")
    token = app.cookies["csrf_token"]
    app.post("/login", {"username": user, "password": f"{user}-demo", "csrf_token": token}, status=303)
    got = app.post_json("/api/v1/session", {"username": user, "password": f"{user}-demo"}).json
    return {"Authorization": f"Bearer {got['token']}"}


def walk(app, bearer, pages: int, **query) -> str:
    """The cursor of page ``pages`` of a search, reached next by next."""
    cursor = None
    for _ in range(pages - 1):
        got = app.get("/api/v1/datasets", {"per_page": 20, **query, **({"cursor": cursor} if cursor else {})},
                      headers=bearer).json  # fmt: skip
        cursor = got["next"]
    return cursor


def interleaved(calls: dict, rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in calls}
    for call in calls.values():
        call()  # warm up
    for _ in range(rounds):
        for name, call in calls.items():
            started = time.perf_counter()
            call()
            times[name].append((time.perf_counter() - started) * 1000)
    return times


def explain(engine, app, bearer, cursor: str) -> None:
    """EXPLAIN (ANALYZE) of each statement page 500 of the API runs, then a cProfile of it."""
    seen = []

    def record(conn, cursor_, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith(("SELECT", "WITH")) and "icat_" in statement:
            seen.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        app.get("/api/v1/datasets", {"per_page": 20, "cursor": cursor}, headers=bearer)
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN (ANALYZE, BUFFERS OFF) "
    with engine.connect() as conn:
        for statement, parameters in seen:
            print("--", " ".join(statement.split())[:240])
            started = time.perf_counter()
            rows = conn.exec_driver_sql(prefix + statement, parameters).all()
            took = (time.perf_counter() - started) * 1000
            for r in rows:
                print("   ", r[-1] if engine.dialect.name == "sqlite" else r[0])
            if engine.dialect.name == "sqlite":
                started = time.perf_counter()
                conn.exec_driver_sql(statement, parameters).all()
                took = (time.perf_counter() - started) * 1000
            print(f"   ({took:.1f} ms)")
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(10):
        app.get("/datasets", {"cursor": cursor})
    profile.disable()
    out = io.StringIO()
    pstats.Stats(profile, stream=out).sort_stats("cumulative").print_stats(25)
    print(out.getvalue())


def main_() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="ijp-bench-catalog-"))
    default = Path(
        os.environ.get("IJP_BENCH_CATALOG_SQLITE", Path(tempfile.gettempdir()) / "ijp_bench_catalog.sqlite")
    )
    url = os.environ.get("IJP_BENCH_DATABASE_URL") or f"sqlite:///{default}"
    engine = demo_database(settings_for(url, tmp))
    took = grow(engine)
    with engine.connect() as conn:
        n_ds = conn.execute(sa.select(sa.func.count()).select_from(T["Dataset"])).scalar()
        n_df = conn.execute(sa.select(sa.func.count()).select_from(T["Datafile"])).scalar()
        big = conn.execute(sa.select(T["Dataset"].c.id).where(T["Dataset"].c.name == "scale-big")).scalar()
    print(f"{engine.dialect.name}: {n_ds:,} datasets, {n_df:,} datafiles"
          + (f" (generated in {took:.0f} s)" if took else " (generated before)"))  # fmt: skip
    app = webtest.TestApp(main({}, dbengine=engine, **settings_for(url, tmp)))
    bearer = login(app, "bob")
    first = app.get("/api/v1/datasets", {"per_page": 20}, headers=bearer).json
    print(
        f"bob sees {first['total']:,}{'' if first['total_exact'] else '+'} datasets (the count stops at 10,000)"
    )
    started = time.perf_counter()
    page500 = walk(app, bearer, 500)
    print(f"page 500's cursor reached in {time.perf_counter() - started:.1f} s (499 pages, next by next)")
    files100 = None
    got = app.get(f"/api/v1/datasets/{big}/datafiles", {"per_page": 50}, headers=bearer).json
    for _ in range(98):
        got = app.get(f"/api/v1/datasets/{big}/datafiles", {"per_page": 50, "cursor": got["next"]},
                      headers=bearer).json  # fmt: skip
    files100 = got["next"]
    if "--profile" in sys.argv:
        explain(engine, app, bearer, page500)
    sizes = {}

    def get(name, url, params=None, headers=None):
        def call():
            res = app.get(url, params or {}, headers=headers or {})
            sizes[name] = len(res.body)

        return call

    calls = {
        "page 1 (/datasets, HTML)": get("p1", "/datasets"),
        "page 500 (/datasets, HTML, by cursor)": get("p500", "/datasets", {"cursor": page500}),
        "page 1 (/api/v1/datasets)": get("a1", "/api/v1/datasets", {"per_page": 20}, bearer),
        "page 500 (/api/v1/datasets, by cursor)": get(
            "a500", "/api/v1/datasets", {"per_page": 20, "cursor": page500}, bearer
        ),  # fmt: skip
        "name search 'scale-00042-01' (HTML fragment)": get(
            "name", "/datasets", {"name": "scale-00042-01"}, {"HX-Request": "true"}
        ),  # fmt: skip
        "type filter 'confocal' (HTML fragment)": get(
            "type", "/datasets", {"type": "confocal"}, {"HX-Request": "true"}
        ),
        "dataset of 10,000 datafiles (HTML, page 1)": get("big", f"/datasets/{big}"),
        "its datafiles' page 100 (HTML fragment)": get(
            "big100", f"/datasets/{big}", {"cursor": files100}, {"HX-Request": "true"}
        ),  # fmt: skip
    }
    times = interleaved(calls, ROUNDS)
    print(f"\n{'request':48} {'p50':>8} {'p95':>8}   bytes   ({ROUNDS} rounds, interleaved)")
    for (name, t), key in zip(times.items(), sizes, strict=True):
        print(f"{name:48} {percentile(t, 50):6.1f}ms {percentile(t, 95):6.1f}ms {sizes[key]:7,}")
    print()
    p95 = {name: percentile(t, 95) for name, t in times.items()}
    p50 = {name: percentile(t, 50) for name, t in times.items()}
    names = list(times)
    goal("search page 1 p95 (HTML)", p95[names[0]], 150, "ms")
    goal("search page 500 p95 (HTML)", p95[names[1]], 150, "ms")
    goal("search page 500 / page 1 (HTML, p50s)", p50[names[1]] / p50[names[0]], 2)
    goal("/api/v1/datasets page 1 p95", p95[names[2]], 150, "ms")
    goal("/api/v1/datasets page 500 p95", p95[names[3]], 150, "ms")
    goal("/api/v1/datasets page 500 / page 1 (p50s)", p50[names[3]] / p50[names[2]], 2)
    goal("name search p95", p95[names[4]], 150, "ms")
    goal("type filter p95", p95[names[5]], 150, "ms")
    goal("dataset page (10,000 datafiles) p95", p95[names[6]], 150, "ms")
    goal("its datafile page 100 / its page 1 (p50s)", p50[names[7]] / p50[names[6]], 2)


if __name__ == "__main__":
    main_()
