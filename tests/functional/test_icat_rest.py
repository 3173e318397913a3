"""The ICAT REST face of the embedded catalog, as a job or another client uses it."""

import json

import pytest

from .test_flow import dataset_ids


@pytest.fixture
def sid(testapp):
    body = {"plugin": "db", "credentials": [{"username": "alice"}, {"password": "alice-demo"}]}
    res = testapp.post("/icat/session", {"json": json.dumps(body)})
    return res.json["sessionId"]


def test_session_lifecycle(testapp, sid):
    info = testapp.get(f"/icat/session/{sid}").json
    assert info["userName"] == "db/alice" and 100 < info["remainingMinutes"] <= 120
    testapp.put(f"/icat/session/{sid}", status=204)
    testapp.delete(f"/icat/session/{sid}", status=204)
    err = testapp.get(f"/icat/session/{sid}", status=403).json
    assert err["code"] == "SESSION"


def test_bad_logins(testapp):
    bad = {"plugin": "db", "credentials": [{"username": "alice"}, {"password": "nope"}]}
    assert testapp.post("/icat/session", {"json": json.dumps(bad)}, status=403).json["code"] == "SESSION"
    assert testapp.post("/icat/session", {"json": "{not json"}, status=400).json["code"] == "BAD_PARAMETER"


def test_version_and_properties(testapp):
    assert testapp.get("/icat/version").json["version"].startswith("6.")
    props = testapp.get("/icat/properties").json
    assert props["authenticators"][0]["mnemonic"] == "db"


def test_search_as_the_user(testapp, sid, dbsession):
    ids = dataset_ids(dbsession, investigation="LMF-2026-001")
    res = testapp.get(
        "/icat/entityManager", {"sessionId": sid, "query": "SELECT ds FROM Dataset ds ORDER BY ds.id"}
    )
    found = [r["Dataset"]["id"] for r in res.json]
    assert set(ids) <= set(found) and len(found) == 30  # alice's two investigations only
    assert "name" in res.json[0]["Dataset"] and "investigation" not in res.json[0]["Dataset"]
    res = testapp.get(
        "/icat/entityManager",
        {
            "sessionId": sid,
            "query": f"SELECT ds FROM Dataset ds WHERE ds.id = {ids[0]} INCLUDE ds.investigation",
        },
    )
    assert "investigation" in res.json[0]["Dataset"]
    count = testapp.get(
        "/icat/entityManager", {"sessionId": sid, "query": "SELECT COUNT(df) FROM Datafile df"}
    )
    assert count.json[0] > 0
    bad = testapp.get(
        "/icat/entityManager", {"sessionId": sid, "query": "SELECT ds FROM Datset ds"}, status=400
    )
    assert bad.json["code"] == "BAD_PARAMETER" and "at character 16" in bad.json["message"]


def test_create_what_jobs_write_as_the_rules_allow(testapp, sid, dbsession):
    (mine,) = dataset_ids(dbsession, investigation="LMF-2026-001")[:1]
    (theirs,) = dataset_ids(dbsession, investigation="LMF-2026-003")[:1]
    fmt = testapp.get(
        "/icat/entityManager",
        {"sessionId": sid, "query": "SELECT f.id FROM DatafileFormat f WHERE f.name = 'CSV'"},
    ).json[0]
    entities = {"Datafile": {"name": "result.csv", "dataset": {"id": mine}, "datafileFormat": {"id": fmt}}}
    (new_id,) = testapp.post("/icat/entityManager", {"sessionId": sid, "entities": json.dumps(entities)}).json
    found = testapp.get(
        "/icat/entityManager",
        {"sessionId": sid, "query": f"SELECT df FROM Datafile df WHERE df.id = {new_id}"},
    ).json
    assert found[0]["Datafile"]["name"] == "result.csv" and found[0]["Datafile"]["createId"] == "db/alice"
    # a collection with its links, inline
    coll = {"DataCollection": {"dataCollectionDatasets": [{"dataset": {"id": mine}}]}}
    assert testapp.post("/icat/entityManager", {"sessionId": sid, "entities": json.dumps(coll)}).json
    # another investigation's dataset: not even readable
    intrusion = {"Datafile": {"name": "x", "dataset": {"id": theirs}}}
    err = testapp.post(
        "/icat/entityManager", {"sessionId": sid, "entities": json.dumps(intrusion)}, status=403
    ).json
    assert err["code"] == "INSUFFICIENT_PRIVILEGES"
    for bad, code in [
        ({"Datafile": {"dataset": {"id": mine}}}, "VALIDATION"),
        ({"Datafile": {"name": "y", "colour": "red"}}, "BAD_PARAMETER"),
        ({"Rule": {"what": "Dataset", "crudFlags": "CRUD"}}, "INSUFFICIENT_PRIVILEGES"),
        ({"Datafile": {"name": "z", "dataset": {"id": 10**9}}}, "NO_SUCH_OBJECT_FOUND"),
    ]:
        res = testapp.post(
            "/icat/entityManager", {"sessionId": sid, "entities": json.dumps(bad)}, expect_errors=True
        )
        assert res.json["code"] == code, (bad, res.json)
