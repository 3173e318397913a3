"""Issue 5, point 1: datasets, the options that apply to a selection, tags, where a job
ran, and resubmitting (point 5) through /api/v1; every response checked against the
OpenAPI document."""

import socket

from ijpweb.models import Job

from .test_api import API, check, token
from .test_flow import dataset_ids, wait_for


def test_datasets_are_searched_and_read_as_the_user_sees_them(testapp, doc, dbsession):
    bob = token(testapp, "bob")
    page = testapp.get(API + "/datasets", {"type": "confocal", "per_page": 3}, headers=bob)
    found = check(doc, page, "/api/v1/datasets", "get").json
    visible = dataset_ids(dbsession, "confocal", "LMF-2026-002") + dataset_ids(
        dbsession, "confocal", "LMF-2026-003"
    )
    assert found["total"] == len(visible) and len(found["datasets"]) == 3
    assert {d["type"] for d in found["datasets"]} == {"confocal"}
    assert {d["id"] for d in found["datasets"]} <= set(visible)
    one = found["datasets"][0]
    detail = check(
        doc, testapp.get(f"{API}/datasets/{one['id']}", headers=bob), "/api/v1/datasets/{dataset_id}", "get"
    )
    d = detail.json
    assert d["name"] == one["name"] and len(d["datafiles"]) == d["datafile_count"]
    nchannels = [p["value"] for p in d["parameters"] if p["name"] == "nchannels"]
    assert d["job_parameters"]["numChannels"] == (nchannels[0] if nchannels else None)
    # a dataset of alice's investigation only: as if it did not exist
    alices = dataset_ids(dbsession, "confocal", "LMF-2026-001")[0]
    gone = testapp.get(f"{API}/datasets/{alices}", headers=bob, status=404)
    assert check(doc, gone, "/api/v1/datasets/{dataset_id}", "get").json["code"] == "not_found"
    assert testapp.get(API + "/datasets", {"per_page": "x"}, headers=bob, status=400).json["fields"] == {
        "per_page": "must be a whole number from 1 to 1000000"
    }


def test_the_options_for_a_selection_follow_the_dataset_parameters(testapp, doc, dbsession):
    bob = token(testapp, "bob")
    ids = dataset_ids(dbsession, "confocal", "LMF-2026-002") + dataset_ids(
        dbsession, "confocal", "LMF-2026-003"
    )
    path = "/api/v1/jobtypes/{name}/options"
    seen = set()
    for ds in ids[:6]:
        got = check(doc, testapp.get(f"{API}/jobtypes/Test Options/options", {"datasets": str(ds)}, headers=bob),
                    path, "get").json  # fmt: skip
        channels = got["parameters"][str(ds)]["numChannels"]
        names = [o["name"] for o in got["options"]]
        assert got["fits"] and ("Unmix channels" in names) == (channels is not None and channels > 1)
        assert set(got["defaults"]) <= {o.get("groupName", o["name"]) for o in got["options"]}
        seen.add("Unmix channels" in names)
    assert seen == {True, False}, "the demo has confocal datasets with one channel and with several"
    both = testapp.get(
        f"{API}/jobtypes/Test Options/options", {"datasets": f"{ids[0]},{ids[1]}"}, headers=bob
    )
    assert both.json["choice"] == "mode"
    single = testapp.get(
        f"{API}/jobtypes/Test args - single dataset or datafile/options", {"datasets": f"{ids[0]},{ids[1]}"},
        headers=bob,
    ).json  # fmt: skip
    assert single["choice"] == "confirm"
    assert testapp.get(f"{API}/jobtypes/Nope/options", headers=bob, status=404).json["code"] == "not_found"
    bad = testapp.get(f"{API}/jobtypes/Date/options", {"datasets": "1;2"}, headers=bob, status=400)
    assert check(doc, bad, path, "get").json["fields"] == {"datasets": "not a list of ids"}
    alices = dataset_ids(dbsession, "confocal", "LMF-2026-001")[0]
    hidden = testapp.get(f"{API}/jobtypes/Date/options", {"datasets": str(alices)}, headers=bob, status=404)
    assert hidden.json == {
        "code": "not_found",
        "message": f"not found or not visible to you: dataset {alices}",
    }


