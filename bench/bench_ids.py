"""The embedded IDS after issue 10 (point 3 and 7): what streaming and the location checks cost.

    .venv/bin/python bench/bench_ids.py

1. getData through a real waitress server, the client reading in 1 MiB pieces: one
   256 MiB datafile, and a zip of a dataset of four 64 MiB datafiles; each in a fresh
   process, with its time, MB/s and the process's peak RSS growth. For comparison, the
   zip built whole in memory as the IDS did before (zipfile into a BytesIO), timed and
   measured the same way.
2. The location check (HMAC-SHA256 of "id path" and resolving the path under the store)
   for 10,000 datafiles, and getSize of a selection of 1,000 datafiles through the WSGI
   app, which checks each one.
"""

from __future__ import annotations

import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
MIB = 1 << 20
KEY = "bench-ids-key-0123456789"


def urlopen(req):
    return urllib.request.urlopen(req, timeout=600)  # noqa: S310 - the server this script started


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def portal(tmp: Path):
    """A migrated SQLite portal with the demo catalog in ``tmp``; returns (app, settings)."""
    import transaction
    from pyramid.paster import get_appsettings

    from ijpweb import main
    from ijpweb.catalog import demo
    from ijpweb.catalog.ids import FileStore
    from ijpweb.models import get_engine, get_session_factory, get_tm_session, upgrade

    settings = dict(get_appsettings(str(ROOT / "testing.ini")))
    settings.update(
        {
            "sqlalchemy.url": f"sqlite:///{tmp / 'bench.sqlite'}",
            "ijp.filestore": str(tmp / "files"),
            "ijp.batch.local.dir": str(tmp / "jobs"),
            "ijp.batch.local.sandbox": "none",
            "ijp.ids.key": KEY,
            "ijp.jobtypes_dir": str(ROOT / "jobtypes"),
            "ijp.datasettypes_dir": str(ROOT / "datasettypes"),
            "auth.secret": "bench",
        }
    )
    engine = get_engine(settings)
    if not (tmp / "bench.sqlite").exists() or os.path.getsize(tmp / "bench.sqlite") == 0:
        upgrade(engine, str(ROOT / "testing.ini"))
        tm = transaction.TransactionManager(explicit=True)
        with tm:
            demo.load(get_tm_session(get_session_factory(engine), tm), FileStore(tmp / "files", KEY.encode()))
    return main({}, dbengine=engine, **settings), settings


def serve(app):
    from waitress.server import create_server

    server = create_server(app, host="127.0.0.1", port=0, threads=4)
    threading.Thread(target=server.run, daemon=True).start()
    return f"http://127.0.0.1:{server.effective_port}", server


def login(url: str, user: str) -> str:
    body = {"plugin": "db", "credentials": [{"username": user}, {"password": f"{user}-demo"}]}
    data = urllib.parse.urlencode({"json": json.dumps(body)}).encode()
    with urlopen(urllib.request.Request(f"{url}/icat/session", data=data)) as res:  # noqa: S310
        return json.loads(res.read())["sessionId"]


def setup(tmp: Path) -> dict:
    """Put the big files once (alice's first dataset gets a new dataset-like set of files)."""
    app, _ = portal(tmp)
    url, _server = serve(app)  # (a daemon thread: it ends with the process)
    sid = login(url, "alice")
    query = urllib.parse.urlencode(
        {
            "sessionId": sid,
            "query": "SELECT ds.id FROM Dataset ds JOIN ds.investigation i "
            "WHERE i.name = 'LMF-2026-001' ORDER BY ds.id",
        }  # fmt: skip
    )
    with urlopen(f"{url}/icat/entityManager?{query}") as res:
        first, second = json.loads(res.read())[:2]

    class Big(io.RawIOBase):
        def __init__(self, size):
            self.left = size

        def readable(self):
            return True

        def readinto(self, b):
            n = min(len(b), self.left, MIB)
            b[:n] = os.urandom(n)  # incompressible, as most instrument data is
            self.left -= n
            return n

    def put(dataset, name, size):
        params = urllib.parse.urlencode({"sessionId": sid, "datasetId": dataset, "name": name})
        req = urllib.request.Request(  # noqa: S310 - the server this script started
            f"{url}/ids/put?{params}", data=Big(size), method="PUT",
            headers={"Content-Type": "application/octet-stream", "Content-Length": str(size)},
        )  # fmt: skip
        with urlopen(req) as res:
            return json.loads(res.read())["id"]

    single = put(first, "big-256.bin", 256 * MIB)
    parts = [put(second, f"part-{i}.bin", 64 * MIB) for i in range(4)]
    return {"single": single, "dataset": second, "parts": parts}


