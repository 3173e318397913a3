"""How the SLURM backend reads an interactive job's end (issue 14): SLURM's state (as squeue
and sacct give it) and the session's records in the job's directory, written as the
supervisor and the portal write them. Without a cluster: the backend's directories only
(the real cluster's runs are tests/integration/test_desktop_slurm.py)."""

import json
import os
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ijpweb.batch import BatchState, JobSpec
from ijpweb.batch.sandbox import Sandbox
from ijpweb.batch.slurm import REASONS, TIMEOUT_REASON, SlurmBackend, sbatch_time
from ijpweb.states import JobStatus

STARTED = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


@pytest.fixture
def backend(tmp_path):
    return SlurmBackend("cluster", tmp_path / "jobs", sandbox=Sandbox(kind="none"))


def session(backend, slurm_id: str, job_id: int, *, interactive=True) -> os.PathLike:
    """A job directory as prepare() leaves it, linked as sbatch's answer is."""
    d = backend.root / str(job_id)
    (d / "desktop").mkdir(parents=True)
    if interactive:
        (d / "desktop.secret").write_text(json.dumps({"password": "abcdEF12"}))
    os.symlink(f"../{job_id}", backend.root / "by-slurm-id" / slurm_id)
    return d


def record(d, name, **content):
    (d / "desktop" / name).write_text(json.dumps(content))


def test_slurms_ends_of_a_session(backend):
    d = session(backend, "101", 1)
    ended = BatchState(JobStatus.FAILED, 0, REASONS["TIMEOUT"], STARTED, STARTED)
    # SLURM's time limit, whatever the supervisor saw (SIGTERM): the session's end
    record(d, "ended.json", reason="ended by a signal (SIGTERM)", at=STARTED.isoformat())
    assert backend._session("101", ended, "") == BatchState(
        JobStatus.COMPLETED, None, TIMEOUT_REASON, STARTED, STARTED
    )
    # SLURM ending it otherwise stays a failure, in SLURM's words
    for why in ("preempted", "out of memory", "node failure"):
        failed = BatchState(JobStatus.FAILED, None, why, STARTED)
        assert backend._session("101", failed, "") == failed
    # scancel after End session: CANCELLED to SLURM, COMPLETED with the portal's reason
    cancelled = BatchState(JobStatus.CANCELLED, None, "cancelled", STARTED)
    assert backend._session("101", cancelled, "") == cancelled  # a real cancel
    (d / "end.json").write_text(json.dumps({"reason": "no viewer for 30 minutes"}))
    assert backend._session("101", cancelled, "").reason == "no viewer for 30 minutes"
    assert backend._session("101", cancelled, "").status == JobStatus.COMPLETED


def test_a_desktop_that_did_not_start_and_a_program_that_exited(backend):
    d = session(backend, "102", 2)
    record(d, "ended.json", failed="the VNC server did not answer within 60 s: gone", at=STARTED.isoformat())
    state = backend._session("102", BatchState(JobStatus.FAILED, 3, "exit code 3", STARTED), "")
    assert (state.status, state.reason) == (JobStatus.FAILED, "the desktop did not start: the VNC server did "
                                                               "not answer within 60 s: gone")  # fmt: skip
    d = session(backend, "103", 3)
    record(d, "ended.json", reason="the program exited (exit code 0)", at=STARTED.isoformat())
    state = backend._session("103", BatchState(JobStatus.COMPLETED, 0, None, STARTED), "")
    assert (state.status, state.reason) == (JobStatus.COMPLETED, "the program exited (exit code 0)")


def test_a_running_session_has_its_desktop_and_slurms_end(backend):
    d = session(backend, "104", 4)
    running = BatchState(JobStatus.RUNNING, started_at=STARTED)
    assert backend._session("104", running, "2026-11-30T13:00:00").desktop is None  # not ready yet
    record(d, "state.json", host="127.0.0.1", port=5901, ready_at=STARTED.isoformat(),
           ends_at="2026-11-30T12:03:00+00:00")  # fmt: skip
    info = backend._session("104", running, datetime(2026, 11, 30, 13, 0).isoformat()).desktop
    assert (info.host, info.port) == ("127.0.0.1", 5901)
    assert info.ends_at == datetime(2026, 11, 30, 13, 0).astimezone(UTC)  # SLURM's, not the backstop's
    # what the job wrote is not trusted: another host is no desktop, and says why
    record(d, "state.json", host="10.0.0.1", port=5902)
    state = backend._session("104", running, "")
    assert state.desktop is None and "state.json's host is not 127.0.0.1" in state.reason
    (d / "desktop" / "state.json").unlink()
    os.symlink("/etc/passwd", d / "desktop" / "state.json")
    assert backend._session("104", running, "").desktop is None


