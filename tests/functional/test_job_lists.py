"""Job lists that cost what they show (issue 12, point 1): the job list page, its htmx rows
and /api/v1/jobs are read by signed keyset cursors (Newer/Older, never a link per page),
a cursor of another list (another user's, other filters) or a changed one is a 400 on every
face and never shows a row of that list, a page size above the most is capped and says so,
and counts stop at 10,000 and say so."""

from __future__ import annotations

import re
import urllib.parse
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from ijpweb.models import Job, JobTag, Submission
from ijpweb.paging import COUNT_CAP
from ijpweb.states import JobStatus

from .test_api import check

API = "/api/v1"
T0 = datetime(2026, 6, 1, tzinfo=UTC)


def add_jobs(
    db, owner: str, n: int, *, tag: str = "", tag_every: int = 0, job_type: str = "Date"
) -> list[int]:
    """``n`` ended jobs of ``owner`` (one submission), one minute apart; their ids, oldest first."""
    sub = Submission(owner=owner, job_type=job_type, mode="each")
    db.add(sub)
    db.flush()
    rows = [
        {"submission_id": sub.id, "owner": owner, "job_type": job_type, "backend": "local",
         "status": JobStatus.COMPLETED if i % 3 else JobStatus.FAILED, "exit_code": 0 if i % 3 else 1,
         "submitted_at": T0 + timedelta(minutes=i), "dataset_ids": [], "datafile_ids": [], "options": {},
         "argv": []}
        for i in range(n)
    ]  # fmt: skip
    db.execute(sa.insert(Job), rows)
    ids = list(db.scalars(sa.select(Job.id).where(Job.submission_id == sub.id).order_by(Job.id)))
    if tag:
        db.execute(
            sa.insert(JobTag),
            [{"job_id": i, "tag": tag, "owner": owner} for k, i in enumerate(ids) if k % tag_every == 0],
        )
    db.expire_all()
    return ids


def login(testapp, user):
    testapp.reset()
    testapp.login(user)
    return testapp


def api_token(testapp, user):
    resp = testapp.post_json(API + "/session", {"username": user, "password": f"{user}-demo"}, status=201)
    return {"Authorization": f"Bearer {resp.json['token']}"}


ROW = re.compile(r'<tr id="job-(\d+)">')
LINK = re.compile(r'<a href="([^"]+)" rel="(first|prev|next)">')


def rows_and_links(html: str) -> tuple[list[int], dict[str, str]]:
    links = {rel: href.replace("&amp;", "&") for href, rel in LINK.findall(html)}
    return [int(i) for i in ROW.findall(html)], links


def test_the_page_walks_older_and_newer_by_cursor_with_no_link_per_page(testapp, dbsession):
    ids = add_jobs(dbsession, "db/bob", 60)
    bob = login(testapp, "bob")
    seen, url, pages = [], "/jobs", []
    while url:
        html = bob.get(url).text
        rows, links = rows_and_links(html)
        pages.append((url, rows, links))
        seen += rows
        # Newest, Newer and Older at most: never a link per page
        assert len(re.findall(r'<nav class="pager".*?</nav>', html, re.S)) <= 1 and len(links) <= 3
        url = links.get("next")
    assert seen == sorted(ids, reverse=True)  # every job once, newest first
    assert [len(r) for _, r, _ in pages] == [25, 25, 10]
    # the first page has no Newest/Newer link; the others lead back
    assert set(pages[0][2]) == {"next"} and set(pages[2][2]) == {"first", "prev"}
    # Newer from the last page is the middle page again; Newer from the middle is the first
    assert rows_and_links(bob.get(pages[2][2]["prev"]).text)[0] == pages[1][1]
    assert rows_and_links(bob.get(pages[1][2]["prev"]).text)[0] == pages[0][1]
    # the htmx rows of an older page are the same rows (its refresh keeps the cursor)
    assert rows_and_links(bob.htmx("GET", pages[1][0]).text)[0] == pages[1][1]
    assert "60 job(s)." in bob.get("/jobs").text


