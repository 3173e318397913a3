"""Issue 13, point 9: comments on a job, by its owner, on its page (with and without
htmx) and in /api/v1; escaped text, bounded length; another user (carol) can neither
read, add, edit nor delete them through any face, also by a made-up comment id on her
own job's URL; a deleted job takes its comments with it."""

import sqlalchemy as sa

from ijpweb.models import Job
from ijpweb.models.comments import MAX_COMMENT_LENGTH, JobComment
from ijpweb.states import JobStatus

from .test_api import API, check, token
from .test_console import make_job, user_app

HOSTILE = '<script>alert("x")</script> & <b>bold</b>\nsecond line'


def _comments(db, job):
    return db.scalars(sa.select(JobComment).where(JobComment.job_id == job.id).order_by(JobComment.id)).all()


def test_the_owner_adds_edits_and_deletes_on_the_page(app, tm, dbsession):
    bob = user_app(app, tm, dbsession, "bob")
    job = make_job(dbsession, "db/bob")
    page = bob.get(f"/jobs/{job.id}")
    assert 'id="comments"' in page.text and "No comments yet." in page.text
    # without JavaScript: a plain form, then back to the job page
    token_ = bob.get_csrf_token()
    back = bob.post(f"/jobs/{job.id}/comments", {"text": HOSTILE, "csrf_token": token_}, status=303)
    (first,) = _comments(dbsession, job)
    assert back.location == f"http://example.com/jobs/{job.id}#comment-{first.id}"
    assert first.author == "db/bob" and first.body == HOSTILE and first.edited_at is None
    page = bob.get(f"/jobs/{job.id}")
    # escaped, never HTML; the line break kept as written (shown by CSS pre-wrap)
    assert "<script>alert" not in page.text and "<b>bold</b>" not in page.text
    assert (
        "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;\nsecond line"
        in page.text
    )
    assert f'id="comment-{first.id}"' in page.text and "db/bob" in page.text and "(edited" not in page.text
    # with htmx: the section comes back, newest last
    frag = bob.htmx("POST", f"/jobs/{job.id}/comments", {"text": "second"})
    assert frag.text.lstrip().startswith('<section class="card comments-card" id="comments"')
    first_id, second_id = (c.id for c in _comments(dbsession, job))
    assert frag.text.index(f'id="comment-{first_id}"') < frag.text.index(f'id="comment-{second_id}"')
    # edit: it says it was edited
    frag = bob.htmx("POST", f"/jobs/{job.id}/comments/{second_id}", {"text": "second, better"})
    assert "second, better" in frag.text and "(edited" in frag.text
    assert _comments(dbsession, job)[1].edited_at is not None
    # delete (no JS: a form in a <details>, its own confirmation step)
    bob.post(f"/jobs/{job.id}/comments/{first_id}/delete", {"csrf_token": token_}, status=303)
    assert [c.id for c in _comments(dbsession, job)] == [second_id]
    # without a CSRF token nothing changes
    bob.post(f"/jobs/{job.id}/comments", {"text": "forged"}, status=400)
    bob.post(f"/jobs/{job.id}/comments/{second_id}/delete", {}, status=400)
    assert [c.body for c in _comments(dbsession, job)] == ["second, better"]


def test_bad_text_is_refused_at_its_field_with_the_text_kept(app, tm, dbsession):
    bob = user_app(app, tm, dbsession, "bob")
    job = make_job(dbsession, "db/bob")
    long = "x" * (MAX_COMMENT_LENGTH + 1)
    frag = bob.htmx("POST", f"/jobs/{job.id}/comments", {"text": long}, status=422)
    assert f"at most {MAX_COMMENT_LENGTH:,}" in frag.text and 'id="comment-text-error"' in frag.text
    assert 'aria-invalid="true"' in frag.text and long in frag.text  # kept to fix
    # without JS: a page of its own with the message and the form
    page = bob.post(
        f"/jobs/{job.id}/comments", {"text": "  \n ", "csrf_token": bob.get_csrf_token()}, status=422
    )
    assert "The comment must not be empty." in page.text and "Nothing was changed." in page.text
    assert "<h1>Comments on job" in page.text
    bob.htmx("POST", f"/jobs/{job.id}/comments", {"text": "bell \x07"}, status=422)
    assert _comments(dbsession, job) == []
    # exactly the limit is fine
    bob.htmx("POST", f"/jobs/{job.id}/comments", {"text": "y" * MAX_COMMENT_LENGTH})
    (c,) = _comments(dbsession, job)
    refused = bob.htmx("POST", f"/jobs/{job.id}/comments/{c.id}", {"text": long}, status=422)
    assert f'id="comment-{c.id}-text-error"' in refused.text and "<details open>" in refused.text
    assert _comments(dbsession, job)[0].body == "y" * MAX_COMMENT_LENGTH


