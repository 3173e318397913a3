"""Issue 13, point 6: a job type's <inputs> rule is enforced on every face with the same
words (the web form, /api/v1/submissions, the original /ijp/rest/jm/submit), and shown
with the description in /api/v1/jobtypes; carol cannot bypass it by another face."""

import sqlalchemy as sa

from ijpweb.catalog.icatdb import TABLES as T
from ijpweb.models import Job

from .test_api import API, check, token
from .test_flow import dataset_ids, select
from .test_jm import JM, session, submit

COPY = "Copy datafile"
WORDS = "Copy datafile needs exactly 1 dataset and 1 datafile; you selected 3 datasets and 2 datafiles"


def datafile_ids(dbsession, dataset_id):
    df = T["Datafile"]
    q = sa.select(df.c.id).where(df.c.dataset_id == dataset_id).order_by(df.c.id)
    return list(dbsession.connection().execute(q).scalars())


def three_and_two(dbsession):
    ds = dataset_ids(dbsession, "confocal", "LMF-2026-001")[:3]
    return ds, datafile_ids(dbsession, ds[0])[:2]


def no_jobs(dbsession):
    return dbsession.scalar(sa.select(sa.func.count(Job.id))) == 0


def test_jobtypes_in_the_api_have_description_and_rule(testapp, doc):
    h = token(testapp, "alice")
    res = check(doc, testapp.get(API + "/jobtypes", headers=h), "/api/v1/jobtypes", "get")
    by = {jt["name"]: jt for jt in res.json["jobtypes"]}
    assert by[COPY]["inputs"] == {"minDatasets": 1, "maxDatasets": 1, "minDatafiles": 1, "maxDatafiles": 1}
    assert by[COPY]["description"].startswith("Copies one datafile into one dataset")
    assert by["Date"]["inputs"] is None and by["Date"]["description"]
    one = check(doc, testapp.get(API + "/jobtypes/" + COPY, headers=h), "/api/v1/jobtypes/{name}", "get")
    assert one.json["inputs"]["maxDatafiles"] == 1
    # the original's JSON is the original's: no new keys
    assert "inputs" not in testapp.get(JM + "jobtype/" + COPY).json


def test_api_refuses_a_selection_the_rule_does_not_allow(testapp, doc, dbsession):
    h = token(testapp, "alice")
    ds, df = three_and_two(dbsession)
    res = testapp.post_json(API + "/submissions", {"job_type": COPY, "datasets": ds, "datafiles": df},
                            headers=h, status=400)  # fmt: skip
    check(doc, res, "/api/v1/submissions", "post")
    assert res.json["code"] == "wrong_inputs" and res.json["message"] == WORDS
    assert no_jobs(dbsession)
    res = testapp.post_json(
        API + "/submissions", {"job_type": COPY, "datasets": ds[:1]}, headers=h, status=400
    )
    assert (
        res.json["message"]
        == f"{COPY} needs exactly 1 dataset and 1 datafile; you selected 1 dataset and 0 datafiles"
    )
    assert no_jobs(dbsession)


def test_jm_refuses_it_in_the_originals_words(testapp, dbsession):
    sid = session(testapp, "alice")
    ds, df = three_and_two(dbsession)
    ids = (f"--datasetIds={','.join(map(str, ds))}", f"--datafileIds={','.join(map(str, df))}")
    err = submit(testapp, sid, COPY, *ids, status=400).json
    assert err == {"code": "ParameterException", "message": WORDS}
    assert no_jobs(dbsession)


def test_web_form_says_what_is_needed_and_the_server_refuses_it_too(alice, dbsession):
    ds, df = three_and_two(dbsession)
    select(alice, "dataset", ds)
    select(alice, "datafile", df)
    page = alice.get("/submit", {"jobtype": COPY})
    assert WORDS in page.text
    form = page.forms["job-form"]
    assert "disabled" in form.html.find("button", type="submit").attrs  # Submit disabled, with why
    assert 'id="submit-why"' in page.text and 'aria-describedby="submit-why"' in page.text
    assert "Copies one datafile into one dataset" in page.text  # the description on the form
    # a hand-made POST (carol's bypass of the disabled button) is refused with the same words
    res = alice.post("/submit", {"jobtype": COPY, "csrf_token": alice.get_csrf_token()}, status=400)
    assert WORDS in res.text
    assert no_jobs(dbsession)
    res = alice.htmx("POST", "/submit", {"jobtype": COPY}, status=400)
    assert WORDS in res.text and "<html" not in res.text
    assert no_jobs(dbsession)


def test_one_dataset_and_one_datafile_is_what_it_takes(alice, dbsession):
    ds, df = three_and_two(dbsession)
    select(alice, "dataset", ds[:1])
    select(alice, "datafile", df[:1])
    page = alice.get("/submit", {"jobtype": COPY})
    assert "needs exactly" not in page.text
    assert "disabled" not in page.forms["job-form"].html.find("button", type="submit").attrs
    alice.post("/submit", {"jobtype": COPY, "csrf_token": alice.get_csrf_token()}, status=303)
    assert not no_jobs(dbsession)
