"""Data in and out (issue 13, point 5): what a big zip and a big upload cost the portal.

    .venv/bin/python bench/bench_data.py

Each case runs in a fresh process serving the portal on waitress (the client in the same
process, reading or sending 1 MiB at a time), and reports its time, its rate and the
process's peak RSS growth:

1. GET /api/v1/datasets/{id}/zip of a dataset of 10,000 datafiles (1 KiB each), and of
   one of 10 datafiles, for comparison;
2. POST /api/v1/datasets/{id}/datafiles of 512 MiB as the raw body (streamed into IDS);
3. the same through the page's multipart form (WebOb spools the form's file to disk
   first, then it is streamed into IDS).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_ids import KEY, MIB, portal, serve, urlopen  # noqa: E402

FILES = 10_000


def _token(url: str, user: str) -> str:
    req = urllib.request.Request(  # noqa: S310 - the server this script started
        f"{url}/api/v1/session", data=json.dumps({"username": user, "password": f"{user}-demo"}).encode(),
        headers={"Content-Type": "application/json"},
    )  # fmt: skip
    with urlopen(req) as res:
        return json.loads(res.read())["token"]


def setup(tmp: Path) -> dict:
    """A dataset of FILES small datafiles and one of 10 in alice's investigation (once)."""
    import sqlalchemy as sa

    from ijpweb.catalog.icatdb import TABLES as T
    from ijpweb.catalog.ids import FileStore
    from ijpweb.models import get_engine

    marker = tmp / "data-ids.json"
    _app, settings = portal(tmp)
    if marker.exists():
        return json.loads(marker.read_text())
    engine = get_engine(settings)
    store = FileStore(settings["ijp.filestore"], KEY.encode())
    ds, df, inv = T["Dataset"], T["Datafile"], T["Investigation"]
    out = {}
    with engine.begin() as conn:
        inv_id, type_id = conn.execute(
            sa.select(ds.c.investigation_id, ds.c.type_id).join(inv, ds.c.investigation_id == inv.c.id)
            .where(inv.c.name == "LMF-2026-001").limit(1)
        ).one()  # fmt: skip
        now = conn.execute(sa.select(sa.func.current_timestamp())).scalar()
        for name, n in (("bench-zip-10000", FILES), ("bench-zip-10", 10)):
            d = conn.execute(ds.insert().values(name=name, investigation_id=inv_id, type_id=type_id, complete=True,
                                                createId="bench", createTime=now, modId="bench", modTime=now)
                             ).inserted_primary_key[0]  # fmt: skip
            for i in range(n):
                f = conn.execute(df.insert().values(name=f"f-{i:05d}.dat", dataset_id=d, createId="bench",
                                                    createTime=now, modId="bench", modTime=now)
                                 ).inserted_primary_key[0]  # fmt: skip
                import io

                location, size, _ = store.put(f, io.BytesIO(os.urandom(1024)))
                conn.execute(df.update().where(df.c.id == f).values(location=location, fileSize=size))
            out[name] = d
    marker.write_text(json.dumps(out))
    return out


def rss_now_mib() -> float:
    """The process's resident memory now (VmRSS), not its peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Sampler(threading.Thread):
    """The highest VmRSS seen, sampled every 20 ms while a case runs."""

    def __init__(self):
        super().__init__(daemon=True)
        self.high, self.running = rss_now_mib(), True

    def run(self):
        while self.running:
            self.high = max(self.high, rss_now_mib())
            time.sleep(0.02)


def measure(tmp: Path, case: str, ids: dict) -> None:
    app, _settings = portal(tmp)
    url, _server = serve(app)
    token = _token(url, "alice")
    auth = {"Authorization": f"Bearer {token}"}
    before = rss_now_mib()
    sampler = Sampler()
    sampler.start()
    start = time.perf_counter()
    moved = 0
    if case.startswith("zip"):
        dataset = ids["bench-zip-10000" if case == "zip-10000" else "bench-zip-10"]
        req = urllib.request.Request(f"{url}/api/v1/datasets/{dataset}/zip", headers=auth)  # noqa: S310
        with urlopen(req) as res:
            while chunk := res.read(MIB):
                moved += len(chunk)
    else:
        size = 512 * MIB
        dataset = ids["bench-zip-10"]
        name = f"upload-{case}-{os.getpid()}.bin"

        class Body:
            def __init__(self, head=b"", tail=b""):
                self.left, self.head, self.tail = size, head, tail

            def read(self, n=MIB):
                if self.head:
                    out, self.head = self.head, b""
                    return out
                if self.left <= 0:
                    out, self.tail = self.tail, b""
                    return out
                k = min(n, self.left, MIB)
                self.left -= k
                return os.urandom(k)

        if case == "upload-raw":
            req = urllib.request.Request(  # noqa: S310
                f"{url}/api/v1/datasets/{dataset}/datafiles?name={name}", data=Body(), method="POST",
                headers={**auth, "Content-Type": "application/octet-stream", "Content-Length": str(size)},
            )  # fmt: skip
        else:
            boundary = "benchboundary0123456789"
            head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\n"
                    "Content-Type: application/octet-stream\r\n\r\n").encode()  # fmt: skip
            tail = f"\r\n--{boundary}--\r\n".encode()
            req = urllib.request.Request(  # noqa: S310
                f"{url}/api/v1/datasets/{dataset}/datafiles", data=Body(head, tail), method="POST",
                headers={**auth, "Content-Type": f"multipart/form-data; boundary={boundary}",
                         "Content-Length": str(size + len(head) + len(tail))},
            )  # fmt: skip
        with urlopen(req) as res:
            json.loads(res.read())
        moved = size
    seconds = time.perf_counter() - start
    sampler.running = False
    sampler.join()
    print(json.dumps({"case": case, "seconds": round(seconds, 2), "mib_s": round(moved / MIB / seconds, 1),
                      "bytes": moved, "rss_before_mib": round(before, 1),
                      "rss_growth_mib": round(sampler.high - before, 1)}))  # fmt: skip


def main() -> None:
    tmp = Path(os.environ.get("IJP_BENCH_DIR") or tempfile.mkdtemp(prefix="ijp-bench-data-"))
    tmp.mkdir(parents=True, exist_ok=True)
    if len(sys.argv) == 3:
        measure(tmp, sys.argv[1], json.loads(sys.argv[2]))
        return
    ids = setup(tmp)
    for case in ("zip-10", "zip-10000", "upload-raw", "upload-form"):
        env = {**os.environ, "IJP_BENCH_DIR": str(tmp)}
        subprocess.run([sys.executable, __file__, case, json.dumps(ids)], check=True, env=env)  # noqa: S603


if __name__ == "__main__":
    main()
