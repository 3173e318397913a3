"""Issue 14, point 6: interactive jobs on the real single-node SLURM cluster
(bin/slurm-test-cluster). A session starts under sbatch with its time limit as --time, in
the job's sandbox on the node; its desktop/state.json on the shared job directory says
where its VNC server listens, which answers RFB 3.8 with VNC authentication and takes the
job's password; End session (end.json, one scancel) ends it COMPLETED with the reason and
nothing of it left; SLURM's TIMEOUT is the session's end, COMPLETED; a VNC server that
cannot listen fails the job with the reason; max_interactive refuses, naming the setting;
interactive jobs are never put in an array; and a job that rewrites its state.json cannot
send the portal's proxy elsewhere."""

import os
import re
import sys
from pathlib import Path

import pytest

from ijpweb.batch import BatchError, JobSpec
from ijpweb.batch.runner import BWRAP
from ijpweb.batch.slurm import SESSION_GRACE, TIMEOUT_REASON, SlurmBackend, launcher_text, sbatch_time
from ijpweb.states import JobStatus

from .test_desktop_local import (
    BOB_SESSION,
    ENDED,
    MISSING,
    SHOWS,
    desktop_job,
    ended,
    gone,
    names_of,
    processes,
    ready,
    rfb,
    session_processes,
    wait,
)

pytestmark = [
    pytest.mark.once,  # the cluster is the system under test, not the database
    pytest.mark.skipif(
        bool(MISSING),
        reason=f"not installed: {', '.join(MISSING)} (Debian: apt-get install xvfb x11vnc x11-utils)",
    ),
    pytest.mark.skipif(
        not os.access(BWRAP, os.X_OK),
        reason=f"bubblewrap is not installed ({BWRAP}): apt-get install bubblewrap",
    ),
]
_ids = iter(range(40_000, 50_000))


def make_backend(slurm_cluster, root: Path, **kw) -> SlurmBackend:
    return SlurmBackend(
        "slurm", root, slurm_conf=slurm_cluster, path=[str(Path(sys.executable).parent)], **kw
    )


@pytest.fixture
def slurm(slurm_cluster, tmp_path):
    backend = make_backend(slurm_cluster, tmp_path / "jobs")
    yield backend
    # whatever a failed test left: cancelled (scancel of ended jobs is no error)
    ids = [p.name for p in (backend.root / "by-slurm-id").iterdir()]
    if ids:
        backend.cancel_many(ids)


def job(script=SHOWS, **desktop) -> JobSpec:
    return desktop_job(next(_ids), script, **desktop)


def slurm_field(backend, slurm_id, field):
    text = backend._run(["scontrol", "show", "job", slurm_id])
    return re.search(rf"\b{field}=(\S+)", text).group(1)


def completion_log_state(backend, slurm_id):
    text = backend._run(["sacct", "-c", "-n", "-P", "-o", "JobID,State", "-j", slurm_id], ok_codes=(0, 1))
    return dict(line.split("|", 1) for line in text.splitlines() if "|" in line).get(slurm_id)


def test_the_launcher_finds_the_supervisor_from_slurms_spooled_copy():
    text = launcher_text("/usr/bin/python3")
    compile(text, "slurm_script", "exec")
    assert text.startswith("#!/usr/bin/python3 -IS\n")
    installed = Path(__file__).resolve().parents[2] / "ijpweb" / "batch" / "session.py"
    assert f"SESSION_SCRIPT = {str(installed)!r}" in text
    assert text.index("SESSION_SCRIPT = '") < text.index('if __name__ == "__main__":')
    assert [sbatch_time(s) for s in (1, 60, 61, 3600, 8 * 3600, 86400 + 59)] == [
        "0-00:01:00", "0-00:01:00", "0-00:02:00", "0-01:00:00", "0-08:00:00", "1-00:01:00",
    ]  # fmt: skip


