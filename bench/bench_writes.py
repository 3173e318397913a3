"""Bounded catalog writes (issue 10): what a create of many entities costs, and so how long
it holds the database's write lock (on SQLite, for everyone).

    .venv/bin/python bench/bench_writes.py                     # SQLite (a temp file)
    IJP_BENCH_DATABASE_URL=postgresql+psycopg://... .venv/bin/python bench/bench_writes.py

1. POST /icat/entityManager with 100, 1000 (ijp.catalog.max_writes) and 10,000 Datafiles in
   carol's dataset, through the whole WSGI app: the rules checked once per entity type for
   all of them (now).
2. The same entities created one by one with the rules checked for each (the portal
   before: an existence check, a read check of the parent and a create check per entity),
   in-process, for 300 of them.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import sqlalchemy as sa
import transaction
import webtest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_queries import icat_session, prepare, settings_for  # noqa: E402

from ijpweb import main  # noqa: E402
from ijpweb.catalog import icatrest  # noqa: E402
from ijpweb.catalog.embedded import EmbeddedCatalog  # noqa: E402
from ijpweb.catalog.icatdb import TABLES  # noqa: E402
from ijpweb.models import get_session_factory, get_tm_session  # noqa: E402


def carols_dataset(engine) -> int:
    ds, inv = TABLES["Dataset"], TABLES["Investigation"]
    q = sa.select(ds.c.id).join(inv, ds.c.investigation_id == inv.c.id).where(inv.c.name == "LMF-2026-003")
    with engine.connect() as conn:
        return conn.scalars(q.order_by(ds.c.id)).first()


def run(url: str, tmp: Path) -> None:
    engine = prepare(url, tmp)
    mine = carols_dataset(engine)
    app = webtest.TestApp(
        main({}, dbengine=engine, **settings_for(url, tmp, **{"ijp.catalog.max_writes": "10000"}))
    )
    sid = icat_session(app, "carol")
    print(f"{'create':48} {'seconds':>8} {'ms per entity':>14}")
    for n in (100, 1000, 10_000):
        body = json.dumps([{"Datafile": {"name": f"b{n}-{i}", "dataset": {"id": mine}}} for i in range(n)])
        started = time.perf_counter()
        app.post("/icat/entityManager", {"sessionId": sid, "entities": body})
        took = time.perf_counter() - started
        print(f"{f'{n} Datafiles, one POST, rules checked at once':48} {took:8.2f} {took / n * 1000:14.3f}")
    tm = transaction.TransactionManager(explicit=True)
    with tm:
        db = get_tm_session(get_session_factory(engine), tm)
        catalog = EmbeddedCatalog(db)
        csid = catalog.login("db", {"username": "carol", "password": "carol-demo"}).session_id
        started = time.perf_counter()
        for i in range(300):
            catalog._known.clear()  # (the portal before asked again for each entity)
            icatrest.create(catalog, csid, "Datafile", {"name": f"old-{i}", "dataset": {"id": mine}})
        took = time.perf_counter() - started
    print(f"{'300 Datafiles, rules checked one by one (before)':48} {took:8.2f} {took / 300 * 1000:14.3f}")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        url = os.environ.get("IJP_BENCH_DATABASE_URL") or f"sqlite:///{tmp}/bench.sqlite"
        run(url, Path(tmp))