def test_filters_follow_the_cursor_and_a_tag_list_is_paged_too(testapp, dbsession):
    ids = add_jobs(dbsession, "db/bob", 90, tag="calib", tag_every=2)
    tagged = [i for k, i in enumerate(ids) if k % 2 == 0]
    bob = login(testapp, "bob")
    seen, url = [], "/jobs?tag=calib"
    while url:
        rows, links = rows_and_links(bob.get(url).text)
        seen += rows
        url = links.get("next")
        assert url is None or "tag=calib" in url
    assert seen == sorted(tagged, reverse=True)
    failed = [i for k, i in enumerate(ids) if k % 3 == 0]
    first = bob.get("/jobs", {"status": "Failed", "per_page": 10}).text
    rows, links = rows_and_links(first)
    assert rows == sorted(failed, reverse=True)[:10] and "per_page=10" in links["next"]
    assert f"{len(failed)} job(s)." in first


def test_an_api_client_follows_next_to_the_end(testapp, dbsession, doc):
    ids = add_jobs(dbsession, "db/bob", 130)
    auth = api_token(testapp, "bob")
    seen, url, previous = [], f"{API}/jobs?per_page=50", []
    while url:
        got = check(doc, testapp.get(url, headers=auth), "/api/v1/jobs", "get").json
        assert got["total"] == 130 and got["total_exact"] is True and got["per_page"] == 50
        seen += [j["id"] for j in got["jobs"]]
        previous.append(got["previous"])
        url = got["next_url"]
        assert (got["next"] is None) == (url is None)
    assert seen == sorted(ids, reverse=True) and previous[0] is None and all(previous[1:])
    # previous of the second page is the first page
    second = testapp.get(
        f"{API}/jobs",
        {"per_page": 50, "cursor": testapp.get(f"{API}/jobs?per_page=50", headers=auth).json["next"]},
        headers=auth,
    ).json
    back = testapp.get(f"{API}/jobs", {"per_page": 50, "cursor": second["previous"]}, headers=auth).json
    assert [j["id"] for j in back["jobs"]] == seen[:50] and back["previous"] is None
    # the old page= is refused, naming it, rather than ignored
    refused = testapp.get(f"{API}/jobs", {"page": 2}, headers=auth, status=400).json
    assert refused["code"] == "unknown_parameter" and "page" in refused["message"]


def test_a_page_size_above_the_most_is_capped_and_says_so(testapp, dbsession, doc):
    add_jobs(dbsession, "db/bob", 230)
    auth = api_token(testapp, "bob")
    resp = check(doc, testapp.get(f"{API}/jobs", {"per_page": 5000}, headers=auth), "/api/v1/jobs", "get")
    assert (
        len(resp.json["jobs"]) == 200
        and resp.json["per_page"] == 200
        and resp.json["per_page_capped"] is True
    )
    assert resp.headers["X-Per-Page-Capped"] == "200"
    exact = testapp.get(f"{API}/jobs", {"per_page": 200}, headers=auth)
    assert exact.json["per_page_capped"] is False and "X-Per-Page-Capped" not in exact.headers
    bob = login(testapp, "bob")
    page = bob.get("/jobs", {"per_page": 5000}).text
    assert len(ROW.findall(page)) == 200 and "At most 200 jobs are shown per page." in page
    assert "At most 200" not in bob.get("/jobs", {"per_page": 200}).text


def _tampered(cursor: str) -> str:
    """The same signature on another position: the body's job id changed by one."""
    import base64
    import json

    body, sig = cursor.split(".")
    direction, position = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    other = base64.urlsafe_b64encode(json.dumps([direction, position + 1], separators=(",", ":")).encode())
    return other.rstrip(b"=").decode() + "." + sig


def test_carol_cannot_use_bobs_cursor_nor_a_changed_one_on_any_face(testapp, dbsession):
    bobs = add_jobs(dbsession, "db/bob", 40)
    add_jobs(dbsession, "db/carol", 40)
    bob_auth, carol_auth = api_token(testapp, "bob"), api_token(testapp, "carol")
    cursor = testapp.get(f"{API}/jobs", {"per_page": 10}, headers=bob_auth).json["next"]
    assert testapp.get(f"{API}/jobs", {"per_page": 10, "cursor": cursor}, headers=bob_auth).json["jobs"]
    bob_ids = {str(i) for i in bobs}

    def refused_api(resp):
        assert resp.json["code"] and "cursor" in resp.json["fields"], resp.json
        assert not any(f'"id": {i}' in resp.text for i in bob_ids)

    # carol with bob's cursor: 400 on the API, the page and the rows fragment
    refused_api(testapp.get(f"{API}/jobs", {"cursor": cursor}, headers=carol_auth, status=400))
    # bob with his own cursor on another list (other filters): 400 too
    for other in (
        {"status": "Completed"},
        {"tag": "x"},
        {"job_type": "Test Options"},
        {"since": "2026-01-01T00:00:00"},
    ):
        refused_api(testapp.get(f"{API}/jobs", {"cursor": cursor, **other}, headers=bob_auth, status=400))
    # a changed cursor (its position moved under the same signature), or garbage
    for bad in (_tampered(cursor), cursor[:-2], "x" * 40, cursor + "." + cursor):
        refused_api(testapp.get(f"{API}/jobs", {"cursor": bad}, headers=bob_auth, status=400))
    carol = login(testapp, "carol")
    page = carol.get("/jobs", {"cursor": cursor}, status=400)
    rows = carol.htmx("GET", "/jobs", {"cursor": cursor}, status=400)
    for resp in (page, rows):
        assert "cursor" in resp.text and not ROW.findall(resp.text)
    bob = login(testapp, "bob")
    bob.get("/jobs", {"cursor": cursor, "status": "Failed"}, status=400)
    bob.get("/jobs", {"cursor": _tampered(cursor)}, status=400)