def test_a_session_runs_under_sbatch_answers_vnc_and_ends_with_nothing_left(slurm):
    spec = job(time_limit=600)
    slurm_id = slurm.submit(spec)
    assert slurm_id.isdigit()
    d = slurm.root / str(spec.job_id)
    # the session's time limit is SLURM's; the supervisor's own is a later backstop
    assert slurm_field(slurm, slurm_id, "TimeLimit") == "00:10:00"
    state = ready(slurm, slurm_id)
    info = state.desktop
    assert info.host == "127.0.0.1" and 0 < info.port < 65536
    assert state.started_at is not None and state.hosts == "localhost"
    # its end is SLURM's (start + TimeLimit), not the supervisor's backstop
    assert abs((info.ends_at - state.started_at).total_seconds() - 600) <= 2
    assert (d / "spec.json").read_text().count(f'"time_limit": {600 + SESSION_GRACE}') == 1

    opening = rfb(info.host, info.port)
    assert opening["banner"] == b"RFB 003.008\n" and opening["types"] == [2]  # VNC authentication only
    password = slurm.desktop_password(slurm_id)
    assert len(password) == 8 and password.isalnum()
    assert rfb(info.host, info.port, password) == {"banner": b"RFB 003.008\n", "types": [2], "result": 0,
                                                   "size": (800, 600)}  # fmt: skip
    wrong = ("y" if password[0] == "x" else "x") + password[1:]
    assert rfb(info.host, info.port, wrong)["result"] != 0
    wait(slurm, slurm_id, lambda s: b"display-ok" in slurm.read(slurm_id, "stdout"))

    # neither the password nor the catalog session in any process's argv
    assert all(password.encode() not in argv and BOB_SESSION.encode() not in argv
               for _, argv, _, _ in processes().values())  # fmt: skip
    members = session_processes(d, str(spec.job_id))
    assert {os.path.basename(n) for n in names_of(members)} >= {b"Xvfb", b"x11vnc", b"sleep"}, names_of(
        members
    )

    # End session: end.json, one scancel; COMPLETED with the reason (not CANCELLED)
    assert slurm.end_sessions([slurm_id], "ended by the user") == {slurm_id: None}
    state = ended(slurm, slurm_id)
    assert (state.status, state.reason, state.desktop) == (JobStatus.COMPLETED, "ended by the user", None)
    assert completion_log_state(slurm, slurm_id).startswith("CANCELLED")  # as SLURM saw it
    assert gone(members, timeout=20) == {}
    assert session_processes(d, str(spec.job_id)) == {}
    with pytest.raises(ConnectionRefusedError):
        __import__("socket").create_connection((info.host, info.port), timeout=5)
    # a second End session, or one of a job that is gone, is no error; a batch job has none
    assert slurm.end_sessions([slurm_id], "ended by the user") == {slurm_id: None}
    batch = slurm.submit(JobSpec(next(_ids), "db/bob", "/bin/true", ()))
    refused = slurm.end_sessions([batch, "999999"], "ended by the user")
    assert "is a batch job" in str(refused[batch]) and "not one of this portal's" in str(refused["999999"])


def test_slurms_time_limit_ends_the_session_completed(slurm):
    """--time=1 (a minute): SLURM ends the job (TIMEOUT, its completion log says so) before
    the supervisor's own limit, and the portal reports the session's end, COMPLETED."""
    spec = job(time_limit=60)
    slurm_id = slurm.submit(spec)
    assert slurm_field(slurm, slurm_id, "TimeLimit") == "00:01:00"
    state = ready(slurm, slurm_id)
    members = session_processes(slurm.root / str(spec.job_id), str(spec.job_id))
    assert abs((state.desktop.ends_at - state.started_at).total_seconds() - 60) <= 2
    state = ended(slurm, slurm_id, timeout=60 + SESSION_GRACE)
    assert (state.status, state.reason, state.exit_code) == (JobStatus.COMPLETED, TIMEOUT_REASON, None)
    assert completion_log_state(slurm, slurm_id) == "TIMEOUT"
    assert gone(members, timeout=20) == {}


def test_a_vnc_server_that_cannot_listen_fails_the_job_with_the_reason(slurm_cluster, tmp_path):
    b = make_backend(slurm_cluster, tmp_path / "jobs", desktop_bind="192.0.2.1")  # TEST-NET-1: not ours
    slurm_id = b.submit(job(ready_timeout=20))
    state = ended(b, slurm_id, timeout=60)
    assert state.status == JobStatus.FAILED
    assert state.reason.startswith("the desktop did not start: the VNC server cannot listen on 192.0.2.1: ")