def test_the_api_lists_adds_edits_and_deletes(testapp, doc, dbsession):
    auth = token(testapp, "bob")
    job = make_job(dbsession, "db/bob")
    path, one = "/api/v1/jobs/{job_id}/comments", "/api/v1/jobs/{job_id}/comments/{comment_id}"
    listed = check(doc, testapp.get(f"{API}/jobs/{job.id}/comments", headers=auth), path, "get").json
    assert listed == {"comments": []}
    made = check(doc, testapp.post_json(f"{API}/jobs/{job.id}/comments", {"text": HOSTILE}, headers=auth,
                                        status=201), path, "post")  # fmt: skip
    c = made.json
    assert c["text"] == HOSTILE and c["author"] == "db/bob" and c["edited"] is False and c["job"] == job.id
    assert made.headers["Location"] == c["url"] == f"http://example.com{API}/jobs/{job.id}/comments/{c['id']}"
    edited = check(doc, testapp.patch_json(c["url"], {"text": "changed"}, headers=auth), one, "patch").json
    assert edited["text"] == "changed" and edited["edited"] is True and edited["edited_at"]
    listed = check(doc, testapp.get(f"{API}/jobs/{job.id}/comments", headers=auth), path, "get").json
    assert [x["text"] for x in listed["comments"]] == ["changed"]
    # the job says how many it has and where they are
    got = check(doc, testapp.get(f"{API}/jobs/{job.id}", headers=auth), "/api/v1/jobs/{job_id}", "get").json
    assert got["comments"] == 1 and got["comments_url"] == f"http://example.com{API}/jobs/{job.id}/comments"
    # bad bodies, named
    bad = check(doc, testapp.post_json(f"{API}/jobs/{job.id}/comments", {"text": "x" * (MAX_COMMENT_LENGTH + 1)},
                                       headers=auth, status=422), path, "post").json  # fmt: skip
    assert (
        bad["code"] == "invalid_comment"
        and "text" in bad["fields"]
        and f"{MAX_COMMENT_LENGTH:,}" in bad["message"]
    )
    missing = testapp.post_json(f"{API}/jobs/{job.id}/comments", {}, headers=auth, status=400).json
    assert missing["fields"] == {"text": "required"}
    unknown = testapp.post_json(f"{API}/jobs/{job.id}/comments", {"text": "a", "txet": 1}, headers=auth,
                                status=400).json  # fmt: skip
    assert "txet" in unknown["message"]
    not_text = testapp.post_json(f"{API}/jobs/{job.id}/comments", {"text": 5}, headers=auth, status=422).json
    assert not_text["fields"]["text"] == "text must be text"
    resp = testapp.delete(c["url"], headers=auth, status=204)
    check(doc, resp, one, "delete")
    assert _comments(dbsession, job) == []
    testapp.delete(c["url"], headers=auth, status=404)  # gone
    testapp.patch_json(f"{API}/jobs/{job.id}/comments/abc", {"text": "x"}, headers=auth, status=404)
    # with the login cookie a write needs the CSRF token, as every other write
    cookie = user_app(testapp.app, testapp.extra_environ["tm.manager"], dbsession, "bob")
    cookie.post_json(f"{API}/jobs/{job.id}/comments", {"text": "no token"}, status=400)
    cookie.post_json(f"{API}/jobs/{job.id}/comments", {"text": "token"},
                     headers={"X-CSRF-Token": cookie.get_csrf_token()}, status=201)  # fmt: skip
    assert [c.body for c in _comments(dbsession, job)] == ["token"]