def test_tags_are_given_at_submission_edited_later_and_filter_the_list(testapp, doc, dbsession, backends):
    bob = token(testapp, "bob")
    ds = dataset_ids(dbsession, "confocal", "LMF-2026-002")[:2]
    body = {"job_type": "Test args - multiple datasets or datafiles", "datasets": ds, "mode": "each",
            "tags": ["run-7", "calib", "run-7"]}  # fmt: skip
    sub = testapp.post_json(API + "/submissions", body, headers=bob, status=201).json
    assert [j["tags"] for j in sub["jobs"]] == [["calib", "run-7"], ["calib", "run-7"]]
    other = testapp.post_json(API + "/submissions", {"job_type": "Date"}, headers=bob, status=201).json
    first, second = (j["id"] for j in sub["jobs"])
    tagged = check(doc, testapp.get(API + "/jobs", {"tag": "calib"}, headers=bob), "/api/v1/jobs", "get").json
    assert {j["id"] for j in tagged["jobs"]} == {first, second} and tagged["total"] == 2
    resp = testapp.put_json(f"{API}/jobs/{first}/tags", {"tags": ["final"]}, headers=bob)
    assert check(doc, resp, "/api/v1/jobs/{job_id}/tags", "put").json["tags"] == ["final"]
    assert [j["id"] for j in testapp.get(API + "/jobs", {"tag": "calib"}, headers=bob).json["jobs"]] == [
        second
    ]
    assert [j["id"] for j in testapp.get(API + "/jobs", {"tag": "final"}, headers=bob).json["jobs"]] == [
        first
    ]
    bad = testapp.put_json(f"{API}/jobs/{first}/tags", {"tags": ["two words"]}, headers=bob, status=422)
    assert (
        check(doc, bad, "/api/v1/jobs/{job_id}/tags", "put")
        .json["fields"]["tags"]
        .startswith("tag 'two words'")
    )
    assert dbsession.get(Job, first).tags == ["final"]  # unchanged by the refusal
    missing = testapp.put_json(f"{API}/jobs/{first}/tags", {}, headers=bob, status=400)
    assert missing.json["fields"] == {"tags": "required"} and dbsession.get(Job, first).tags == ["final"]
    # a misspelt field is named as such (issue 11, point 3), not taken for a missing one
    typo = testapp.put_json(f"{API}/jobs/{first}/tags", {"tag": ["typo"]}, headers=bob, status=400)
    assert typo.json["fields"] == {"tag": "no such field (did you mean 'tags'?)"}
    assert dbsession.get(Job, first).tags == ["final"]
    refused = testapp.post_json(
        API + "/submissions", {"job_type": "Date", "tags": ["a" * 65]}, headers=bob, status=422
    )
    assert refused.json["code"] == "invalid_tags"
    # alice can neither see bob's tags nor change them
    alice = token(testapp, "alice")
    assert testapp.get(API + "/jobs", {"tag": "final"}, headers=alice).json["total"] == 0
    testapp.put_json(f"{API}/jobs/{first}/tags", {"tags": ["mine"]}, headers=alice, status=404)
    assert dbsession.get(Job, first).tags == ["final"]
    # a deleted job takes its tags with it
    wait_for(dbsession, backends, [first, second, other["jobs"][0]["id"]])
    testapp.delete(f"{API}/jobs/{first}", headers=bob, status=204)
    assert testapp.get(API + "/jobs", {"tag": "final"}, headers=bob).json["total"] == 0


def test_a_finished_job_says_where_it_ran(testapp, doc, dbsession, backends):
    bob = token(testapp, "bob")
    job_id = testapp.post_json(API + "/submissions", {"job_type": "Date"}, headers=bob, status=201).json[
        "jobs"
    ][0]["id"]
    wait_for(dbsession, backends, [job_id])
    job = check(doc, testapp.get(f"{API}/jobs/{job_id}", headers=bob), "/api/v1/jobs/{job_id}", "get").json
    assert job["nodes"] == 1 and job["hosts"] == socket.gethostname() and job["cores"] >= 1
    page = testapp.get(f"/jobs/{job_id}", headers=bob).text
    assert f"1 node ({socket.gethostname()})" in page


def test_resubmit_like_a_job_with_changes(testapp, doc, dbsession, backends):
    bob = token(testapp, "bob")
    ds = dataset_ids(dbsession, "confocal", "LMF-2026-002")[:2]
    body = {"job_type": "Test Options", "datasets": ds, "mode": "single", "tags": ["v1"],
            "options": {"Index": "3", "Origin": "1.5"}}  # fmt: skip
    first = testapp.post_json(API + "/submissions", body, headers=bob, status=201).json["jobs"][0]
    again = testapp.post_json(API + "/submissions", {"like": first["id"]}, headers=bob, status=201)
    same = check(doc, again, "/api/v1/submissions", "post").json["jobs"]
    assert len(same) == 1
    for key in ("job_type", "dataset_ids", "datafile_ids", "options", "tags", "command"):
        assert same[0][key] == first[key], key
    changed = testapp.post_json(
        API + "/submissions", {"like": first["id"], "options": {"Index": "4", "Origin": None}, "tags": ["v2"]},
        headers=bob, status=201,
    ).json["jobs"][0]  # fmt: skip
    # Index changed, Origin back to its default, the rest as before
    assert changed["options"] == first["options"] | {"Index": "4", "Origin": "0.0"}
    assert changed["tags"] == ["v2"] and changed["dataset_ids"] == first["dataset_ids"]
    # a bad change is refused naming the field, like any submission
    bad = testapp.post_json(API + "/submissions", {"like": first["id"], "options": {"Index": "99"}}, headers=bob,
                            status=422).json  # fmt: skip
    assert "Index" in bad["fields"]
    # only your own jobs
    alice = token(testapp, "alice")
    nope = testapp.post_json(API + "/submissions", {"like": first["id"]}, headers=alice, status=404).json
    assert nope["code"] == "not_found"
    assert testapp.post_json(API + "/submissions", {"like": "x"}, headers=bob, status=400).json["fields"] == {
        "like": "a job id"
    }
