"""Issue 5, point 4: for every job endpoint of the web pages, /api/v1 and /ijp/rest/jm,
another user's job is refused (403 or 404) and nothing about it changes.

The matrix is checked against the app's own route table: a new route with a job id in
its URL fails this test until it is added here."""

import pytest
from pyramid.interfaces import IRoutesMapper

from ijpweb.batch.submitter import submit_pending
from ijpweb.models import Job, JobComment, WebSession

from ..conftest import make_testapp
from .test_api import API, token
from .test_flow import wait_for
from .test_jm import JM, session

# (route, method, path with {id}, extra params); each is tried on an ended job and a live one
WEB = [
    ("jobs.detail", "GET", "/jobs/{id}", {}),
    ("jobs.detail", "GET*", "/jobs/{id}", {}),  # the htmx fragment
    ("jobs.output", "GET", "/jobs/{id}/output/stdout", {}),
    ("jobs.output", "GET", "/jobs/{id}/output/stderr", {}),
    ("jobs.outputs", "GET*", "/jobs/{id}/outputs", {}),
    ("jobs.file", "GET", "/jobs/{id}/file?name=result.txt", {}),
    ("jobs.preview", "GET", "/jobs/{id}/preview?name=result.txt", {}),
    ("jobs.image", "GET", "/jobs/{id}/image?name=result.png", {}),
    ("jobs.zip", "GET", "/jobs/{id}/outputs.zip", {}),
    ("jobs.cancel", "GET", "/jobs/{id}/cancel", {}),
    ("jobs.cancel", "POST", "/jobs/{id}/cancel", {}),
    ("jobs.delete", "GET", "/jobs/{id}/delete", {}),
    ("jobs.delete", "POST", "/jobs/{id}/delete", {}),
    ("jobs.tags", "POST", "/jobs/{id}/tags", {"tags": "mine"}),
    ("jobs.resubmit", "POST", "/jobs/{id}/resubmit", {}),
    # an interactive job's desktop (tests/functional/test_desktop_pages.py: on bob's desktop too)
    ("jobs.desktop", "GET", "/jobs/{id}/desktop", {}),
    ("jobs.end", "POST", "/jobs/{id}/end", {}),
    ("submit", "GET", "/submit?like={id}", {}),
    # comments ({cid}: alice's own comment on that job)
    ("jobs.comments", "GET", "/jobs/{id}/comments", {}),
    ("jobs.comments", "GET*", "/jobs/{id}/comments", {}),
    ("jobs.comments", "POST", "/jobs/{id}/comments", {"text": "mine"}),
    ("jobs.comment", "POST", "/jobs/{id}/comments/{cid}", {"text": "mine"}),
    ("jobs.comment.delete", "POST", "/jobs/{id}/comments/{cid}/delete", {}),
    # the operator's console: staff's alone (tests/functional/test_console.py)
    ("console.job.cancel", "GET", "/console/jobs/{id}/cancel", {}),
    ("console.job.cancel", "POST", "/console/jobs/{id}/cancel", {}),
    ("console.job.delete", "GET", "/console/jobs/{id}/delete", {}),
    ("console.job.delete", "POST", "/console/jobs/{id}/delete", {}),
]
BEARER = [
    ("api.job", "GET", API + "/jobs/{id}", None),
    ("api.job", "DELETE", API + "/jobs/{id}", None),
    ("api.job.cancel", "POST", API + "/jobs/{id}/cancel", None),
    ("api.job.end", "POST", API + "/jobs/{id}/end", None),
    ("api.job.output", "GET", API + "/jobs/{id}/output/stdout", None),
    ("api.job.output", "GET", API + "/jobs/{id}/output/stderr", None),
    ("api.job.files", "GET", API + "/jobs/{id}/files", None),
    ("api.job.file", "GET", API + "/jobs/{id}/file?name=result.txt", None),
    ("api.job.zip", "GET", API + "/jobs/{id}/outputs.zip", None),
    ("api.job.tags", "PUT", API + "/jobs/{id}/tags", {"tags": ["mine"]}),
    ("api.submissions", "POST", API + "/submissions", {"like": "{id}"}),
    ("api.job.comments", "GET", API + "/jobs/{id}/comments", None),
    ("api.job.comments", "POST", API + "/jobs/{id}/comments", {"text": "mine"}),
    ("api.job.comment", "PATCH", API + "/jobs/{id}/comments/{cid}", {"text": "mine"}),
    ("api.job.comment", "DELETE", API + "/jobs/{id}/comments/{cid}", None),
    ("api.admin.job", "GET", API + "/admin/jobs/{id}", None),
    ("api.admin.job.cancel", "POST", API + "/admin/jobs/{id}/cancel", None),
    ("api.admin.job.delete", "POST", API + "/admin/jobs/{id}/delete", None),
]
ORIGINAL = [
    ("jm.status.one", "GET", JM + "status/{id}", {}),
    ("jm.output", "GET", JM + "output/{id}", {}),
    ("jm.error", "GET", JM + "error/{id}", {}),
    ("jm.cancel", "POST", JM + "cancel/{id}", {}),
    ("jm.delete", "DELETE", JM + "delete/{id}", {}),
    ("jm.provenance", "POST", JM + "job/provenance/{id}", {"provenanceId": "7"}),
]