def test_carol_cannot_touch_bobs_comments_on_any_face(app, tm, dbsession, testapp):
    bob_job = make_job(dbsession, "db/bob")
    carol_job = make_job(dbsession, "db/carol")
    bob = user_app(app, tm, dbsession, "bob")
    bob.htmx("POST", f"/jobs/{bob_job.id}/comments", {"text": "bob's secret note"})
    (secret,) = _comments(dbsession, bob_job)
    carol = user_app(app, tm, dbsession, "carol")
    ct = carol.get_csrf_token()
    # the pages: bob's job is not found, whatever she asks
    for resp in (
        carol.get(f"/jobs/{bob_job.id}/comments", status=404),
        carol.htmx("GET", f"/jobs/{bob_job.id}/comments", status=404),
        carol.post(f"/jobs/{bob_job.id}/comments", {"text": "hi", "csrf_token": ct}, status=404),
        carol.post(
            f"/jobs/{bob_job.id}/comments/{secret.id}", {"text": "mine", "csrf_token": ct}, status=404
        ),
        carol.post(f"/jobs/{bob_job.id}/comments/{secret.id}/delete", {"csrf_token": ct}, status=404),
        # bob's comment id on her own job's URL: not a comment of that job
        carol.post(
            f"/jobs/{carol_job.id}/comments/{secret.id}", {"text": "mine", "csrf_token": ct}, status=404
        ),
        carol.post(f"/jobs/{carol_job.id}/comments/{secret.id}/delete", {"csrf_token": ct}, status=404),
        carol.get(f"/jobs/{bob_job.id}", status=404),
    ):
        assert "secret note" not in resp.text
    assert "secret note" not in carol.get(f"/jobs/{carol_job.id}").text
    # /api/v1 with her token
    auth = token(testapp, "carol")
    for resp in (
        testapp.get(f"{API}/jobs/{bob_job.id}/comments", headers=auth, status=404),
        testapp.post_json(f"{API}/jobs/{bob_job.id}/comments", {"text": "hi"}, headers=auth, status=404),
        testapp.patch_json(
            f"{API}/jobs/{bob_job.id}/comments/{secret.id}", {"text": "x"}, headers=auth, status=404
        ),  # fmt: skip
        testapp.delete(f"{API}/jobs/{bob_job.id}/comments/{secret.id}", headers=auth, status=404),
        testapp.patch_json(
            f"{API}/jobs/{carol_job.id}/comments/{secret.id}", {"text": "x"}, headers=auth, status=404
        ),  # fmt: skip
        testapp.delete(f"{API}/jobs/{carol_job.id}/comments/{secret.id}", headers=auth, status=404),
        testapp.get(f"{API}/jobs/{bob_job.id}", headers=auth, status=404),
    ):
        assert "secret note" not in resp.text and resp.json["code"] == "not_found"
    assert testapp.get(f"{API}/jobs/{carol_job.id}/comments", headers=auth).json == {"comments": []}
    # nothing changed, and her own job got no comment either
    (still,) = _comments(dbsession, bob_job)
    assert still.body == "bob's secret note" and still.edited_at is None
    assert _comments(dbsession, carol_job) == []


def test_staff_do_not_read_a_users_comments(app, tm, dbsession, testapp):
    """Decision: comments are the owner's notes; staff (alice) have no face that shows
    another user's (their console shows jobs, never comments)."""
    job = make_job(dbsession, "db/bob", status=JobStatus.RUNNING)
    bob = user_app(app, tm, dbsession, "bob")
    bob.htmx("POST", f"/jobs/{job.id}/comments", {"text": "bob's secret note"})
    alice = user_app(app, tm, dbsession, "alice")
    alice.get(f"/jobs/{job.id}/comments", status=404)
    assert "secret note" not in alice.get("/console/jobs").text
    auth = token(testapp, "alice")
    testapp.get(f"{API}/jobs/{job.id}/comments", headers=auth, status=404)
    assert "secret note" not in testapp.get(f"{API}/admin/jobs/{job.id}", headers=auth).text


def test_a_deleted_job_deletes_its_comments(app, tm, dbsession):
    bob = user_app(app, tm, dbsession, "bob")
    job = make_job(dbsession, "db/bob")
    bob.htmx("POST", f"/jobs/{job.id}/comments", {"text": "one"})
    bob.htmx("POST", f"/jobs/{job.id}/comments", {"text": "two"})
    assert len(_comments(dbsession, job)) == 2
    job_id = job.id
    bob.post(f"/jobs/{job_id}/delete", {"csrf_token": bob.get_csrf_token()}, status=303)
    dbsession.expire_all()
    assert dbsession.get(Job, job_id) is None
    left = dbsession.scalar(
        sa.select(sa.func.count()).select_from(JobComment).where(JobComment.job_id == job_id)
    )
    assert left == 0
    # and by the database itself (the foreign key cascades), not only by the portal's code
    other = make_job(dbsession, "db/bob")
    bob.htmx("POST", f"/jobs/{other.id}/comments", {"text": "three"})
    dbsession.execute(sa.delete(Job).where(Job.id == other.id))
    assert (
        dbsession.scalar(
            sa.select(sa.func.count()).select_from(JobComment).where(JobComment.job_id == other.id)
        )
        == 0
    )