def measure(tmp: Path, case: str, ids: dict) -> None:
    """One case in this (fresh) process: prints seconds, MB/s and peak RSS growth."""
    app, settings = portal(tmp)
    url, _server = serve(app)
    sid = login(url, "alice")
    before = rss_mib()
    start = time.perf_counter()
    total = 0
    if case == "old-zip":
        # what getData did before: the whole zip in a BytesIO, then sent
        from ijpweb.catalog.ids import FileStore
        from ijpweb.models import get_engine

        store = FileStore(settings["ijp.filestore"], KEY.encode())
        import sqlalchemy as sa

        with get_engine(settings).connect() as c:
            rows = c.execute(
                sa.text("SELECT id, name, location FROM icat_datafile WHERE dataset_id = :d"),
                {"d": ids["dataset"]},
            ).all()
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for i, name, loc in rows:
                z.write(store.file(i, loc), f"ids/x/y/{name}")
        data = buf.getvalue()
        for k in range(0, len(data), MIB):
            total += len(data[k : k + MIB])
    else:
        params = {"sessionId": sid}
        if case == "single":
            params["datafileIds"] = ids["single"]
        else:
            params["datasetIds"] = ids["dataset"]
        with urlopen(f"{url}/ids/getData?{urllib.parse.urlencode(params)}") as res:
            while piece := res.read(MIB):
                total += len(piece)
    took = time.perf_counter() - start
    print(json.dumps({"case": case, "bytes": total, "seconds": took, "rss_growth_mib": rss_mib() - before}))


def checks(tmp: Path) -> None:
    import webtest

    from ijpweb.catalog.ids import FileStore, canonical_path, sign

    store = FileStore(tmp / "files", KEY.encode())
    locations = [(i, sign(store.key, i, canonical_path(i))) for i in range(1, 10_001)]
    start = time.perf_counter()
    for i, loc in locations:
        store.file(i, loc)
    per = (time.perf_counter() - start) / len(locations) * 1e6
    print(f"location check (HMAC + resolve): {per:.1f} µs per datafile")

    app, _ = portal(tmp)
    client = webtest.TestApp(app)
    body = {"plugin": "db", "credentials": [{"username": "alice"}, {"password": "alice-demo"}]}
    sid = client.post("/icat/session", {"json": json.dumps(body)}).json["sessionId"]
    q = "SELECT df.id FROM Datafile df ORDER BY df.id LIMIT 0, 1000"
    dfs = client.get("/icat/entityManager", {"sessionId": sid, "query": q}).json
    times = []
    for _ in range(30):
        start = time.perf_counter()
        client.get("/ids/getSize", {"sessionId": sid, "datafileIds": ",".join(map(str, dfs))})
        times.append((time.perf_counter() - start) * 1000)
    print(f"getSize of {len(dfs)} datafiles through the app: p50 {statistics.median(times):.1f} ms")
    start = time.perf_counter()
    client.get("/ids/getData", {"sessionId": sid, "datafileIds": ",".join(map(str, dfs))})
    print(f"getData (a zip) of the same {len(dfs)} datafiles: {(time.perf_counter() - start) * 1000:.0f} ms")


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--case":
        measure(Path(sys.argv[2]), sys.argv[3], json.loads(os.environ["IJP_BENCH_IDS"]))
        return
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        ids = setup(tmp)
        env = {**os.environ, "IJP_BENCH_IDS": json.dumps(ids)}
        print("getData, client reading 1 MiB at a time (each in a fresh process):")
        for case in ("single", "zip", "old-zip"):
            out = subprocess.run(
                [sys.executable, __file__, "--case", str(tmp), case], env=env, capture_output=True, text=True
            )
            if out.returncode or not out.stdout.strip():
                print(out.stdout, out.stderr, file=sys.stderr)
                raise SystemExit(1)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(
                f"  {case:8} {r['bytes'] / MIB:7.1f} MiB in {r['seconds']:.2f} s "
                f"({r['bytes'] / MIB / r['seconds']:.0f} MiB/s), peak RSS +{r['rss_growth_mib']:.0f} MiB"
            )
        checks(tmp)


if __name__ == "__main__":
    main()