def test_every_job_route_is_in_the_matrix(app):
    with_job = {
        r.name for r in app.registry.getUtility(IRoutesMapper).get_routes() if "{job_id}" in r.pattern
    }
    covered = {name for name, *_ in WEB + BEARER + ORIGINAL}
    assert with_job <= covered, f"job routes missing from the cross-user matrix: {with_job - covered}"


@pytest.fixture
def alices_jobs(testapp, dbsession, backends):
    """One ended job (with output and tags) and one running job, both alice's."""
    alice = token(testapp, "alice")

    def post(body):
        return testapp.post_json(API + "/submissions", body, headers=alice, status=201).json["jobs"][0]["id"]

    ended = post({"job_type": "Date", "tags": ["alices"]})
    wait_for(dbsession, backends, [ended])
    live = post({"job_type": "Sleepcount", "options": {"Sleep Time": "60"}, "tags": ["alices"]})
    submit_pending(dbsession, backends)
    for job_id in (ended, live):
        testapp.post_json(
            f"{API}/jobs/{job_id}/comments", {"text": "alice's note"}, headers=alice, status=201
        )
    yield {"ended": ended, "live": live}
    backends["local"].cancel(dbsession.get(Job, live).backend_job_id)


def _snapshot(dbsession, backends, ids):
    """Everything about alice's jobs that another user could change."""
    dbsession.expire_all()
    out = {}
    for name, i in ids.items():
        j = dbsession.get(Job, i)
        comments = [(c.id, c.body, c.edited_at) for c in dbsession.query(JobComment).filter_by(job_id=i)]
        out[name] = (j.status, j.tags, j.provenance_id, j.options, j.dataset_ids,
                     (backends["local"].root / j.backend_job_id).exists(), comments)  # fmt: skip
    return out, dbsession.query(Job).count()


def test_another_users_job_is_refused_everywhere_and_unchanged(
    app, testapp, tm, dbsession, backends, alices_jobs
):
    before = _snapshot(dbsession, backends, alices_jobs)
    bob_web = make_testapp(app, tm, dbsession)
    bob_web.login("bob")
    bob_token, bob_sid = token(testapp, "bob"), session(testapp, "bob")
    selection_before = _bobs_selection(dbsession)
    refusals = []
    for which, job_id in alices_jobs.items():
        cid = dbsession.query(JobComment).filter_by(job_id=job_id).one().id
        for route, method, path, params in WEB:
            url = path.replace("{id}", str(job_id)).replace("{cid}", str(cid))
            if method.startswith("GET"):
                headers = {"HX-Request": "true"} if method == "GET*" else {}
                resp = bob_web.get(url, headers=headers, expect_errors=True)
            else:
                resp = bob_web.post(
                    url, {**params, "csrf_token": bob_web.get_csrf_token()}, expect_errors=True
                )
            refusals.append(("web", route, method, which, resp.status_int))
        for route, method, path, body in BEARER:
            body = {k: (job_id if v == "{id}" else v) for k, v in body.items()} if body else None
            resp = bob_web.request(path.replace("{id}", str(job_id)).replace("{cid}", str(cid)), method=method, headers=bob_token, expect_errors=True,
                                   **({"json": body} if body is not None else {}))  # fmt: skip
            refusals.append(("api", route, method, which, resp.status_int))
            assert resp.content_type == "application/json", (route, resp.text[:200])
        for route, method, path, params in ORIGINAL:
            data = {**params, "sessionId": bob_sid}
            if method == "GET":
                resp = testapp.get(path.replace("{id}", str(job_id)), data, expect_errors=True)
            elif method == "DELETE":
                resp = testapp.delete(
                    path.replace("{id}", str(job_id)) + f"?sessionId={bob_sid}", expect_errors=True
                )
            else:
                resp = testapp.post(path.replace("{id}", str(job_id)), data, expect_errors=True)
            refusals.append(("jm", route, method, which, resp.status_int))
            assert resp.json == {"code": "ForbiddenException", "message": "Job does not belong to you"}
    wrong = [r for r in refusals if r[-1] not in (403, 404)]
    assert not wrong, f"not refused: {wrong}"
    assert len(refusals) == 2 * (len(WEB) + len(BEARER) + len(ORIGINAL))
    assert _snapshot(dbsession, backends, alices_jobs) == before
    assert _bobs_selection(dbsession) == selection_before  # resubmit did not copy alice's inputs
    # and the lists do not show them either
    assert "alices" not in bob_web.get("/jobs").text
    listed = bob_web.get(API + "/jobs", {"tag": "alices"}, headers=bob_token).json
    assert listed["total"] == 0
    assert not {j["jobId"] for j in testapp.get(JM + "status", {"sessionId": bob_sid}).json} & set(
        alices_jobs.values()
    )


def _bobs_selection(dbsession):
    dbsession.expire_all()
    return [ws.selection for ws in dbsession.query(WebSession).filter_by(user_name="db/bob", kind="web")]
