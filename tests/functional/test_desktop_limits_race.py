"""carol's F4 (issue 14): ijp.desktop.max_per_user held under simultaneous submissions.

The limit is a count of the user's live desktops, then the insert of the new ones: two
requests that both count before either commits would both pass. The submission takes a lock
first (ijpweb.jobs.desktops.serialize: PostgreSQL's advisory lock per owner and backend,
SQLite's write lock), so exactly max_per_user of carol's simultaneous submissions are
accepted and the others refused with the limit named. A live portal (waitress, several
threads), real requests at once through a barrier; on SQLite and on PostgreSQL (tests/run.sh).
No session starts: this portal's scheduler is off, so nothing is handed over.
"""

import threading

import requests
import sqlalchemy as sa

from ijpweb.models import Job, Submission
from ijpweb.models.desktops import Desktop

from ..conftest import serving
from .test_demo_jobs import datasets_of

OWNER = "db/carol"


def login(url: str, user: str) -> requests.Session:
    s = requests.Session()
    res = s.post(f"{url}/api/v1/session", json={"username": user, "password": f"{user}-demo"}, timeout=30)
    assert res.status_code == 201, res.text
    s.headers["Authorization"] = f"Bearer {res.json()['token']}"
    return s


def carols_desktops(engine) -> int:
    with engine.connect() as c:
        return c.scalar(
            sa.select(sa.func.count()).select_from(Desktop).join(Job, Job.id == Desktop.job_id)
            .where(Job.owner == OWNER, Desktop.state != "ended")
        )  # fmt: skip


def forget(engine, first: int) -> None:
    """The rows of carol's jobs from id ``first`` on (the other tests share the database)."""
    with engine.begin() as c:
        subs = c.scalars(sa.select(Job.submission_id).where(Job.id >= first, Job.owner == OWNER)).all()
        c.execute(sa.delete(Job.__table__).where(Job.id >= first, Job.owner == OWNER))
        if subs:
            c.execute(sa.delete(Submission.__table__).where(Submission.id.in_(set(subs))))


ROUNDS = 4  # (without the lock, most rounds let 3 to 5 through; one may happen to keep to it)


def test_simultaneous_submissions_do_not_pass_max_per_user(app, dbengine):
    most = app.registry.settings["ijp"].desktop.max_per_user
    assert most == 2
    n = most + 6
    assert carols_desktops(dbengine) == 0
    datasets = datasets_of(dbengine, "LMF-2026-003")[:1]
    body = {"job_type": "Terminal", "geometry": "800x600", "datasets": datasets}
    with serving(app, threads=n) as url:
        sessions = [login(url, "carol") for _ in range(n)]
        for _ in range(ROUNDS):
            with dbengine.connect() as c:
                first = (c.scalar(sa.select(sa.func.max(Job.id))) or 0) + 1
            answers: list[requests.Response] = []
            barrier = threading.Barrier(n)

            def submit(s, answers=answers, barrier=barrier):
                barrier.wait()
                answers.append(s.post(f"{url}/api/v1/submissions", json=body, timeout=60))

            threads = [threading.Thread(target=submit, args=(s,)) for s in sessions]
            try:
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                codes = sorted(r.status_code for r in answers)
                assert codes == [201] * most + [409] * (n - most), [
                    (r.status_code, r.text[:200]) for r in answers
                ]
                assert carols_desktops(dbengine) == most
                refused = next(r.json() for r in answers if r.status_code == 409)
                assert refused["code"] == "too_many_desktops"
                assert "ijp.desktop.max_per_user" in refused["message"] and f"= {most}" in refused["message"]
            finally:
                forget(dbengine, first)
