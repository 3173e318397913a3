"""Benchmark of issue 14's demo interactive job types, Image viewer and Terminal, against a
live portal (in this process, on waitress, with the demo catalog and its files):

(a) ``submit`` of the job (its real program, in the bubblewrap sandbox with the network, as
    the portal hands it to the local backend) until ``states()`` reports its desktop ready:
    when the job page says Ready;
(b) on a plain Xvfb, from the program's start until its window shows what it is for: the
    viewer's first TIFF drawn (Python, Tk and Pillow loaded, the catalog searched, the file
    read through IDS, scaled and drawn), the xterm's white page with its prompt: what the
    user waits for after Ready (x11vnc shows the display from the start).

    .venv/bin/python bench/bench_desktop_demo.py        # IJP_BENCH_ROUNDS=10
"""

from __future__ import annotations

import os
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import transaction  # noqa: E402
from common import goal, percentile, settings_for  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from ijpweb import main  # noqa: E402
from ijpweb.batch import JobSpec  # noqa: E402
from ijpweb.batch.local import LocalBackend  # noqa: E402
from ijpweb.batch.sandbox import Sandbox  # noqa: E402
from ijpweb.catalog import demo  # noqa: E402
from ijpweb.catalog.embedded import EmbeddedCatalog  # noqa: E402
from ijpweb.catalog.ids import FileStore  # noqa: E402
from ijpweb.jobscript import IcatRest  # noqa: E402
from ijpweb.models import get_engine, get_session_factory, get_tm_session, upgrade  # noqa: E402

ROUNDS = int(os.environ.get("IJP_BENCH_ROUNDS", "10"))
SCRIPTS = ROOT / "jobtypes" / "scripts"
KEY = "bench-ids-key-not-for-production"
BACKGROUND = (0x2B, 0x2B, 0x2B)  # the image viewer's


def portal(tmp: Path):
    """The portal on waitress with the demo catalog and its files; (url, alice's session,
    a dataset of hers with TIFFs, the server to close)."""
    from waitress.server import create_server

    settings = settings_for(f"sqlite:///{tmp / 'bench.sqlite'}", tmp)
    engine = get_engine(settings)
    upgrade(engine, str(ROOT / "testing.ini"))
    tm = transaction.TransactionManager(explicit=True)
    with tm:
        demo.load(
            get_tm_session(get_session_factory(engine), tm), FileStore(str(tmp / "files"), KEY.encode())
        )
    server = create_server(main({}, **settings), host="127.0.0.1", port=0, threads=4)
    import threading

    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{server.effective_port}"
    with Session(engine) as db, db.begin():
        sid = EmbeddedCatalog(db).login("db", {"username": "alice", "password": "alice-demo"}).session_id
    (ds,) = IcatRest(url, sid).search("SELECT ds FROM Dataset ds WHERE ds.name = 'confocal-001-001'")
    return url, sid, ds["id"], server


def argv(kind: str, url: str, dataset: int) -> tuple[str, tuple[str, ...]]:
    program = "image_viewer.py" if kind == "viewer" else "ijp_terminal.sh"
    return program, (f"--datasetIds={dataset}", f"--icatUrl={url}", f"--idsUrl={url}")


def to_ready(kind: str, url: str, sid: str, dataset: int, tmp: Path) -> list[float]:
    backend = LocalBackend("local", tmp / f"jobs-{kind}", path=[str(SCRIPTS), str(Path(sys.executable).parent)],
                           sandbox=Sandbox(kind="bwrap"), max_interactive=2)  # fmt: skip
    program, args = argv(kind, url, dataset)
    times = []
    for i in range(1, ROUNDS + 2):  # the first is a warm-up
        spec = JobSpec(i, "db/alice", program, args, {"IJP_SESSION_ID": sid}, network=True, interactive=True,
                       desktop={"time_limit": 600, "geometry": "1280x800", "ready_timeout": 60})  # fmt: skip
        t = time.perf_counter()
        name = backend.submit(spec)
        while (state := backend.states([name])[name]).desktop is None:
            assert state.status.live, state
            time.sleep(0.005)
        if i > 1:
            times.append((time.perf_counter() - t) * 1000)
        backend.end_sessions([name], "ended by the user")
    return times


