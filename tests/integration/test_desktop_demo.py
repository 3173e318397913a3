"""Issue 14, point 5: the demo interactive job types' programs on a real X display (Xvfb),
against a live portal's ICAT REST and IDS, as the desktop supervisor starts them (the
program with DISPLAY and the job's environment, its session only there, never in argv).
The image viewer shows the selected datasets' TIFFs through IDS as the user, pages
through them with the keys, and says so in its window when there is nothing to show or a
file cannot be read; the terminal is an xterm in the job's work directory with the job's
environment, and what is typed into it reaches its shell. Screenshots go to
test-results/desktop/. Skips where Xvfb, xterm or xdotool are absent (CI installs them)."""

from __future__ import annotations

import io
import os
import select
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from ijpweb import main
from ijpweb.catalog.embedded import EmbeddedCatalog
from ijpweb.jobscript import IcatRest
from ijpweb.jobtypes import JobTypes
from ijpweb.models import get_engine

from ..conftest import load_demo, migrate, portal_settings, serving

pytestmark = pytest.mark.once  # a portal and catalog of its own
ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "jobtypes" / "scripts"
SHOTS = ROOT / "test-results" / "desktop"
MISSING = [tool for tool in ("Xvfb", "xterm", "xdotool") if not shutil.which(tool)]
if MISSING:
    pytestmark = [pytestmark, pytest.mark.skip(reason=f"{', '.join(MISSING)} not installed (apt-get install "
                                                      "xvfb xterm xdotool xfonts-base)")]  # fmt: skip
BACKGROUND = (0x2B, 0x2B, 0x2B)  # the image viewer's


def reserve_display() -> tuple[int, socket.socket]:
    """A display number free here (no socket file, no lock) whose abstract socket name
    (``@/tmp/.X11-unix/XN``) this test holds, bound and never listening, as the desktop
    supervisor does: X clients try that name before the socket file, and an interactive
    sandbox shares the host's abstract names, so a session's job listening there would
    otherwise get this test's connections to ``:N``. Held, they are refused at once and
    take the socket file."""
    for number in range(100, 400):
        if os.path.exists(f"/tmp/.X11-unix/X{number}") or os.path.exists(f"/tmp/.X{number}-lock"):
            continue
        held = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            held.bind(f"\0/tmp/.X11-unix/X{number}")
        except OSError:
            held.close()
            continue
        return number, held
    raise AssertionError("no free X display among :100 to :399")


@contextmanager
def display(width: int = 1024, height: int = 700):
    """A private Xvfb: no TCP, and no abstract socket (-nolisten local), only
    /tmp/.X11-unix/XN, its abstract name held here (:func:`reserve_display`); -noreset (it
    would reset whenever its last client leaves, refusing whoever connects then) and -br (a
    black root, not the black and white weave the screenshots would take for a window).
    Yields its DISPLAY value (':N')."""
    number, held = reserve_display()
    read, write = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", f":{number}", "-displayfd", str(write), "-nolisten", "tcp", "-nolisten", "local", "-noreset", "-br", "-screen", "0",
         f"{width}x{height}x24"],
        pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(write)
    try:
        got = b""
        deadline = time.monotonic() + 30
        while not got.endswith(b"\n"):
            assert time.monotonic() < deadline, "Xvfb did not say it is ready"
            if select.select([read], [], [], 1)[0]:
                chunk = os.read(read, 16)
                assert chunk, "Xvfb ended before it was ready"
                got += chunk
        assert int(got) == number
        yield f":{number}"
    finally:
        os.close(read)
        proc.terminate()
        proc.wait(timeout=10)
        held.close()


def xdo(disp: str, *args: str) -> str:
    done = subprocess.run(["xdotool", *args], env={**os.environ, "DISPLAY": disp}, capture_output=True,
                          text=True, timeout=30)  # fmt: skip
    return done.stdout.strip()


