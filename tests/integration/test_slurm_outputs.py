"""Issue 13, point 4 on SLURM (a real single-node cluster, bin/slurm-test-cluster): a
job's JOB_OUTPUT_DIR, JOB_WORK_DIR and JOB_OUTPUT_VARS are its directories on the shared
filesystem; one job writes an output file and a variable, and the portal shows both."""

import pytest

from ijpweb.batch import JobSpec
from ijpweb.models import Job, Submission
from ijpweb.states import JobStatus

from ..conftest import NO_SANDBOX, ROOT, make_testapp, portal_settings
from ..functional.test_flow import wait_for

pytestmark = pytest.mark.once


@pytest.fixture(scope="module")
def slurm_portal(app_settings, dbengine, slurm_cluster, tmp_path_factory):
    from ijpweb import main

    tmp = tmp_path_factory.mktemp("slurm-outputs")
    settings = portal_settings(str(ROOT / "testing.ini"), tmp, app_settings["sqlalchemy.url"], **{
        "ijp.batch.backends": "local cluster",
        "ijp.batch.cluster.type": "slurm",
        "ijp.batch.cluster.dir": str(tmp / "cluster"),
        "ijp.batch.cluster.slurm_conf": slurm_cluster,
        **({"ijp.batch.cluster.sandbox": "none"} if NO_SANDBOX else {}),
    })  # fmt: skip
    settings["ijp.batch.local.dir"] = app_settings["ijp.batch.local.dir"]
    app = main({}, dbengine=dbengine, **settings)
    yield app
    app.registry["ijp.scheduler"].shutdown(wait=False)


SCRIPT = r"""
set -e
echo "dirs $JOB_OUTPUT_DIR $JOB_WORK_DIR $JOB_OUTPUT_VARS"
printf 'x,y\n1,2\n2,4\n3,9\n' > "$JOB_OUTPUT_DIR/squares.csv"
echo "OUT_NODE_SAYS=<i>hello</i> from $(hostname)" > "$JOB_OUTPUT_VARS"
"""


def test_a_slurm_job_leaves_an_output_and_a_variable(slurm_portal, tm, dbsession):
    backends = slurm_portal.registry["ijp.backends"]
    sub = Submission(owner="db/carol", job_type="Date", mode="single")
    job = Job(
        submission=sub, owner="db/carol", job_type="Date", argv=[], backend="cluster", status=JobStatus.QUEUED
    )
    dbsession.add(job)
    dbsession.flush()
    job.backend_job_id = backends["cluster"].submit(JobSpec(job.id, "db/carol", "/bin/sh", ("-c", SCRIPT)))
    dbsession.flush()
    (job,) = wait_for(dbsession, backends, [job.id], timeout=120)
    assert job.status == JobStatus.COMPLETED, job.reason
    jobdir = backends["cluster"].root / str(job.id)
    said = backends["cluster"].read(job.backend_job_id, "stdout").decode()
    assert said.split() == [
        "dirs",
        str(jobdir / "output"),
        str(jobdir / "work"),
        str(jobdir / "work" / "output-vars"),
    ]

    carol = make_testapp(slurm_portal, tm, dbsession)
    carol.login("carol")
    page = carol.get(f"/jobs/{job.id}")
    assert [a.get_text() for a in page.html.select("table.outputs tbody td:first-child a")] == ["squares.csv"]
    (row,) = page.html.select("table.vars tbody tr")
    assert row.th.get_text() == "OUT_NODE_SAYS" and row.td.get_text().startswith("<i>hello</i> from ")
    assert "<i>hello" not in page.text
    assert carol.get(f"/jobs/{job.id}/file", {"name": "squares.csv"}).body == b"x,y\n1,2\n2,4\n3,9\n"
    assert carol.get(f"/api/v1/jobs/{job.id}").json["output_vars"]["OUT_NODE_SAYS"].startswith("<i>hello</i>")
    bob = make_testapp(slurm_portal, tm, dbsession)
    bob.login("bob")
    bob.get(f"/jobs/{job.id}/file", {"name": "squares.csv"}, status=404)
