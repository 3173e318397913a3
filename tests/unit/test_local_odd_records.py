"""A job's records that are not as its launcher writes them blind the local backend to
nothing but that job (issue 12, carol's finding), with real launchers, sandboxes and
processes.

A job's program controls its own exit status, and inside the sandbox bwrap reports the
program's status as its own: the launcher reads any status 128 + n (n a valid signal)
as "killed by signal n". Real-time signals (35..63) have no member in Python's
``signal.Signals``, whose lookup raised ValueError for the whole batch of ids a harvest
asks about: every live job of the backend turned Unknown, bob's too, on every cycle, and
carol's job could not be deleted. An unsandboxed job (``sandbox = none``) can write its
records itself: whatever they hold, the answer for one job is that job's own.
"""

import json
import os
import signal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ijpweb.batch import JobSpec
from ijpweb.batch.local import LocalBackend, signal_name
from ijpweb.batch.runner import launcher_alive, read_json, running
from ijpweb.batch.sandbox import Sandbox
from ijpweb.states import JobStatus

from .test_local_backend import _processes, _until, wait

GATED = "while [ ! -e gate ]; do sleep 0.05; done"
ENDED = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)


def job(job_id, owner, script):
    return JobSpec(job_id, owner, "/bin/sh", ("-c", script), {})


def test_signal_names():
    assert signal_name(signal.SIGTERM) == "SIGTERM"
    assert signal_name(signal.SIGRTMIN + 6) == "SIGRTMIN+6"
    assert signal_name(signal.SIGRTMAX) == "SIGRTMAX"
    assert signal_name(32) == "signal 32"  # (glibc's own, below SIGRTMIN)
    assert signal_name(99) == "signal 99"


@pytest.mark.parametrize(
    "sandboxed, script",
    [
        (True, "exit 168"),  # 128 + 40: SIGRTMIN+6, a valid signal without a name in signal.Signals
        (True, "kill -40 $$"),  # killed by it, inside the sandbox (bwrap reports 128 + 40)
        (False, "kill -40 $$"),  # killed by it, unsandboxed (ijp.batch.local.sandbox = none)
    ],
)
def test_a_job_killed_by_a_real_time_signal_leaves_the_others_known(local, sandboxed, script):
    b = local(max_running=4, **({} if sandboxed else {"sandbox": Sandbox(kind="none")}))
    b.submit(job(1, "db/bob", GATED))
    b.submit(job(2, "db/carol", script))
    _until(lambda: (b.root / "2" / "exit.json").exists(), timeout=20)
    _until(
        lambda: (b.root / "1" / "started.json").exists(), timeout=20
    )  # (a busy machine may start it later)
    states = b.states(["1", "2"])
    assert states["1"].status == JobStatus.RUNNING
    assert (states["2"].status, states["2"].reason) == (JobStatus.FAILED, "killed by SIGRTMIN+6")
    b.delete("2")  # carol can clean up her own ended job
    assert not (b.root / "2").exists()
    (b.root / "1" / "work" / "gate").touch()
    assert wait(b, "1", {JobStatus.COMPLETED}).exit_code == 0


def test_the_harvest_keeps_bobs_job_running_when_carols_job_exits_168(local, tmp_path):
    """Through the harvest (ijpweb.batch.harvest on plain Job rows in a SQLite database of
    its own): bob's running job stays Running, carol's is Failed with the signal named."""
    import sqlalchemy as sa
    from sqlalchemy.orm import Session

    from ijpweb.batch.harvest import harvest
    from ijpweb.models import Job, Submission
    from ijpweb.models.meta import Base

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'h.sqlite'}")
    Base.metadata.create_all(engine)
    b = local(max_running=4)
    with Session(engine) as db, db.begin():
        rows = {}
        for owner in ("db/bob", "db/carol"):
            sub = Submission(owner=owner, job_type="Sleepcount", mode="each", executable="sh")
            rows[owner] = Job(submission=sub, owner=owner, job_type="Sleepcount", backend="local",
                              status=JobStatus.QUEUED)  # fmt: skip
        db.add_all(rows.values())
        db.flush()
        bob_id, carol_id = rows["db/bob"].id, rows["db/carol"].id
        rows["db/bob"].backend_job_id = b.submit(job(bob_id, "db/bob", GATED))
        rows["db/carol"].backend_job_id = b.submit(job(carol_id, "db/carol", "exit 168"))
    _until(lambda: (b.root / str(carol_id) / "exit.json").exists(), timeout=20)
    _until(lambda: (b.root / str(bob_id) / "started.json").exists(), timeout=20)
    for _ in range(2):  # and on the next cycle
        with Session(engine) as db, db.begin():
            harvest(db, {"local": b})
        with Session(engine) as db:
            got = {j.id: (j.status, j.exit_code, j.reason) for j in db.scalars(sa.select(Job))}
        assert got[bob_id] == (JobStatus.RUNNING, None, None)
        assert got[carol_id] == (JobStatus.FAILED, None, "killed by SIGRTMIN+6")
    (b.root / str(bob_id) / "work" / "gate").touch()