@pytest.mark.parametrize("bind", ["node.cluster.example", "0.0.0.0"])  # noqa: S104
def test_with_a_host_name_bind_the_desktop_is_on_the_node_slurm_names(tmp_path, bind, caplog):
    """carol's F5: a host name (each node resolves it to its own cluster address) or 0.0.0.0
    as desktop_bind. The portal, not the job's state.json, says where the proxy connects:
    the node squeue names for the job (%N), resolved on the portal's host ('localhost' here:
    127.0.0.1); its name (what a supervisor bound to 0.0.0.0 records) means that address.
    Another host, the portal host's loopback for another node, a host list: no desktop
    (with 0.0.0.0 the server is on every address: the node's own, whatever host it names)."""
    b = SlurmBackend("cluster", tmp_path / "jobs", sandbox=Sandbox(kind="none"), desktop_bind=bind)
    d = session(b, "107", 7)
    on = {node: BatchState(JobStatus.RUNNING, started_at=STARTED, nodes=1, hosts=node)
          for node in ("localhost", "node-9.invalid", "localhost,node2")}  # fmt: skip
    ok = {"port": 5901, "ready_at": STARTED.isoformat()}
    for host in ("127.0.0.1", "localhost", "LOCALHOST"):
        record(d, "state.json", host=host, **ok)
        info = b._session("107", on["localhost"], "").desktop
        assert (info.host, info.port) == ("127.0.0.1", 5901)
    for host in ("192.0.2.10", "db.internal.example", "node-9.invalid", "127.0.0.2"):
        record(d, "state.json", host=host, **ok)
        state = b._session("107", on["localhost"], "")
        if bind == "0.0.0.0":  # noqa: S104 (listening everywhere: the node's address, whatever it says)
            assert (state.desktop.host, state.desktop.port) == ("127.0.0.1", 5901)
        else:
            assert state.desktop is None and "state.json's host is not 127.0.0.1, localhost" in state.reason
    # the same record from a job SLURM runs on another node: that node's address, not ours
    record(d, "state.json", host="127.0.0.1", **ok)
    for node in ("node-9.invalid", "localhost,node2"):  # does not resolve; not one node
        state = b._session("107", on[node], "")
        assert state.desktop is None and "no address known" in state.reason
    # resolved once per states() call, whatever the number of sessions on the node
    resolved: dict = {}
    b._session("107", on["localhost"], "", resolved)
    assert resolved == {"localhost": frozenset({"127.0.0.1"})}
    assert "abcdEF12" not in caplog.text


def test_interactive_jobs_ask_sbatch_for_their_session_time(backend):
    spec = JobSpec(5, "db/bob", "/bin/true", (), interactive=True, resources={"time": "0:05:00", "cpus": "2"},
                   desktop={"time_limit": 5400, "geometry": "800x600", "ready_timeout": 30})  # fmt: skip
    assert backend._options(spec) == ["--time=0-01:30:00", "--cpus-per-task=2"]
    batch = JobSpec(6, "db/bob", "/bin/true", (), resources={"time": "0:05:00"})
    assert backend._options(batch) == ["--time=0:05:00"]
    # a batch job's directory is no session to end, and has no password
    session(backend, "106", 6, interactive=False)
    assert "is a batch job" in str(backend.end_sessions(["106"], "ended by the user")["106"])
    with pytest.raises(Exception, match="has no desktop"):
        backend.desktop_password("106")


@given(st.integers(0, 400 * 86400))
def test_sbatch_time_is_never_shorter_than_the_session_and_under_a_minute_longer(seconds):
    text = sbatch_time(seconds)
    days, _, clock = text.partition("-")
    h, m, s = (int(x) for x in clock.split(":"))
    total = int(days) * 86400 + h * 3600 + m * 60 + s
    assert s == 0 and 0 <= h < 24 and 0 <= m < 60
    assert total >= max(60, seconds) and total - max(60, seconds) < 60
