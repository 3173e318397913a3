"""``ijp jobs`` (issue 13, point 3): the list with the inputs by name, and the filtered list
as CSV or JSON streamed from /api/v1/jobs/export, run as a user runs it (the console script
in its own process) against the portal on a free port."""

from __future__ import annotations

import csv
import io
import json

import pytest
import sqlalchemy as sa

from ijpweb.models import Job, Submission
from ijpweb.states import JobStatus

from .test_cli import IJP, ijp  # noqa: F401 - the fixture

pytestmark = [
    pytest.mark.once,
    pytest.mark.skipif(IJP is None, reason="the ijp console script is not installed (pip install -e .)"),
]


@pytest.fixture
def carols_jobs(live_server):
    """1,205 ended jobs of carol's (more than one export page), named inputs, and one of bob's."""
    _url, engine = live_server
    with engine.begin() as c:
        sub = c.execute(sa.insert(Submission).values(owner="db/carol", job_type="Date", mode="each"))
        sub = sub.inserted_primary_key[0]
        bobs = c.execute(sa.insert(Submission).values(owner="db/bob", job_type="Date", mode="single"))
        bobs = bobs.inserted_primary_key[0]
        rows = [{"submission_id": sub, "owner": "db/carol", "job_type": "Date", "backend": "local",
                 "status": JobStatus.FAILED if i % 2 else JobStatus.COMPLETED, "dataset_ids": [i + 1],
                 "datafile_ids": [], "options": {}, "argv": [],
                 "input_names": {"datasets": [[i + 1, f"=cmd-{i}" if i == 0 else f"scan-{i}"]], "datafiles": []}}
                for i in range(1205)]  # fmt: skip
        c.execute(sa.insert(Job), rows)
        c.execute(sa.insert(Job), [{"submission_id": bobs, "owner": "db/bob", "job_type": "Date", "backend": "local",
                                    "status": JobStatus.COMPLETED, "dataset_ids": [9], "datafile_ids": [], "options": {},
                                    "argv": [], "input_names": {"datasets": [[9, "bob-secret"]], "datafiles": []}}])  # fmt: skip
        ids = list(c.scalars(sa.select(Job.id).where(Job.submission_id == sub).order_by(Job.id.desc())))
    try:
        yield sub, ids
    finally:
        with engine.begin() as c:
            c.execute(sa.delete(Job).where(Job.submission_id.in_([sub, bobs])))
            c.execute(sa.delete(Submission).where(Submission.id.in_([sub, bobs])))


def test_ijp_jobs_lists_names_and_exports_csv_and_json(ijp, carols_jobs, tmp_path):  # noqa: F811
    sub, carols_jobs = carols_jobs
    ijp("login", "--url", ijp.url, "db", "username", "carol", "password", "-", stdin="carol-demo\n")
    # (earlier tests of the session may have left jobs of carol's: the counts are the submission's)
    table = ijp("jobs", "--status", "Failed", "--submission", str(sub)).stdout.splitlines()
    assert table[0].split()[:3] == ["ID", "JOB", "TYPE"] and len(table) == 1 + 602
    assert "scan-1205" not in table[1] and "scan-1203" in table[1]  # newest first, by name
    out = tmp_path / "jobs.csv"
    ijp("jobs", "--format", "csv", "-o", str(out))
    rows = list(csv.reader(io.StringIO(out.read_bytes().decode("utf-8-sig"))))
    mine = [r for r in rows[1:] if int(r[0]) in set(carols_jobs)]
    assert rows[0][0] == "id" and [int(r[0]) for r in mine] == carols_jobs  # every page, each once
    assert mine[-1][7] == "dataset =cmd-0"  # (a cell starting with a letter is left as it is)
    assert "bob-secret" not in out.read_text(encoding="utf-8-sig")
    got = json.loads(
        ijp("jobs", "--format", "json", "--status", "Completed", "--submission", str(sub)).stdout
    )
    assert len(got) == 603 and all(j["status"] == "Completed" for j in got)
    bad = ijp("jobs", "--format", "csv", "--since", "yesterday", expect=1)  # the API's 400, named
    assert "since" in bad.stderr
