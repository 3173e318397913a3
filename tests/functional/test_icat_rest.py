"""The ICAT REST face of the embedded catalog, as a job or another client uses it."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .test_flow import dataset_ids
from .test_jpql import QUERY_WORDS, nested_queries


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


# --- bounded queries (issue 10, points 5 and 8), as carol attacking everyone else ----------

# Each hop through Dataset.datafiles multiplies the rows by about 13 (545 datafiles).
CROSS = "SELECT df FROM Datafile df JOIN df.dataset ds JOIN ds.datafiles d2 JOIN d2.dataset ds2 JOIN ds2.datafiles d3"


def search(testapp, sid, query, status=200):
    return testapp.get("/icat/entityManager", {"sessionId": sid, "query": query}, status=status).json


def test_max_entities_is_enforced_as_icat_does(testapp, sid):
    assert testapp.get("/icat/properties").json["maxEntities"] == 10_000
    err = search(testapp, sid, CROSS, status=400)
    assert err == {"code": "VALIDATION", "message": "attempt to process more than 10000 entities"}
    # values count as ICAT counts them; a LIMIT within maxEntities is answered
    err = search(testapp, sid, CROSS.replace("SELECT df ", "SELECT df.name "), status=400)
    assert err["code"] == "VALIDATION"
    assert len(search(testapp, sid, CROSS + " LIMIT 0, 10")) == 10
    assert len(search(testapp, sid, CROSS + " LIMIT 5, 10000")) == 10_000
    assert search(testapp, sid, CROSS + " LIMIT 0, 20000", status=400)["code"] == "VALIDATION"
    # the concise syntax too
    concise = "Datafile <-> Dataset <-> Investigation <-> InvestigationUser <-> User"
    assert len(search(testapp, sid, concise)) > 0
    # and the session still works
    assert search(testapp, sid, "SELECT COUNT(ds) FROM Dataset ds") == [30]


@pytest.mark.parametrize(
    "query, limit",
    [
        ("SELECT ds FROM Dataset ds WHERE " + "(" * 3000 + "ds.id = 1" + ")" * 3000, "query_max_depth"),
        ("SELECT ds FROM Dataset ds WHERE " + "NOT " * 4000 + "ds.id = 1", "query_max_depth"),
        ("SELECT ds FROM Dataset ds WHERE ds.name IN (" + ", ".join(["'x'"] * 25_000) + ")", "query_max_length"),
        ("SELECT COUNT(ds) FROM Dataset ds "
         + " ".join(f"JOIN {a}.investigation i{n} JOIN i{n}.datasets d{n}"
                    for n, a in enumerate(["ds"] + [f"d{n}" for n in range(24)])), "query_max_joins"),
        (f"SELECT ds FROM Dataset ds LIMIT 0, {2**63}", "out of range"),
        (f"SELECT ds FROM Dataset ds LIMIT {2**63}, 1", "out of range"),
        (f"SELECT ds FROM Dataset ds WHERE ds.id = {10**40}", "out of range"),
    ],
)  # fmt: skip
def test_oversized_queries_are_bad_parameters_naming_the_limit(testapp, sid, query, limit):
    res = testapp.get("/icat/entityManager", {"sessionId": sid, "query": query}, status=400)
    assert res.content_type == "application/json"
    assert res.json["code"] == "BAD_PARAMETER" and limit in res.json["message"]
    assert search(testapp, sid, "SELECT COUNT(ds) FROM Dataset ds") == [30]


def test_what_the_database_refuses_is_a_bad_parameter(testapp, sid):
    """PostgreSQL refuses a name compared with a number (SQLite compares them): either way
    an answer or ICAT's BAD_PARAMETER, never a 500, and the transaction goes on."""
    for query in (
        "SELECT ds FROM Dataset ds WHERE ds.name = 5",
        "SELECT ds FROM Dataset ds WHERE ds.id = 'five'",
        "SELECT SUM(ds.name) FROM Dataset ds",
        "SELECT ds FROM Dataset ds WHERE ds.createTime > 5",
    ):
        res = testapp.get("/icat/entityManager", {"sessionId": sid, "query": query}, expect_errors=True)
        assert res.status_int == 200 or res.json["code"] == "BAD_PARAMETER", (query, res.status, res.text)
        assert search(testapp, sid, "SELECT COUNT(ds) FROM Dataset ds") == [30]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.one_of(
        st.text(max_size=120),
        st.lists(st.sampled_from(QUERY_WORDS), max_size=30).map(" ".join),
        nested_queries(),
    )
)
def test_any_query_is_an_answer_or_an_icat_error(testapp, sid, query):
    res = testapp.get("/icat/entityManager", {"sessionId": sid, "query": query}, expect_errors=True)
    assert res.content_type == "application/json"
    if res.status_int == 200:
        assert isinstance(res.json, list)
    else:
        assert res.status_int == 400 and res.json["code"] in ("BAD_PARAMETER", "VALIDATION"), res.text
