"""The demo job types that use ijpweb.jobscript run end to end on the embedded default:
planned as the portal plans them, run by the local backend, talking ICAT REST and IDS
(python-icat's IDSClient) to a live portal."""

import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from ijpweb import planning
from ijpweb.batch import JobSpec
from ijpweb.batch.local import LocalBackend
from ijpweb.catalog.embedded import EmbeddedCatalog
from ijpweb.catalog.icatdb import TABLES as T
from ijpweb.jobtypes import JobTypes
from ijpweb.states import JobStatus

pytestmark = pytest.mark.once  # runs against the live server's own database
ROOT = Path(__file__).resolve().parents[2]
CAT = JobTypes(ROOT / "jobtypes").current()


@pytest.fixture
def run_job(live_server, tmp_path):
    url, engine = live_server
    with Session(engine) as db, db.begin():
        sid = EmbeddedCatalog(db).login("db", {"username": "alice", "password": "alice-demo"}).session_id
    backend = LocalBackend(
        "local",
        tmp_path / "jobs",
        path=[str(ROOT / "jobtypes" / "scripts"), str(Path(sys.executable).parent)],
    )
    counter = iter(range(1, 1000))

    def run(name, datasets=(), datafiles=(), values=None, mode=None):
        jt = CAT.get(name)
        sel = planning.Selection(
            tuple(planning.DatasetInfo(i, "confocal") for i in datasets), tuple(datafiles)
        )
        (job,) = planning.plan(jt, sel, values or {}, mode=mode, icat_url=url, ids_url=url).jobs
        job_id = str(
            backend.submit(
                JobSpec(
                    next(counter),
                    "db/alice",
                    jt.executable,
                    job.args,
                    {planning.SESSION_ENV: sid},
                    network=jt.session_id,  # as the portal hands it over (batch.submitter.job_spec)
                )
            )
        )
        deadline = time.monotonic() + 60
        while (state := backend.states([job_id])[job_id]).status.live:
            assert time.monotonic() < deadline, "the job did not finish"
            time.sleep(0.1)
        return state, backend.read(job_id, "stdout").decode(), backend.read(job_id, "stderr").decode()

    return run, engine


def datasets_of(engine, investigation):
    ds, inv = T["Dataset"], T["Investigation"]
    with engine.connect() as c:
        return (
            c.execute(
                sa.select(ds.c.id)
                .join(inv, ds.c.investigation_id == inv.c.id)
                .where(inv.c.name == investigation)
                .order_by(ds.c.id)
            )
            .scalars()
            .all()
        )


def test_create_copy_and_list(run_job):
    run, engine = run_job
    first, second = datasets_of(engine, "LMF-2026-001")[:2]

    state, out, err = run(
        "Create datafile", [first], values={"File name": "hello.txt", "Contents": "hello 'world' $HOME\n"}
    )
    assert state.status == JobStatus.COMPLETED, err
    assert "created datafile" in out
    df = T["Datafile"]
    with engine.connect() as c:
        created = (
            c.execute(sa.select(df).where(df.c.dataset_id == first, df.c.name == "hello.txt"))
            .mappings()
            .one()
        )
    assert created["fileSize"] == len(b"hello 'world' $HOME\n") and created["createId"] == "db/alice"

    state, out, err = run("Copy datafile", [second], [created["id"]])
    assert state.status == JobStatus.COMPLETED, err
    with engine.connect() as c:
        copy = (
            c.execute(sa.select(df).where(df.c.dataset_id == second, df.c.name == "hello.txt"))
            .mappings()
            .one()
        )
    assert copy["checksum"] == created["checksum"]

    state, out, err = run("Dataset lister", [first, second], mode="single")
    assert state.status == JobStatus.COMPLETED, out + err
    assert "hello.txt" in out and "all datafiles agree with the catalog" in out
    assert out.count("crc32") >= 10


def test_scripts_fail_clearly_on_wrong_inputs(run_job):
    run, engine = run_job
    (theirs,) = datasets_of(engine, "LMF-2026-003")[:1]
    state, out, err = run("Create datafile", [theirs], values={"File name": "x.txt", "Contents": "x"})
    assert state.status == JobStatus.FAILED
    assert "InsufficientPrivileges" in err or "may not" in err