def wait_window(disp: str, name: str, timeout: float = 30) -> str:
    """The id of the window whose name matches ``name`` (a regular expression)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if found := xdo(disp, "search", "--name", name).split():
            return found[0]
        time.sleep(0.2)
    raise AssertionError(f"no window named {name!r} appeared")


def wait_name(disp: str, window: str, name: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while (now := xdo(disp, "getwindowname", window)) != name:
        assert time.monotonic() < deadline, f"the window is named {now!r}, not {name!r}"
        time.sleep(0.1)


def screen(disp: str, shot: str):
    from PIL import ImageGrab

    SHOTS.mkdir(parents=True, exist_ok=True)
    image = ImageGrab.grab(xdisplay=disp).convert("RGB")
    image.save(SHOTS / shot)
    return image


def wait_for(predicate, what: str, timeout: float = 20):
    deadline = time.monotonic() + timeout
    while not (got := predicate()):
        assert time.monotonic() < deadline, what
        time.sleep(0.1)
    return got


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    """A portal of this module's own (demo catalog, no harvester): the tests add a datafile
    to it. Yields (url, {user: catalog session id})."""
    tmp = tmp_path_factory.mktemp("demo-desktop")
    settings = portal_settings(str(ROOT / "testing.ini"), tmp, f"sqlite:///{tmp / 'portal.sqlite'}")
    engine = get_engine(settings)
    migrate(engine)
    load_demo(engine, settings["ijp.filestore"])
    app = main({}, **settings)
    with Session(engine) as db, db.begin():
        sessions = {user: EmbeddedCatalog(db).login("db", {"username": user, "password": f"{user}-demo"}).session_id
                    for user in ("alice", "carol")}  # fmt: skip
    with serving(app) as url:
        yield url, sessions
    engine.dispose()


@contextmanager
def program(disp: str, argv: list[str], session: str, cwd: Path):
    """The job's program as the supervisor starts it: DISPLAY, the session in the
    environment only; yields the process (stdout and stderr to files in ``cwd``)."""
    env = {
        "PATH": os.pathsep.join([str(SCRIPTS), str(Path(sys.executable).parent), os.defpath]),
        "HOME": str(cwd),
        "DISPLAY": disp,
        "IJP_SESSION_ID": session,
        "JOB_OUTPUT_DIR": str(cwd),
        "LANG": "C.UTF-8",
    }
    with open(cwd / "stdout", "wb") as out, open(cwd / "stderr", "wb") as err:
        proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=err, start_new_session=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=10)


def viewer_argv(url: str, datasets=(), datafiles=()) -> list[str]:
    return [str(SCRIPTS / "image_viewer.py"), f"--datasetIds={','.join(map(str, datasets))}",
            f"--datafileIds={','.join(map(str, datafiles))}", f"--icatUrl={url}", f"--idsUrl={url}"]  # fmt: skip


def says(cwd: Path, text: str) -> bool:
    return any(line.startswith("the window says: ") and text in line
               for line in (cwd / "stdout").read_text().splitlines())  # fmt: skip


def test_the_shipped_interactive_job_types_load():
    cat = JobTypes(ROOT / "jobtypes").current()
    assert not cat.problems
    viewer, terminal = cat.get("Image viewer"), cat.get("Terminal")
    assert viewer.interactive and terminal.interactive
    assert (SCRIPTS / viewer.executable).is_file() and os.access(SCRIPTS / viewer.executable, os.X_OK)
    assert (SCRIPTS / terminal.executable).is_file() and os.access(SCRIPTS / terminal.executable, os.X_OK)
    assert viewer.session_id and viewer.ids_url_required and terminal.session_id


def test_image_viewer_shows_the_datasets_tiffs_and_pages_with_the_keys(portal, tmp_path):
    url, sessions = portal
    icat = IcatRest(url, sessions["alice"])
    (ds,) = icat.search("SELECT ds FROM Dataset ds WHERE ds.name = 'confocal-001-001'")
    tiffs = sorted(df["name"] for df in icat.search(f"SELECT df FROM Datafile df WHERE df.dataset.id = {ds['id']}")
                   if df["name"].endswith(".tif"))  # fmt: skip
    assert len(tiffs) >= 2
    with display() as disp, program(disp, viewer_argv(url, [ds["id"]]), sessions["alice"], tmp_path) as proc:
        window = wait_window(disp, "^IJP image viewer")
        wait_name(disp, window, f"IJP image viewer — {tiffs[0]}")
        # the image is there (not only its "Reading" message): the noise of the demo TIFF,
        # enlarged pixel for pixel, fills the middle of the window
        shot = wait_for(lambda: (im := screen(disp, "viewer-first.png")).getpixel((512, 340)) != BACKGROUND and im,
                        "the first image was not drawn")  # fmt: skip
        middle = shot.crop((412, 240, 612, 440))
        assert len(set(middle.get_flattened_data())) >= 8, "the middle of the window is not the image's noise"
        assert shot.getpixel((3, 3)) == BACKGROUND
        xdo(disp, "key", "--window", window, "Right")
        wait_name(disp, window, f"IJP image viewer — {tiffs[1]}")
        wait_for(lambda: screen(disp, "viewer-second.png").crop((412, 240, 612, 440)).tobytes() != middle.tobytes(),
                 "the second image was not drawn")  # fmt: skip
        xdo(disp, "key", "--window", window, "End")
        wait_name(disp, window, f"IJP image viewer — {tiffs[-1]}")
        xdo(disp, "key", "--window", window, "Right")  # past the end: round to the first
        wait_name(disp, window, f"IJP image viewer — {tiffs[0]}")
        # paging fast (the reader skips to the newest wish): the image shown at the end is
        # drawn, not left "Reading"
        xdo(disp, "key", "--window", window, "--repeat", "25", "--delay", "5", "Right")
        wait_name(disp, window, f"IJP image viewer — {tiffs[25 % len(tiffs)]}")
        wait_for(lambda: len(set(screen(disp, "viewer-fast.png").crop((412, 240, 612, 440)).get_flattened_data())) >= 8,
                 "the image paged to fast was not drawn")  # fmt: skip
        assert proc.poll() is None
    out = (tmp_path / "stdout").read_text()
    assert f"image viewer: {len(tiffs)} TIFF datafile(s)" in out
    assert sessions["alice"] not in out + (tmp_path / "stderr").read_text()
    assert "Traceback" not in (tmp_path / "stderr").read_text()


def test_carol_cannot_view_alices_images(portal, tmp_path):
    url, sessions = portal
    (ds,) = IcatRest(url, sessions["alice"]).search(
        "SELECT ds FROM Dataset ds WHERE ds.name = 'confocal-001-001'"
    )
    files = IcatRest(url, sessions["alice"]).search(
        f"SELECT df FROM Datafile df WHERE df.dataset.id = {ds['id']}"
    )
    argv = viewer_argv(url, [ds["id"]], [files[0]["id"]])
    with display() as disp, program(disp, argv, sessions["carol"], tmp_path) as proc:
        window = wait_window(disp, "^IJP image viewer")
        wait_name(disp, window, "IJP image viewer — no images")
        wait_for(lambda: says(tmp_path, "The selection has no TIFF datafiles"), "no message in the window")
        shot = screen(disp, "viewer-carol.png")
        # only the message's white text on the background: no image
        assert set(shot.crop((0, 60, 1024, 600)).get_flattened_data()) <= {BACKGROUND} | {
            (v, v, v) for v in range(43, 256)
        }
        assert proc.poll() is None
    assert "image viewer: 0 TIFF datafile(s)" in (tmp_path / "stdout").read_text()
    assert "Traceback" not in (tmp_path / "stderr").read_text()


def test_image_viewer_says_when_a_tiff_cannot_be_read(portal, tmp_path):
    from icat.ids import IDSClient

    url, sessions = portal
    icat = IcatRest(url, sessions["alice"])
    (ds,) = icat.search("SELECT ds FROM Dataset ds WHERE ds.name = 'confocal-001-002'")
    ids = IDSClient(url + "/ids", sessionId=sessions["alice"])
    (fmt,) = icat.search("SELECT f FROM DatafileFormat f WHERE f.name = 'TIFF'")
    broken = ids.put(io.BytesIO(b"II*\x00 this is not an image"), "broken.tif", ds["id"], fmt["id"])
    with (
        display() as disp,
        program(disp, viewer_argv(url, [], [broken]), sessions["alice"], tmp_path) as proc,
    ):
        window = wait_window(disp, "^IJP image viewer")
        wait_name(disp, window, "IJP image viewer — broken.tif")
        wait_for(
            lambda: says(tmp_path, "broken.tif cannot be read: it is not a TIFF image"),
            "no message about the broken file",
        )
        screen(disp, "viewer-broken.png")
        assert proc.poll() is None, "the viewer ended instead of saying so"
    assert "Traceback" not in (tmp_path / "stderr").read_text()


def test_image_viewer_without_a_selection_says_so(portal, tmp_path):
    url, sessions = portal
    with display() as disp, program(disp, viewer_argv(url), sessions["alice"], tmp_path):
        window = wait_window(disp, "^IJP image viewer")
        wait_name(disp, window, "IJP image viewer — no images")
        wait_for(lambda: says(tmp_path, "The selection has no TIFF datafiles (datasets: none)"), "no message")


def test_terminal_runs_in_the_work_directory_with_the_jobs_environment(portal, tmp_path):
    url, sessions = portal
    argv = [str(SCRIPTS / "ijp_terminal.sh"), "--datasetIds=4,5", f"--icatUrl={url}", f"--idsUrl={url}"]
    with display() as disp, program(disp, argv, sessions["alice"], tmp_path) as proc:
        window = wait_window(disp, "^IJP terminal$")
        shot = wait_for(lambda: (im := screen(disp, "terminal.png")).getpixel((300, 300)) == (255, 255, 255) and im,
                        "the xterm's white page is not there")  # fmt: skip
        colours = shot.crop((0, 0, 600, 60)).getcolors(1 << 16)
        assert {c for _, c in colours} >= {(255, 255, 255), (0, 0, 0)}, "no black prompt on the white page"
        # typing goes through the X server's input (XTEST) to the window under the pointer,
        # as x11vnc delivers a browser's keys
        xdo(disp, "mousemove", "--window", window, "100", "100")
        xdo(disp, "type", "--delay", "20", 'echo ijp-typed > typed.txt; echo "$IJP_ICAT_URL $IJP_DATASET_IDS" > env.txt; '
                                           'echo "${#IJP_SESSION_ID} $PWD" > session.txt')  # fmt: skip
        xdo(disp, "key", "Return")
        wait_for(lambda: (tmp_path / "typed.txt").exists(), "what was typed did not reach the shell")
        assert (tmp_path / "typed.txt").read_text() == "ijp-typed\n"
        assert (tmp_path / "env.txt").read_text() == f"{url} 4,5\n"
        assert (tmp_path / "session.txt").read_text() == f"{len(sessions['alice'])} {tmp_path}\n"
        screen(disp, "terminal-typed.png")
        # the session is in the environment, never in a command line
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                except OSError:
                    continue
                assert sessions["alice"].encode() not in cmdline
        xdo(disp, "type", "--delay", "20", "exit")
        xdo(disp, "key", "Return")
        assert proc.wait(timeout=20) == 0  # the program's end is the session's end


def test_sixteen_bit_and_float_tiffs_are_stretched_to_eight_bits():
    import importlib.util

    import numpy as np
    from PIL import Image

    spec = importlib.util.spec_from_file_location("image_viewer", SCRIPTS / "image_viewer.py")
    viewer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(viewer)  # (its main() runs only as a program)
    for pixels in (
        np.arange(100, 100 + 64 * 64, dtype=np.uint16).reshape(64, 64) * 10,
        np.linspace(-1, 1, 64 * 64, dtype=np.float32).reshape(64, 64),
    ):
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, "TIFF")
        buf.seek(0)
        shown = viewer.displayable(Image.open(buf))
        assert shown.mode == "L" and shown.getextrema() == (0, 255)
    assert viewer.is_tiff("A.TIFF") and viewer.is_tiff("b.tif") and not viewer.is_tiff("c.tif.txt")
    assert (viewer.human(378), viewer.human(5 << 20)) == ("378 bytes", "5.0 MB")