# records as an unsandboxed job (or a broken disk) might leave them: (file, content, status)
ODD = [
    ("exit.json", b"{not json", "exit.json is not JSON"),
    ("exit.json", b"[" * 60_000, "exit.json is not JSON"),  # (json: RecursionError)
    ("exit.json", b"[1, 2]", "exit.json is not a JSON object"),
    ("exit.json", b"null", "exit.json is not a JSON object"),
    ("exit.json", b" " * 70_000 + b"{}", "exit.json is larger than any record"),
    ("exit.json", b'{"code": null, "signal": 1000, "at": null}', "exit.json's signal is not one"),
    ("exit.json", b'{"code": null, "signal": -9, "at": null}', "exit.json's signal is not one"),
    ("exit.json", b'{"code": null, "signal": "SIGKILL"}', "exit.json's signal is not one"),
    ("exit.json", b'{"code": 99999999999999999999999, "signal": null}', "exit.json's code is not one"),
    ("exit.json", b'{"code": 3000000000, "signal": null}', "exit.json's code is not one"),  # > int32
    ("exit.json", b'{"code": "0", "signal": null}', "exit.json's code is not one"),
    ("exit.json", b'{"code": true, "signal": null}', "exit.json's code is not one"),
    ("exit.json", b'{"code": 0, "signal": null, "at": "yesterday"}', "exit.json's at is not a time"),
    ("exit.json", b'{"code": 0, "signal": null, "at": 5}', "exit.json's at is not a time"),
    ("started.json", b"{not json", "started.json is not JSON"),
    ("started.json", b'{"pid": "self", "pgid": 1, "began": null}', "started.json's pid, pgid or began"),
    ("started.json", b'{"pid": 1, "pgid": 0, "began": null}', "started.json's pid, pgid or began"),
    ("started.json", b'{"pid": 1, "pgid": 1, "began": 7}', "started.json's pid, pgid or began"),
    ("started.json", b'{"pid": 1, "pgid": 1, "cores": 1e300}', "started.json's cores is not one"),
    ("started.json", b'{"pid": 1, "pgid": 1, "cores": 4294967296}', "started.json's cores is not one"),
    ("started.json", b'{"pid": 1, "pgid": 1, "host": "' + b"h" * 2000 + b'"}', "started.json's host"),
    ("started.json", b'{"pid": 1, "pgid": 1, "at": "9999-99-99"}', "started.json's at is not a time"),
]


@pytest.mark.parametrize("file, content, why", ODD, ids=[f"{f}:{c[:30]!r}" for f, c, _ in ODD])
def test_one_jobs_odd_record_is_that_jobs_own_answer(local, file, content, why):
    """bob's job runs; carol's ended job has an odd record: states() answers for both,
    carol's with the reason (Failed: it ended; Unknown: it cannot be said), and carol's
    ended job can be deleted."""
    b = local(max_running=4)
    b.submit(job(1, "db/bob", GATED))
    b.submit(job(2, "db/carol", "true"))
    wait(b, "2", {JobStatus.COMPLETED})
    wait(b, "1", {JobStatus.RUNNING})  # (its launcher may start after carol's has ended, on a busy machine)
    (b.root / "2" / file).write_bytes(content)
    states = b.states(["1", "2"])
    assert states["1"].status == JobStatus.RUNNING
    carol = states["2"]
    assert carol.status in (JobStatus.FAILED, JobStatus.COMPLETED), carol
    if file == "exit.json":
        assert (carol.status, carol.exit_code) == (JobStatus.FAILED, None)
        assert carol.reason.startswith("it ended, but its end cannot be read: ") and why in carol.reason
    else:  # the end is known (exit.json); the start and the place are not
        assert (carol.status, carol.exit_code, carol.started_at, carol.hosts) == (
            JobStatus.COMPLETED,
            0,
            None,
            None,
        )
    b.delete("2")
    assert not (b.root / "2").exists()


