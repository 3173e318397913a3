"""Carol's findings 4 and 5 on a job's outputs (issue 13, fix O).

4. A running job that swaps a subdirectory of its output for a symlink (to bob's output
   directory, to /, ...) between the listing's look at it and its descent must never get
   the link followed: not in the job page, the /outputs fragment, /api/v1's files, the
   zip, nor the batch server's outputs extension. Nor may a job redirect what else the
   portal reads of it: ``work/`` or ``work/output-vars`` made links (its output
   variables), ``stdout``/``stderr`` or its end records made links or FIFOs.
5. An output file name that is not UTF-8 is counted ("cannot be shown"), never listed
   nor served, and never a 500: the job page, /api/v1/jobs/{id}, /files and the zip work.

The swaps are made deterministically, at the moment the walk touches the directory
(whatever way it opens it), and once more by a real job racing (sandboxed where
bubblewrap works here, as every functional test's job)."""

import io
import os
import time
import zipfile

import pytest

from ijpweb import outputs
from ijpweb.batch import JobSpec
from ijpweb.batch import runner as runner_mod
from ijpweb.batch.harvest import harvest
from ijpweb.models import Job, Submission
from ijpweb.states import JobStatus

from ..conftest import make_testapp
from .test_outputs import run_job

API = "/api/v1"


def _job_dir(backends, job) -> str:
    return os.path.realpath(backends["local"].root / job.backend_job_id)


@pytest.fixture
def bob_dir(dbsession, backends):
    """bob's job's output directory, holding his secret file."""
    job = run_job(
        dbsession,
        backends,
        "db/bob",
        'printf "bob secret" > "$JOB_OUTPUT_DIR/bob-secret-name.txt"; echo OUT_BOB=secret > "$JOB_OUTPUT_VARS"',
    )
    assert job.status == JobStatus.COMPLETED, job.reason
    return _job_dir(backends, job)


class Swapper:
    """Swaps ``out/d`` (a directory) for a symlink to ``target`` the first time the
    walk touches ``d`` after looking at it: by its path (os.scandir, os.open), or by its
    name relative to the output directory's descriptor (os.open(dir_fd=)). ``restore``
    puts the directory back for the next request."""

    def __init__(self, monkeypatch, out: str, target: str):
        self.out, self.target, self.swaps = out, target, 0
        self.armed = True
        real_scandir, real_open = os.scandir, os.open

        def concerns_d(path, dir_fd) -> bool:
            path = os.fsdecode(path) if isinstance(path, (str, bytes)) else path
            if path == os.path.join(out, "d"):
                return True
            if path == "d" and dir_fd is not None:
                return os.readlink(f"/proc/self/fd/{dir_fd}") == out
            return False

        def swap():
            if self.armed:
                self.armed = False
                self.swaps += 1
                os.rename(os.path.join(out, "d"), os.path.join(out, "t"))
                os.symlink(target, os.path.join(out, "d"))  # what carol's job does, at this instant

        def scandir(path="."):
            if concerns_d(path, None):
                swap()
            return real_scandir(path)

        def open_(path, flags, mode=0o777, *, dir_fd=None):
            if concerns_d(path, dir_fd):
                swap()
            return real_open(path, flags, mode, dir_fd=dir_fd)

        monkeypatch.setattr(os, "scandir", scandir)
        monkeypatch.setattr(os, "open", open_)

    def restore(self):
        if not self.armed:
            os.unlink(os.path.join(self.out, "d"))
            os.rename(os.path.join(self.out, "t"), os.path.join(self.out, "d"))
            self.armed = True


@pytest.fixture
def swapped(app, tm, dbsession, backends, bob_dir, monkeypatch):
    """carol's job with ``d/f`` in its output (and a file beside), logged-in carol, and a
    Swapper pointing ``d`` at bob's output directory."""
    job = run_job(
        dbsession,
        backends,
        "db/carol",
        'mkdir "$JOB_OUTPUT_DIR/d"; : > "$JOB_OUTPUT_DIR/d/f"; : > "$JOB_OUTPUT_DIR/a"',
    )
    out = os.path.join(_job_dir(backends, job), "output")
    carol = make_testapp(app, tm, dbsession)
    carol.login("carol")
    return job, carol, Swapper(monkeypatch, out, os.path.join(bob_dir, "output"))


def _no_bob(text: str, where: str):
    assert "bob-secret" not in text, f"carol's {where} shows bob's file"


def test_the_listing_never_follows_a_directory_swapped_for_a_link(swapped):
    job, carol, swapper = swapped
    files = carol.get(f"{API}/jobs/{job.id}/files").json
    assert swapper.swaps == 1  # (the swap was made, at the moment the walk went into d)
    _no_bob(str(files), "/api/v1 files")
    assert [f["name"] for f in files["files"]] == ["a"] and files["others"] == 1  # d, now a link
    swapper.restore()
    _no_bob(carol.get(f"/jobs/{job.id}").text, "job page")
    swapper.restore()
    _no_bob(carol.htmx("GET", f"/jobs/{job.id}/outputs").text, "outputs fragment")
    swapper.restore()
    _no_bob(carol.get(f"{API}/jobs/{job.id}").text, "/api/v1 job")
    swapper.restore()
    assert swapper.swaps == 4