@pytest.mark.parametrize("face", ["page", "api"])
def test_counts_stop_at_ten_thousand_and_say_so(testapp, dbsession, face):
    add_jobs(dbsession, "db/bob", COUNT_CAP + 1)
    if face == "api":
        got = testapp.get(f"{API}/jobs", headers=api_token(testapp, "bob")).json
        assert got["total"] == COUNT_CAP and got["total_exact"] is False and len(got["jobs"]) == 25
    else:
        page = login(testapp, "bob").get("/jobs").text
        assert "more than 10,000 job(s)" in page and len(ROW.findall(page)) == 25


def test_the_tag_filter_offers_each_of_the_users_tags_once_in_order(testapp, dbsession):
    from ijpweb.models import user_tags

    ids = add_jobs(dbsession, "db/bob", 30)
    carols = add_jobs(dbsession, "db/carol", 3)
    tags = ["run-2", "calib", "Zeta", "run-10", "ä-umlaut"]
    dbsession.execute(
        sa.insert(JobTag),
        [{"job_id": i, "tag": tags[k % len(tags)], "owner": "db/bob"} for k, i in enumerate(ids)],
    )
    dbsession.execute(sa.insert(JobTag), [{"job_id": carols[0], "tag": "carols-own", "owner": "db/carol"}])
    assert user_tags(dbsession, "db/bob") == sorted(tags)  # (the database's order: both compare code points)
    assert user_tags(dbsession, "db/bob", most=2) == sorted(tags)[:2]
    assert user_tags(dbsession, "db/nobody") == []
    page = login(testapp, "bob").get("/jobs").text
    assert all(f"<option >{t}</option>" in page or f">{t}</option>" in page for t in tags)
    assert "carols-own" not in page


def test_a_list_by_date_pages_in_submission_order(testapp, dbsession):
    """since/until: the jobs submitted in the range, newest first, page after page, on
    /api/v1/jobs and on the console's /api/v1/admin/jobs (staff), with Newer back."""
    ids = add_jobs(dbsession, "db/bob", 60)
    inside = sorted(ids[10:50], reverse=True)  # submitted T0+10 min .. T0+49 min
    since, until = (T0 + timedelta(minutes=10)).isoformat(), (T0 + timedelta(minutes=50)).isoformat()
    auth = api_token(testapp, "bob")
    seen, pages, url = (
        [],
        [],
        f"{API}/jobs?per_page=7&since={urllib.parse.quote(since)}&until={urllib.parse.quote(until)}",
    )
    while url:
        got = testapp.get(url, headers=auth).json
        pages.append(got)
        seen += [j["id"] for j in got["jobs"]]
        url = got["next_url"]
    assert seen == inside and len(pages) == 6
    back = testapp.get(pages[2]["previous_url"], headers=auth).json
    assert [j["id"] for j in back["jobs"]] == [j["id"] for j in pages[1]["jobs"]]
    staff = api_token(testapp, "alice")
    seen, pages, url = (
        [],
        [],
        f"{API}/admin/jobs?"
        + urllib.parse.urlencode({"user": "db/bob", "since": since, "until": until, "per_page": 9}),
    )
    while url:
        pages.append(testapp.get(url, headers=staff).json)
        seen += [j["id"] for j in pages[-1]["jobs"]]
        url = pages[-1]["next_url"]
    assert seen == inside and len(pages) == 5
    newer = testapp.get(pages[-1]["previous_url"], headers=staff).json
    assert [j["id"] for j in newer["jobs"]] == seen[27:36]
