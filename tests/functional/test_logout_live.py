"""Logging out does not kill the jobs just submitted, for real: a portal served by
waitress with its scheduler (submitter, harvester), jobs that read the catalog as the user
through ICAT REST and IDS (the demo's Dataset lister), and a web logout while they run.

The report: after ``POST /logout`` both running Dataset lister jobs failed with "the
catalog session has expired" (the login's catalog session was theirs, and went with it)."""

import time

import pytest
import requests
import sqlalchemy as sa

from ijpweb import main
from ijpweb.models import Job, WebSession, get_engine
from ijpweb.states import LIVE, JobStatus

from ..conftest import ROOT, free_port, load_demo, migrate, portal_settings, serving
from .test_demo_jobs import datasets_of

pytestmark = pytest.mark.once  # its own SQLite database


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    """A portal whose ijp.url is where it listens, so that jobs reach its /icat and /ids."""
    tmp = tmp_path_factory.mktemp("logout")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    settings = portal_settings(
        str(ROOT / "testing.ini"), tmp, f"sqlite:///{tmp / 'portal.sqlite'}",
        **{"ijp.scheduler.enabled": "true", "ijp.harvest.seconds": "0.3", "ijp.url": url},
    )  # fmt: skip
    engine = get_engine(settings)
    migrate(engine)
    load_demo(engine, settings["ijp.filestore"])
    app = main({}, dbengine=engine, **settings)
    with serving(app, port=port):
        yield url, engine, app.registry["ijp.backends"]["local"]
        app.registry["ijp.scheduler"].shutdown(wait=False)
    engine.dispose()


def statuses(engine, ids):
    with engine.connect() as c:
        return dict(c.execute(sa.select(Job.id, Job.status).where(Job.id.in_(ids))).all())


def test_logging_out_does_not_kill_the_jobs_just_submitted(portal):
    url, engine, local = portal
    web = requests.Session()
    web.get(f"{url}/login", timeout=10)
    csrf = web.cookies["csrf_token"]
    login = {"username": "alice", "password": "alice-demo", "csrf_token": csrf}
    assert web.post(f"{url}/login", data=login, allow_redirects=False, timeout=10).status_code == 303
    with engine.connect() as c:
        sid = c.execute(sa.select(WebSession.catalog_session)).scalar_one()
    two = datasets_of(engine, "LMF-2026-001")[:2]
    body = {"job_type": "Dataset lister", "datasets": two, "mode": "each"}
    res = web.post(f"{url}/api/v1/submissions", json=body, headers={"X-CSRF-Token": csrf}, timeout=30)
    assert res.status_code == 201, res.text
    ids = [j["id"] for j in res.json()["jobs"]]
    assert len(ids) == 2
    assert set(statuses(engine, ids).values()) <= LIVE  # just submitted: they have not ended
    assert (
        web.post(f"{url}/logout", data={"csrf_token": csrf}, allow_redirects=False, timeout=10).status_code
        == 303
    )
    assert web.get(f"{url}/jobs", allow_redirects=False, timeout=10).status_code == 303  # logged out

    deadline = time.monotonic() + 120
    while set(statuses(engine, ids).values()) & LIVE:
        assert time.monotonic() < deadline, f"the jobs did not end: {statuses(engine, ids)}"
        time.sleep(0.2)
    for job_id in ids:
        out = local.read(str(job_id), "stdout").decode()
        err = local.read(str(job_id), "stderr").decode()
        assert statuses(engine, [job_id])[job_id] == JobStatus.COMPLETED, out + err
        assert "all datafiles agree with the catalog" in out and "expired" not in err

    # the last job has ended: now the catalog session is logged out
    deadline = time.monotonic() + 30
    while (res := requests.get(f"{url}/icat/session/{sid}", timeout=10)).status_code == 200:
        assert time.monotonic() < deadline, "the catalog session outlived its jobs"
        time.sleep(0.2)
    assert res.status_code == 403 and res.json()["code"] == "SESSION"
