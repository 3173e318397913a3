"""Issue 4, point 3: ijp-batchserver (a real process under waitress, wrapping the local
backend) speaking the IJP batch protocol, authenticating callers through their catalog
session on a live portal; and the portal's remote backend as its client."""

import json
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from ijpweb.batch import BatchError, JobSpec
from ijpweb.batch.remote import RemoteBackend
from ijpweb.catalog.embedded import EmbeddedCatalog
from ijpweb.models import DbCredential
from ijpweb.passwords import hash_password
from ijpweb.planning import SESSION_ARG, SESSION_ENV
from ijpweb.states import JobStatus

from ..conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
PORTAL_PASSWORD = "portal-password-for-tests"
pytestmark = pytest.mark.once  # a portal and a batch server with their own databases

ORIGINAL = {"Completed", "Executing", "Held", "Queued", "Cancelled", "Unknown"}


def login(engine, user, password=None):
    with Session(engine) as db, db.begin():
        catalog = EmbeddedCatalog(db)
        return catalog.login("db", {"username": user, "password": password or f"{user}-demo"}).session_id


@contextmanager
def running_batch_server(engine, ini: Path, url: str):
    """``ijp-batchserver INI`` as a subprocess, the portal's account known to the catalog
    in ``engine``; yields the process once ``url`` answers, and stops it afterwards."""
    with Session(engine) as db, db.begin():
        if db.get(DbCredential, "ijp-portal") is None:
            db.add(DbCredential(username="ijp-portal", password_hash=hash_password(PORTAL_PASSWORD)))
    exe = Path(sys.executable).parent / "ijp-batchserver"
    proc = subprocess.Popen([str(exe), str(ini)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/batch/version", timeout=2).close()
            break
        except OSError:
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "ijp-batchserver did not start"
            time.sleep(0.1)
    try:
        yield proc
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()


@pytest.fixture(scope="module")
def batch_server(live_server, tmp_path_factory):
    """``ijp-batchserver INI`` as a subprocess; yields (batch url, portal url, engine)."""
    portal, engine = live_server
    tmp = tmp_path_factory.mktemp("batchserver")
    port = free_port()
    ini = tmp / "batchserver.ini"
    ini.write_text(
        f"""[app:main]
use = egg:ijpweb#batchserver
icat_urls = {portal}
portals = db/ijp-portal
executables = date printenv
database = sqlite:///{tmp / "batch.sqlite"}
backend.type = local
backend.dir = {tmp / "jobs"}
backend.max_running = 2
backend.path = {ROOT / "jobtypes" / "scripts"}
backend.python = {sys.executable}

[server:main]
use = egg:waitress#main
listen = 127.0.0.1:{port}
"""
    )
    url = f"http://127.0.0.1:{port}"
    with running_batch_server(engine, ini, url):
        yield url, portal, engine


def call(base, method, path, sid, icat_url, **params):
    """One raw protocol call as any original client makes it; returns (status, body)."""
    fields = [("sessionId", sid), ("icatUrl", icat_url)] if sid else [("icatUrl", icat_url)]
    for k, v in params.items():
        fields += [(k, x) for x in v] if isinstance(v, list) else [(k, v)]
    query = urllib.parse.urlencode(fields)
    if method == "POST":
        req = urllib.request.Request(f"{base}/batch/{path}", data=query.encode(), method="POST")
    else:
        req = urllib.request.Request(f"{base}/batch/{path}?{query}", method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = resp.read()
            status = resp.status
    except urllib.error.HTTPError as e:
        with e:
            body, status = e.read(), e.code
    try:
        return status, json.loads(body) if body else body
    except ValueError:
        return status, body


def wait_status(base, sid, icat, job, wanted, timeout=30):
    deadline = time.monotonic() + timeout
    while True:
        status, body = call(base, "GET", f"status/{job}", sid, icat)
        assert status == 200 and body["status"] in ORIGINAL, body
        if body["status"] in wanted:
            return body["status"]
        assert time.monotonic() < deadline, f"job {job} stayed {body}"
        time.sleep(0.2)


def test_original_protocol_as_a_user(batch_server):
    base, icat, engine = batch_server
    bob, alice = login(engine, "bob"), login(engine, "alice")
    status, body = call(
        base, "POST", "submit", bob, icat, executable="date", interactive="false", family="batch"
    )
    assert status == 200 and isinstance(body["jobId"], str)
    job = body["jobId"]
    assert wait_status(base, bob, icat, job, {"Completed"}) == "Completed"
    status, out = call(base, "GET", f"output/{job}", bob, icat)
    assert status == 200 and str(time.gmtime().tm_year).encode() in out
    assert call(base, "GET", f"error/{job}", bob, icat) == (200, b"")
    assert job in call(base, "GET", "list", bob, icat)[1]
    # another user: not his job, on every call, and not in his list
    for method, path in (("GET", f"status/{job}"), ("GET", f"output/{job}"), ("POST", f"cancel/{job}"),
                         ("DELETE", f"delete/{job}")):  # fmt: skip
        assert call(base, method, path, alice, icat) == (
            403,
            {"code": "ForbiddenException", "message": "Job does not belong to you"},
        )
    assert job not in call(base, "GET", "list", alice, icat)[1]
    assert call(base, "DELETE", f"delete/{job}", bob, icat) == (204, b"")
    assert job not in call(base, "GET", "list", bob, icat)[1]
    assert call(base, "GET", f"status/{job}", bob, icat)[0] == 403


def test_bad_calls_get_the_protocols_errors(batch_server):
    base, icat, engine = batch_server
    bob = login(engine, "bob")
    assert call(base, "GET", "list", None, icat) == (
        400,
        {"code": "ParameterException", "message": "No sessionId was specified"},
    )
    status, body = call(base, "GET", "list", "not-a-session", icat)
    assert status == 403 and body["code"] == "SessionException"
    status, body = call(base, "GET", "list", bob, "http://evil.example")
    assert status == 400 and "not an ICAT this batch server trusts" in body["message"]
    for exe in ("/bin/sh", "../date", "rm", ""):
        status, body = call(base, "POST", "submit", bob, icat, executable=exe)
        assert status == 400 and body["code"] == "ParameterException", exe
    status, body = call(base, "POST", "submit", bob, icat, executable="date", interactive="true")
    assert status == 400 and "Interactive" in body["message"]
    status, body = call(base, "POST", "submit", bob, icat, executable="date", owner="db/alice")
    assert status == 403 and body["message"] == "db/bob may not submit jobs for db/alice"
    assert call(base, "GET", "status/nope", bob, icat)[0] == 403
    # the estimate reads "parameter" and answers a whole number of minutes
    status, body = call(
        base, "GET", "estimate", bob, icat, executable="date", parameter=["a"], family="batch"
    )
    assert status == 200 and isinstance(body["time"], int) and body["time"] >= 0


def test_cancel_and_delete_rules(batch_server):
    base, icat, engine = batch_server
    bob = login(engine, "bob")
    job = call(
        base, "POST", "submit", bob, icat, executable="sleepcount.py", parameter=["--count=30", "--sleep=1"]
    )[1]["jobId"]
    wait_status(base, bob, icat, job, {"Executing"})
    assert call(base, "DELETE", f"delete/{job}", bob, icat) == (
        400,
        {"code": "ParameterException", "message": f"Job {job} is Executing"},
    )
    assert call(base, "POST", f"cancel/{job}", bob, icat) == (204, b"")
    assert wait_status(base, bob, icat, job, {"Cancelled"}) == "Cancelled"
    assert call(base, "DELETE", f"delete/{job}", bob, icat) == (204, b"")


def portal_backend(base, icat, **kw):
    return RemoteBackend("remote", base, icat, "ijp-portal", PORTAL_PASSWORD, **kw)


_ids = iter(range(50_000, 60_000))


def test_portal_backend_submits_for_its_users(batch_server):
    base, icat, engine = batch_server
    remote = portal_backend(base, icat)
    bob = login(engine, "bob")
    spec = JobSpec(next(_ids), "db/bob", "printenv", (SESSION_ARG, "IJP_SESSION_ID"), {SESSION_ENV: bob})
    job = remote.submit(spec)
    assert remote.submit(spec) == job  # the same portal job again: not run twice
    assert remote.find([spec.job_id, spec.job_id + 1]) == {spec.job_id: job}
    deadline = time.monotonic() + 30
    while (state := remote.states([job])[job]).status != JobStatus.COMPLETED:
        assert state.status.live and time.monotonic() < deadline, state
        time.sleep(0.2)
    assert state.exit_code == 0 and state.started_at and state.finished_at
    # the job got the user's session (in its environment, not its argv), not the portal's
    assert remote.read(job, "stdout") == (bob + "\n").encode()
    assert remote.read(job, "stdout", offset=3, limit=4) == bob[3:7].encode()
    for far in (10**18, 2**63 - 1):  # past the filesystem's largest file: nothing, not an error
        assert remote.read(job, "stdout", offset=far) == b""
    # the job is bob's: he sees it with his own session; alice does not
    assert job in call(base, "GET", "list", bob, icat)[1]
    assert job not in call(base, "GET", "list", login(engine, "alice"), icat)[1]
    assert remote.estimate(spec) >= 0
    remote.delete(job)
    assert remote.states([job])[job].status == JobStatus.UNKNOWN


def test_portal_backend_failures_are_batch_errors(batch_server):
    base, icat, engine = batch_server
    with pytest.raises(BatchError, match="cannot log in"):
        RemoteBackend("remote", base, icat, "ijp-portal", "wrong password").states(["1"])
    with pytest.raises(BatchError, match="did not answer"):
        portal_backend(f"http://127.0.0.1:{free_port()}", icat).states(["1"])
    with pytest.raises(BatchError, match="not one of this batch server's programs"):
        portal_backend(base, icat).submit(JobSpec(next(_ids), "db/bob", "bash", ()))
    # the portal's session expired on the ICAT: it logs in again by itself
    remote = portal_backend(base, icat)
    remote.states(["1"])
    remote._session = "expired-session"
    assert remote.states(["1"])["1"].status == JobStatus.UNKNOWN


def test_states_take_one_call_for_many_jobs(batch_server):
    base, icat, engine = batch_server
    remote = portal_backend(base, icat)
    jobs = [remote.submit(JobSpec(next(_ids), "db/carol", "date", ())) for _ in range(5)]
    calls = []
    original = remote._call
    remote._call = lambda *a, **kw: calls.append(a[1]) or original(*a, **kw)
    states = remote.states([*jobs, "999999"])
    assert calls == ["states"]
    assert set(states) == {*jobs, "999999"} and states["999999"].status == JobStatus.UNKNOWN


def test_the_portal_runs_jobs_on_a_batch_server(batch_server, tmp_path, monkeypatch):
    """As a user checks it: the portal configured with only a remote backend; bob picks
    two datasets and runs one job each; the jobs run on the batch server and their
    output shows on the portal's job page."""
    import sqlalchemy as sa
    import transaction
    import webtest

    from ijpweb import main
    from ijpweb.models import Job

    from ..conftest import ROOT as TESTS_ROOT
    from ..conftest import portal_settings
    from ..functional.test_flow import dataset_ids, select

    base, icat, engine = batch_server
    monkeypatch.setenv("IJP_BATCH_PASSWORD", PORTAL_PASSWORD)
    settings = portal_settings(
        str(TESTS_ROOT / "testing.ini"),
        tmp_path,
        str(engine.url),
        **{
            "ijp.batch.backends": "cluster",
            "ijp.batch.cluster.type": "remote",
            "ijp.batch.cluster.url": base,
            "ijp.batch.cluster.icat_url": icat,
            "ijp.batch.cluster.username": "ijp-portal",
        },
    )
    app = main({}, dbengine=engine, **settings)
    bob = webtest.TestApp(app, extra_environ={"HTTP_HOST": "example.com"})
    bob.get("/login")
    token = bob.cookies["csrf_token"]
    bob.post("/login", {"username": "bob", "password": "bob-demo", "csrf_token": token}, status=303)
    bob.htmx = lambda method, url, params: bob.post(
        url, params, headers={"HX-Request": "true", "X-CSRF-Token": token}
    )
    with Session(engine) as db:
        picked = dataset_ids(db, "confocal", "LMF-2026-002")[:2]
    select(bob, "dataset", picked)
    form = bob.get("/submit", {"jobtype": "Test args - multiple datasets or datafiles"}).forms["job-form"]
    form["mode"] = "each"
    form.submit(status=303)
    with Session(engine) as db:
        jobs = db.scalars(sa.select(Job).where(Job.owner == "db/bob").order_by(Job.id.desc()).limit(2)).all()
        ids = [j.id for j in jobs]
    assert all(j.backend == "cluster" for j in jobs)
    deadline = time.monotonic() + 30
    while True:
        app.registry["ijp.scheduler"].submit()  # what the background tasks run
        app.registry["ijp.scheduler"].harvest()
        with Session(engine) as db:
            states = [db.get(Job, i) for i in ids]
        if all(not j.live for j in states):
            break
        assert time.monotonic() < deadline, [(j.status, j.reason) for j in states]
        time.sleep(0.3)
    assert [(j.status, j.reason) for j in states] == [(JobStatus.COMPLETED, None)] * 2
    for job in states:
        assert f"cluster {job.backend_job_id}" in bob.get(f"/jobs/{job.id}").text
        out = bob.get(f"/jobs/{job.id}/output/stdout", {"offset": 0}).text
        assert f"datasetIds = {job.dataset_ids[0]}" in out and "ICAT sessionId provided" in out
    transaction.manager.abort()


def test_a_logged_out_session_is_refused_within_seconds(batch_server):
    """Issue 10, point 7: the batch server remembers an accepted session only for
    session_cache_seconds (default 5), never the 60 s it once did: after a real logout on
    the ICAT the next call past that time is refused."""
    from ijpweb.batchserver.auth import CACHE_SECONDS

    base, icat, engine = batch_server
    carol = login(engine, "carol")
    assert call(base, "GET", "list", carol, icat)[0] == 200  # now remembered
    req = urllib.request.Request(f"{icat}/icat/session/{urllib.parse.quote(carol)}", method="DELETE")
    urllib.request.urlopen(req, timeout=10).close()  # logged out of the portal's ICAT
    time.sleep(CACHE_SECONDS + 0.5)
    status, body = call(base, "GET", "list", carol, icat)
    assert (status, body["code"]) == (403, "SessionException")
    assert carol not in body["message"]  # ICAT may quote the session: it is not echoed
    # a refusal is not remembered either way: a new session works at once
    assert call(base, "GET", "list", login(engine, "carol"), icat)[0] == 200


def test_bad_values_are_the_protocols_errors(batch_server):
    """Issue 10, point 7 on the batch protocol: ids no column holds, offsets out of range,
    text that cannot be an argument, bytes that are not UTF-8, unknown calls and methods:
    each is a 4xx as {"code", "message"}, never a 500 or an HTML page."""
    base, icat, engine = batch_server
    bob = login(engine, "bob")
    huge = str(2**63)
    for path in (f"status/{huge}", f"output/{huge}", "status/-1", "status/%C2%B2"):
        assert call(base, "GET", path, bob, icat) == (403, {"code": "ForbiddenException",
                                                              "message": "Job does not belong to you"}), path  # fmt: skip
    status, body = call(base, "POST", "states", bob, icat, jobId=[huge, "1"])
    assert status == 200 and body[huge]["status"] == "Unknown"
    job = call(base, "POST", "submit", bob, icat, executable="date")[1]["jobId"]
    for offset in (huge, "-1", "x"):
        status, body = call(base, "GET", f"output/{job}", bob, icat, offset=offset)
        assert (status, body["code"]) == (400, "ParameterException") and "offset" in body["message"], offset
    status, body = call(base, "POST", "submit", bob, icat, executable="date", parameter=["a\x00b"])
    assert (status, body["code"]) == (400, "ParameterException") and "NUL" in body["message"]
    status, body = call(base, "POST", "submit", bob, icat, executable="date", clientRef="r" * 300)
    assert (status, body["code"]) == (400, "ParameterException") and "clientRef" in body["message"]
    for raw in (b"sessionId=%FF", b"sessionId=%ED%A0%80"):  # not UTF-8; an encoded surrogate
        req = urllib.request.Request(f"{base}/batch/list?{raw.decode()}&icatUrl={icat}")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req, timeout=10)
        with e.value as resp:
            assert (resp.code, json.loads(resp.read())) == (
                400,
                {"code": "ParameterException", "message": "sessionId is not UTF-8"},
            )
    assert call(base, "GET", "nope", bob, icat)[0] == 404
    status, body = call(base, "GET", "submit", bob, icat)
    assert (status, body["code"]) == (405, "ParameterException")
    wait_status(base, bob, icat, job, {"Completed"})
    assert call(base, "DELETE", f"delete/{job}", bob, icat)[0] == 204