def test_a_host_name_as_desktop_bind_is_each_nodes_own_address(slurm_cluster, tmp_path):
    """production.ini's way for a real cluster: desktop_bind a host name that each node
    resolves to its own cluster address; the session binds what it resolves to on the
    node and records that address, where its VNC server answers. (Here the one node's name.)"""
    import socket

    name = socket.gethostname()
    try:
        address = socket.getaddrinfo(name, 0, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    except OSError:
        pytest.skip(f"this host's name {name!r} does not resolve to an IPv4 address")
    b = make_backend(slurm_cluster, tmp_path / "jobs", desktop_bind=name)
    slurm_id = b.submit(job())
    try:
        info = ready(b, slurm_id).desktop
        assert info.host == address
        assert rfb(info.host, info.port, b.desktop_password(slurm_id))["result"] == 0
    finally:
        b.end_sessions([slurm_id], "ended by the user")
    assert ended(b, slurm_id).reason == "ended by the user"


def test_carols_session_pointed_at_bobs_vnc_server_gets_nothing(slurm):
    """Carol's program rewrites her state.json with the port of bob's VNC server (same node,
    same address: the backend accepts it). The proxy would answer bob's server with carol's
    password: refused, every time; bob's own still opens his desktop afterwards."""
    bobs = slurm.submit(job())
    bob = ready(slurm, bobs).desktop
    forge = (
        'f="${JOB_OUTPUT_DIR%/output}/desktop/state.json"; '
        'while [ ! -e "$f" ]; do sleep 0.2; done; '
        f'printf \'{{"host": "127.0.0.1", "port": {bob.port}}}\' > "$f.x" && mv -f "$f.x" "$f" && echo forged; '
        "exec sleep 600"
    )
    carols = slurm.submit(desktop_job(next(_ids), forge, owner="db/carol", session="carol-session-1"))
    wait(slurm, carols, lambda s: b"forged" in slurm.read(carols, "stdout"))
    pointed = slurm.states([carols])[carols].desktop
    assert (pointed.host, pointed.port) == (bob.host, bob.port)
    carol_password = slurm.desktop_password(carols)
    assert carol_password != slurm.desktop_password(bobs)
    for _ in range(6):  # as often as she opens her desktop
        assert rfb(pointed.host, pointed.port, carol_password)["result"] != 0
    assert rfb(bob.host, bob.port, slurm.desktop_password(bobs))["result"] == 0  # bob is not locked out
    assert slurm.end_sessions([bobs, carols], "ended by the user") == {bobs: None, carols: None}


def test_max_interactive_refuses_naming_the_setting_and_never_makes_arrays(slurm_cluster, tmp_path):
    # held: they stay pending, live as far as SLURM is concerned, and start nothing
    b = make_backend(slurm_cluster, tmp_path / "jobs", max_interactive=1, sbatch_options=["--hold"])
    first = job()
    taken = b.submit(first)
    second, third = job(), job()
    with pytest.raises(
        BatchError,
        match=r"runs at most 1 desktop session at once \(ijp\.batch\.slurm\.max_interactive\); end one",
    ):  # noqa: E501
        b.submit(second)
    assert not (b.root / str(second.job_id)).exists()  # nothing prepared, no session written
    with pytest.raises(BatchError, match="max_interactive"):
        b.submit_many([second, third])
    # batch jobs are not counted, and still go
    plain = b.submit_many([JobSpec(next(_ids), "db/bob", "/bin/true", ()) for _ in range(2)])
    assert all("_" in i for i in plain.values())  # (an array)
    # a real cancel stays CANCELLED and frees the place
    b.cancel(taken)
    assert wait(b, taken, lambda s: s.status in ENDED).status == JobStatus.CANCELLED
    got = b.submit_many([second, third])  # one each, never an array; the second refused
    assert list(got) == [second.job_id] and "_" not in got[second.job_id]
    assert not (b.root / str(third.job_id)).exists()
    # a restarted portal that lost the submission's answer finds it, and still counts it
    again = make_backend(slurm_cluster, b.root, max_interactive=1, sbatch_options=["--hold"])
    (again.desktops / got[second.job_id]).unlink()
    assert again.find([second.job_id]) == got
    with pytest.raises(BatchError, match="max_interactive"):
        again.submit(third)
    b.cancel_many([got[second.job_id], *plain.values()])


def test_a_job_cannot_send_the_proxy_elsewhere(slurm):
    """The program (the job's user, inside the session) rewrites desktop/state.json to point
    at another host: the portal takes no desktop from it and says why."""
    forge = (
        'f="${JOB_OUTPUT_DIR%/output}/desktop/state.json"; '
        'while [ ! -e "$f" ]; do sleep 0.2; done; '
        'printf \'{"host": "10.9.8.7", "port": 5902}\' > "$f.x" && mv -f "$f.x" "$f" && echo forged; '
        "exec sleep 600"
    )
    slurm_id = slurm.submit(job(forge))
    wait(slurm, slurm_id, lambda s: b"forged" in slurm.read(slurm_id, "stdout"))
    state = slurm.states([slurm_id])[slurm_id]
    assert state.status == JobStatus.RUNNING and state.desktop is None
    assert "state.json's host is not 127.0.0.1" in state.reason
    assert slurm.end_sessions([slurm_id], "ended by the user") == {slurm_id: None}
    assert ended(slurm, slurm_id).reason == "ended by the user"


FORGE_HOST = (
    'f="${JOB_OUTPUT_DIR%/output}/desktop/state.json"; '
    'while [ ! -e "$f" ]; do sleep 0.2; done; '
    'printf \'{"host": "10.9.8.7", "port": %d}\' "$(sed \'s/.*"port": *\\([0-9]*\\).*/\\1/\' "$f")" > "$f.x" '
    '&& mv -f "$f.x" "$f" && echo forged; exec sleep 600'
)


def test_with_a_host_name_bind_the_desktop_is_where_slurm_runs_the_job(slurm_cluster, tmp_path):
    """carol's F5 on the cluster: desktop_bind a host name (production.ini's way). The portal
    takes the host from the node squeue names for the job ('localhost' here, 127.0.0.1),
    never the job's: a session that rewrites its state.json with another host (its own
    port kept) gets no desktop, and the backend says why."""
    import socket

    name = socket.gethostname()
    if "127.0.0.1" not in {i[4][0] for i in socket.getaddrinfo(name, 0, socket.AF_INET, socket.SOCK_STREAM)}:
        pytest.skip(f"this host's name {name!r} is not the test node's address (127.0.0.1)")
    b = make_backend(slurm_cluster, tmp_path / "jobs", desktop_bind=name)
    honest, forged = b.submit(job()), b.submit(job(FORGE_HOST))
    try:
        assert ready(b, honest).desktop.host == "127.0.0.1"
        wait(b, forged, lambda s: b"forged" in b.read(forged, "stdout"))
        state = b.states([forged])[forged]
        assert state.status == JobStatus.RUNNING and state.desktop is None
        assert "state.json's host is not 127.0.0.1, localhost" in state.reason
    finally:
        assert b.end_sessions([honest, forged], "ended by the user") == {honest: None, forged: None}


def test_a_session_on_every_address_is_reached_at_its_nodes(slurm_cluster, tmp_path):
    """desktop_bind 0.0.0.0: the VNC server listens on every address of its node; the portal
    connects to the node's address (squeue's node, resolved here), whatever host the job's
    record names (the supervisor's records the node's host name; a forged one the same)."""
    b = make_backend(slurm_cluster, tmp_path / "jobs", desktop_bind="0.0.0.0")  # noqa: S104
    slurm_id = b.submit(job(FORGE_HOST))
    try:
        wait(b, slurm_id, lambda s: b"forged" in b.read(slurm_id, "stdout"))
        info = b.states([slurm_id])[slurm_id].desktop
        assert info.host == "127.0.0.1"
        assert rfb(info.host, info.port, b.desktop_password(slurm_id))["result"] == 0
    finally:
        b.end_sessions([slurm_id], "ended by the user")
    assert ended(b, slurm_id).reason == "ended by the user"


def test_a_session_ended_as_failed_is_failed_with_the_portals_reason(slurm):
    """The portal's backstop for a desktop that never became ready (helper W2): end.json
    says failed, scancel; SLURM says CANCELLED, the portal FAILED with its reason."""
    spec = job()
    slurm_id = slurm.submit(spec)
    ready(slurm, slurm_id)
    members = session_processes(slurm.root / str(spec.job_id), str(spec.job_id))
    why = "the desktop did not start within 60 s"
    assert slurm.end_sessions([slurm_id], why, failed=True) == {slurm_id: None}
    state = ended(slurm, slurm_id)
    assert (state.status, state.reason) == (JobStatus.FAILED, why)
    assert gone(members, timeout=30) == {}
    # End session afterwards changes nothing; a normal end stays Completed
    slurm.end_sessions([slurm_id], "ended by the user")
    assert slurm.states([slurm_id])[slurm_id].reason == why
    other = slurm.submit(job())
    ready(slurm, other)
    slurm.end_sessions([other], "ended by the user")
    assert (ended(slurm, other).status, ended(slurm, other).reason) == (
        JobStatus.COMPLETED,
        "ended by the user",
    )


def test_the_portals_proxy_opens_a_slurm_desktop(slurm_cluster, tmp_path):
    """The whole chain with SLURM as the portal's only backend: bob's Terminal submitted
    through /api/v1 runs under sbatch, the harvest makes its desktop ready, the embedded
    proxy reaches the node's VNC server and answers its password itself (the browser is
    offered None), and End session through the API ends it COMPLETED, nothing left."""
    import logging

    import sqlalchemy as sa
    from sqlalchemy.orm import Session

    from ijpweb import main
    from ijpweb.models import Job, get_engine

    from ..conftest import ROOT, free_port, load_demo, migrate, portal_settings, serving
    from ..functional.test_demo_jobs import datasets_of
    from ..functional.test_desktop_proxy import (
        Recorded,
        Site,
        api,
        browser,
        open_desktop,
        wait_for,
        ws_connect,
    )
    from ..vnc import Viewer

    if __import__("shutil").which("xterm") is None:
        pytest.skip("xterm is not installed (apt-get install xterm xfonts-base)")
    port = free_port()
    settings = portal_settings(
        str(ROOT / "testing.ini"), tmp_path, f"sqlite:///{tmp_path / 'portal.sqlite'}",
        **{"ijp.scheduler.enabled": "true", "ijp.harvest.seconds": "0.3", "ijp.desktop.proxy": "embedded",
           "ijp.desktop.listen": f"127.0.0.1:{port}", "ijp.desktop.public_port": str(port),
           "ijp.batch.backends": "cluster", "ijp.batch.cluster.type": "slurm",
           "ijp.batch.cluster.dir": str(tmp_path / "cluster-jobs"), "ijp.batch.cluster.slurm_conf": slurm_cluster,
           "ijp.batch.cluster.path": f"{ROOT / 'jobtypes' / 'scripts'} {Path(sys.executable).parent}",
           "ijp.batch.cluster.job_prefix": f"ijp{os.getpid()}", "ijp.batch.cluster.max_interactive": "2"},
    )  # fmt: skip
    engine = get_engine(settings)
    migrate(engine)
    load_demo(engine, settings["ijp.filestore"])
    recorded = Recorded()
    logging.getLogger().addHandler(recorded)
    try:
        app = main({}, dbengine=engine, **settings)
        backend = app.registry["ijp.backends"]["cluster"]
        with serving(app) as url:
            site = Site(url, engine, app, port, recorded, settings)
            bob = api(site, "bob")
            body = {"job_type": "Terminal", "geometry": "800x600",
                    "datasets": datasets_of(engine, "LMF-2026-003")[:1]}  # fmt: skip
            res = bob.post(f"{url}/api/v1/submissions", json=body, timeout=30)
            assert res.status_code == 201, res.text
            job_id = res.json()["jobs"][0]["id"]

            def job():
                got = bob.get(f"{url}/api/v1/jobs/{job_id}", timeout=10).json()
                assert got["status"] not in ("Failed", "Cancelled"), got
                return got

            wait_for(lambda: job()["interactive"]["state"] == "ready", 120)
            with Session(engine) as db:
                slurm_id = db.get(Job, job_id).backend_job_id
            assert slurm_id.isdigit() and backend.states([slurm_id])[slurm_id].desktop is not None
            web, _ = browser(site, "bob")
            token = open_desktop(site, web, job_id)
            with ws_connect(site, job_id, token) as ws:
                viewer = Viewer(ws)
                assert viewer.open() == (800, 600)  # no password asked: the proxy gave it
                assert viewer.frame(800, 600) >= 1
            d = backend.root / str(job_id)
            members = session_processes(d, str(job_id))
            assert {os.path.basename(n) for n in names_of(members)} >= {b"Xvfb", b"x11vnc", b"xterm"}
            res = bob.post(f"{url}/api/v1/jobs/{job_id}/end", timeout=60)
            assert res.status_code < 300, res.text
            done = wait_for(lambda: (j := job())["status"] == "Completed" and j, 90)
            assert done["interactive"]["state"] == "ended"
            assert gone(members, timeout=20) == {}
            with Session(engine) as db:
                assert db.scalar(sa.select(Job.reason).where(Job.id == job_id)) == "ended by the user"
            app.registry["ijp.scheduler"].shutdown(wait=False)
            app.registry["ijp.desktop.proxy"].stop()
        log = recorded.text
        assert token not in log and backend.desktop_password(slurm_id) not in log
    finally:
        logging.getLogger().removeHandler(recorded)
        engine.dispose()