def xvfb() -> tuple[subprocess.Popen, str, socket.socket]:
    """Xvfb on a free display whose abstract socket name is held here, bound and never
    listening (as the desktop supervisor holds its own): X clients try that name first, and
    a desktop session's job on this host could otherwise listen there. -noreset: without it
    the server resets whenever its last client leaves, and a client connecting then is
    refused; -br: a black root window, not the weave (black and white pixels everywhere)."""
    for number in range(100, 400):
        if os.path.exists(f"/tmp/.X11-unix/X{number}") or os.path.exists(f"/tmp/.X{number}-lock"):  # noqa: S108
            continue
        held = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            held.bind(f"\0/tmp/.X11-unix/X{number}")
            break
        except OSError:
            held.close()
    else:
        raise RuntimeError("no free X display")
    read, write = os.pipe()
    proc = subprocess.Popen(["Xvfb", f":{number}", "-displayfd", str(write), "-nolisten", "tcp", "-nolisten",
                             "local", "-noreset", "-br", "-screen", "0", "1280x800x24"], pass_fds=(write,), stderr=subprocess.DEVNULL)  # fmt: skip
    os.close(write)
    got = b""
    while not got.endswith(b"\n"):
        select.select([read], [], [], 30)
        got += os.read(read, 16)
    os.close(read)
    return proc, f":{number}", held


def shows(kind: str, image) -> bool:
    if kind == "viewer":  # the demo TIFF's noise, enlarged, fills the middle of the window
        middle = image.crop((540, 300, 740, 500)).get_flattened_data()
        return len(set(middle)) >= 8 and middle.count(BACKGROUND) < len(middle) // 4
    page = image.crop((0, 0, 600, 60)).get_flattened_data()  # (the root is black: -br)
    return page.count((255, 255, 255)) > len(page) // 2 and (0, 0, 0) in page  # the xterm's page, its prompt


def to_first_frame(kind: str, url: str, sid: str, dataset: int, tmp: Path) -> list[float]:
    from PIL import ImageGrab

    server, display, held = xvfb()
    program, args = argv(kind, url, dataset)
    env = {"PATH": os.pathsep.join([str(SCRIPTS), str(Path(sys.executable).parent), os.defpath]),
           "HOME": str(tmp), "DISPLAY": display, "IJP_SESSION_ID": sid, "LANG": "C.UTF-8"}  # fmt: skip
    times = []
    try:
        for i in range(ROUNDS + 1):
            t = time.perf_counter()
            with open(tmp / "stderr", "wb") as err:
                proc = subprocess.Popen([str(SCRIPTS / program), *args], env=env, cwd=tmp,
                                        stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
            while True:
                try:
                    if shows(kind, ImageGrab.grab(xdisplay=display).convert("RGB")):
                        break
                except OSError as e:
                    raise RuntimeError(f"{display}: {e} (Xvfb: {server.poll()})") from None
                if proc.poll() is not None or time.perf_counter() - t > 60:
                    raise RuntimeError(f"{kind} showed nothing on {display} (Xvfb: {server.poll()}): "
                                       f"{(tmp / 'stderr').read_text()[-2000:]}")  # fmt: skip
                time.sleep(0.01)
            if i:
                times.append((time.perf_counter() - t) * 1000)
            proc.terminate()
            proc.wait(10)
            while shows(kind, ImageGrab.grab(xdisplay=display).convert("RGB")):  # (its window gone)
                time.sleep(0.01)
    finally:
        server.terminate()
        server.wait(10)
        held.close()
    return times


def main_() -> None:
    missing = [p for p in ("Xvfb", "x11vnc", "xterm", "bwrap") if not shutil.which(p)]
    if missing:
        print(f"skipped: {', '.join(missing)} not installed")
        return
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        url, sid, dataset, server = portal(tmp)
        try:
            print(f"{ROUNDS} rounds after a warm-up; p50 / p95")
            for kind, name, ready_goal, frame_goal in (("viewer", "Image viewer", 1500, 2000),
                                                       ("terminal", "Terminal", 1500, 1000)):  # fmt: skip
                ready = to_ready(kind, url, sid, dataset, tmp)
                frame = to_first_frame(kind, url, sid, dataset, tmp)
                print(f"{name}: submit to ready p50 {percentile(ready, 50):.0f} ms; "
                      f"start to first frame p50 {percentile(frame, 50):.0f} ms")  # fmt: skip
                goal(f"{name}: (a) submit to desktop ready, p95", percentile(ready, 95), ready_goal, " ms")
                goal(
                    f"{name}: (b) program start to its first frame, p95",
                    percentile(frame, 95),
                    frame_goal,
                    " ms",
                )
        finally:
            server.close()


if __name__ == "__main__":
    main_()