@pytest.mark.parametrize("url", ["/jobs/{id}/outputs.zip", API + "/jobs/{id}/outputs.zip"])
def test_the_zip_never_follows_a_directory_swapped_for_a_link(swapped, url):
    job, carol, swapper = swapped
    body = carol.get(url.format(id=job.id)).body
    assert swapper.swaps == 1
    with zipfile.ZipFile(io.BytesIO(body)) as z:
        assert z.namelist() == ["a"]
        assert b"bob secret" not in b"".join(z.read(n) for n in z.namelist())


def test_a_file_download_never_follows_a_directory_swapped_for_a_link(swapped):
    job, carol, swapper = swapped
    carol.get(f"{API}/jobs/{job.id}/file", {"name": "d/bob-secret-name.txt"}, status=404)
    assert swapper.swaps == 1


def test_a_running_job_swapping_a_link_never_lists_bobs_files(app, tm, dbsession, backends, bob_dir):
    """The same with a real job flipping the names (a race, seen in ~1% of listings
    before the fix): carol polls her listing while it runs."""
    bob_out = os.path.join(bob_dir, "output")
    script = f"""cd "$JOB_OUTPUT_DIR"; exec python3 -c '
import os, time
os.mkdir("d"); open("d/f", "w").close()
for i in range(450): open("e%d" % i, "w").close()  # (the walk lstats these between)
os.symlink("{bob_out}", "l")
end = time.time() + 40
while time.time() < end:
    os.rename("d", "t"); os.rename("l", "d"); os.rename("d", "l"); os.rename("t", "d")
'"""
    sub = Submission(owner="db/carol", job_type="Date", mode="single")
    job = Job(
        submission=sub, owner="db/carol", job_type="Date", argv=[], backend="local", status=JobStatus.QUEUED
    )
    dbsession.add(job)
    dbsession.flush()
    job.backend_job_id = backends["local"].submit(
        JobSpec(job.id, "db/carol", "/bin/sh", ("-c", script, "job"))
    )
    dbsession.flush()
    carol = make_testapp(app, tm, dbsession)
    carol.login("carol")
    leaked, listings, deadline = [], 0, time.monotonic() + 30
    try:
        while time.monotonic() < deadline and not leaked:
            harvest(dbsession, backends)
            files = carol.get(f"{API}/jobs/{job.id}/files").json
            listings += 1
            leaked = [f["name"] for f in files["files"] if "bob-secret" in f["name"]]
    finally:
        carol.post(f"/jobs/{job.id}/cancel", {"csrf_token": carol.get_csrf_token()}, status="*")
    assert not leaked, f"carol's listing showed bob's output file (after {listings} listings): {leaked}"
    assert listings > 20


# --- what else a job could redirect -----------------------------------------------------------


def test_work_or_its_vars_file_made_a_link_gives_no_other_jobs_variables(dbsession, backends, bob_dir):
    """An unsandboxed job can replace its own ``work/`` (or ``work/output-vars``) by a link
    to bob's: the portal reads nothing through it. (A sandboxed one cannot: its work/ is a
    bind mount, tests/integration/test_sandbox_redirects.py.)"""
    local = backends["local"]
    assert dict(local.output_vars(os.path.basename(bob_dir)).values) == {"OUT_BOB": "secret"}
    job = run_job(dbsession, backends, "db/carol", 'echo OUT_MINE=1 > "$JOB_OUTPUT_VARS"')
    d = _job_dir(backends, job)
    assert dict(local.output_vars(job.backend_job_id).values) == {"OUT_MINE": "1"}
    os.rename(os.path.join(d, "work"), os.path.join(d, "work.old"))
    os.symlink(os.path.join(bob_dir, "work"), os.path.join(d, "work"))
    assert local.output_vars(job.backend_job_id) is None
    os.unlink(os.path.join(d, "work"))
    os.rename(os.path.join(d, "work.old"), os.path.join(d, "work"))
    os.unlink(os.path.join(d, "work", "output-vars"))
    os.symlink(os.path.join(bob_dir, "work", "output-vars"), os.path.join(d, "work", "output-vars"))
    assert local.output_vars(job.backend_job_id) is None