def test_a_running_jobs_odd_start_record(local):
    """An unsandboxed job rewrites its own started.json while it runs: it is Unknown with
    the reason (not Running: that record is what it would be known by), it still holds its
    slot (its launcher, as ``launched`` names it, is alive), and a cancel still ends it."""
    b = local(max_running=1, sandbox=Sandbox(kind="none"))
    b.submit(job(1, "db/carol", 'echo \'{"pid": "self", "pgid": 0}\' > ../started.json; sleep 3051'))
    b.submit(job(2, "db/bob", "true"))
    _until(lambda: _processes("3051") and b"self" in (b.root / "1" / "started.json").read_bytes())
    state = b.states(["1", "2"])
    assert state["1"].status == JobStatus.UNKNOWN
    assert state["1"].reason == "its start cannot be read: started.json's pid, pgid or began is not one"
    assert state["2"].status == JobStatus.QUEUED  # max_running 1: carol's job still counts
    assert running(b.root / "1")
    b.cancel("1")
    assert _processes("3051") == []
    assert b.states(["1"])["1"].status == JobStatus.CANCELLED
    assert wait(b, "2", {JobStatus.COMPLETED}).exit_code == 0


def test_a_dead_launchers_odd_start_record(local):
    """A start record that is not one, its launcher gone without recording the end: Failed,
    saying so, and deletable (not Unknown for ever)."""
    b = local(max_running=1)
    b.submit(job(1, "db/carol", "true"))
    wait(b, "1", {JobStatus.COMPLETED})
    _until(lambda: not launcher_alive(b.root / "1"))  # (it starts what waits, then ends)
    (b.root / "1" / "exit.json").unlink()
    (b.root / "1" / "started.json").write_text("[]")
    state = b.states(["1"])["1"]
    assert state.status == JobStatus.FAILED
    assert state.reason == "the job's wrapper ended; started.json is not a JSON object"
    b.delete("1")


def test_the_launchers_reader_refuses_odd_records(tmp_path):
    """runner.read_json (what a launcher and a claim read): None for what is not a record."""
    f = tmp_path / "r.json"
    for content in (b"[" * 60_000, b" " * 70_000 + b"{}", b"{", b"\xff\xfe"):
        f.write_bytes(content)
        assert read_json(f) is None
    f.write_text('{"a": 1}')
    assert read_json(f) == {"a": 1}


records = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=8,
)
fields = st.fixed_dictionaries(
    {},
    optional={
        k: records | st.integers(-(2**70), 2**70) | st.sampled_from(["2026-11-30T13:00:00+00:00", "x"])
        for k in ("pid", "pgid", "began", "at", "host", "cores", "code", "signal")
    },  # fmt: skip
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(started=st.none() | fields | records, ended=st.none() | fields | records)
def test_any_record_gives_a_state_that_fits_the_database(tmp_path, started, ended):
    """Whatever JSON a job directory's started.json and exit.json hold (hypothesis), the
    backend answers with a state: an exit code a process can have, cores and hosts that
    fit their columns (a PostgreSQL integer, 1024 characters), a reason unless Completed
    or Running."""
    b = LocalBackend("local", tmp_path / "jobs", sandbox=Sandbox(kind="none"))
    d = b.root / "7"
    (d / "work").mkdir(parents=True, exist_ok=True)
    (d / "launched").write_text("1 0")  # (a launcher that is not this one: pid 1 began at boot)
    for name, value in (("started.json", started), ("exit.json", ended)):
        if value is None:
            (d / name).unlink(missing_ok=True)
        else:
            (d / name).write_text(json.dumps(value))
    state = b.states(["7"])["7"]
    assert state.exit_code is None or 0 <= state.exit_code <= 255
    assert state.cores is None or 0 < state.cores < 2**31
    assert state.hosts is None or len(state.hosts) <= 1024
    assert state.status in (JobStatus.COMPLETED, JobStatus.RUNNING) or state.reason
    assert state.started_at is None or state.started_at.tzinfo is not None
    assert state.finished_at is None or state.finished_at.tzinfo is not None
    assert running(d) in (True, False)  # what a claim asks of a running job's directory


@pytest.mark.parametrize("sandboxed", [True, False])
def test_a_descriptor_the_portal_inherited_never_reaches_a_job(local, sandboxed):
    """The portal's own parent may leave a descriptor open and inheritable (a pipe, a
    socket): the launcher passes it on, but the job gets 0-2 and nothing more."""
    b = local(max_running=1, **({} if sandboxed else {"sandbox": Sandbox(kind="none")}))
    r, w = os.pipe()
    os.set_inheritable(w, True)
    try:
        b.submit(job(1, "db/carol", "ls /proc/self/fd"))
        assert wait(b, "1", {JobStatus.COMPLETED}).exit_code == 0
    finally:
        os.close(r)
        os.close(w)
    # ls's own listing of its directory is the one more it shows (3)
    assert sorted(int(n) for n in b.read("1", "stdout").split()) == [0, 1, 2, 3]