def test_output_made_a_link_lists_and_serves_nothing(app, tm, dbsession, backends, bob_dir):
    job = run_job(dbsession, backends, "db/carol", 'echo mine > "$JOB_OUTPUT_DIR/mine.txt"')
    d = _job_dir(backends, job)
    os.rename(os.path.join(d, "output"), os.path.join(d, "output.old"))
    os.symlink(os.path.join(bob_dir, "output"), os.path.join(d, "output"))
    carol = make_testapp(app, tm, dbsession)
    carol.login("carol")
    files = carol.get(f"{API}/jobs/{job.id}/files").json
    assert files["files"] == [] and files["total"] == 0
    carol.get(f"{API}/jobs/{job.id}/file", {"name": "bob-secret-name.txt"}, status=404)
    with zipfile.ZipFile(io.BytesIO(carol.get(f"/jobs/{job.id}/outputs.zip").body)) as z:
        assert z.namelist() == []


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_a_stream_made_a_link_or_fifo_is_not_read_through(app, tm, dbsession, backends, bob_dir, stream):
    job = run_job(dbsession, backends, "db/carol", "echo mine; echo mine >&2")
    d = _job_dir(backends, job)
    local = backends["local"]
    assert local.read(job.backend_job_id, stream, 0, 100) == b"mine\n"
    os.unlink(os.path.join(d, stream))
    with open(os.path.join(bob_dir, "stdout"), "w") as fh:
        fh.write("bob's output\n")
    os.symlink(os.path.join(bob_dir, "stdout"), os.path.join(d, stream))
    assert local.read(job.backend_job_id, stream, 0, 100) == b""
    carol = make_testapp(app, tm, dbsession)
    carol.login("carol")
    assert "bob's output" not in carol.get(f"/jobs/{job.id}").text
    os.unlink(os.path.join(d, stream))
    os.mkfifo(os.path.join(d, stream))
    assert local.read(job.backend_job_id, stream, 0, 100) == b""  # and did not hang
    assert carol.get(f"/jobs/{job.id}").status_int == 200


def test_an_end_record_made_a_link_or_fifo_is_not_read_through(tmp_path):
    """The launcher's records (started.json, exit.json, launched) are read without
    following a link and without hanging on a FIFO."""
    (tmp_path / "elsewhere.json").write_text('{"code": 0, "signal": null, "at": "x"}')
    (tmp_path / "exit.json").symlink_to(tmp_path / "elsewhere.json")
    assert runner_mod.read_json(tmp_path / "elsewhere.json") == {"code": 0, "signal": None, "at": "x"}
    assert runner_mod.read_json(tmp_path / "exit.json") is None
    os.mkfifo(tmp_path / "started.json")
    assert runner_mod.read_json(tmp_path / "started.json") is None  # and did not hang
    os.mkfifo(tmp_path / "launched")
    assert runner_mod.launcher(tmp_path) is None


# --- names that are not UTF-8 ---------------------------------------------------------------

LATIN1 = r"""printf x > "$JOB_OUTPUT_DIR/$(printf 'caf\351.txt')"; printf ok > "$JOB_OUTPUT_DIR/good.txt"
mkdir "$JOB_OUTPUT_DIR/$(printf 'd\377')"; printf y > "$JOB_OUTPUT_DIR/$(printf 'd\377')/inner.txt"
"""


def test_a_name_that_is_not_utf8_does_not_break_the_job(app, tm, dbsession, backends):
    job = run_job(dbsession, backends, "db/carol", LATIN1)
    assert job.status == JobStatus.COMPLETED, job.reason
    carol = make_testapp(app, tm, dbsession)
    carol.login("carol")
    page = carol.get(f"/jobs/{job.id}", status="*")
    assert page.status_int == 200 and "good.txt" in page.text
    assert "2 entries in the output directory have names that cannot be shown" in page.text
    fragment = carol.htmx("GET", f"/jobs/{job.id}/outputs", status="*")
    assert fragment.status_int == 200 and "cannot be shown" in fragment.text
    assert carol.get(f"{API}/jobs/{job.id}", status="*").status_int == 200
    files = carol.get(f"{API}/jobs/{job.id}/files", status="*")
    assert files.status_int == 200
    assert [f["name"] for f in files.json["files"]] == ["good.txt"]
    assert files.json["unnamed"] == 2 and files.json["total"] == 1
    for url in (f"/jobs/{job.id}/outputs.zip", f"{API}/jobs/{job.id}/outputs.zip"):
        with zipfile.ZipFile(io.BytesIO(carol.get(url).body)) as z:
            assert z.namelist() == ["good.txt"] and z.read("good.txt") == b"ok"
    # asked for by the name as text would show it: not served
    carol.get(f"{API}/jobs/{job.id}/file", {"name": "caf\ufffd.txt"}, status=404)


def test_content_disposition_of_a_name_that_is_not_utf8():
    name = os.fsdecode(b"sub/caf\xe9.txt")
    header = outputs.content_disposition(name)
    assert header == "attachment; filename=\"caf_.txt\"; filename*=UTF-8''caf%EF%BF%BD.txt"
