"""IDS prepared ids (issue 11, part X round 2, findings R2-2 and R2-3): carol cannot pile
up prepared ids (a cap per catalog user, ijp.ids.max_prepared, refused in IDS's JSON), and
a prepared id dies with its catalog session (isPrepared, getData: not found at once)."""

import sqlalchemy as sa

from ijpweb.models.catalog import PreparedData

from .test_ids import icat_login, ids_error, scene, session_of  # noqa: F401 - scene: the fixture

CAP = 100  # ijp.ids.max_prepared's default (the test settings leave it)


def _count(dbsession, sid):
    return dbsession.scalar(
        sa.select(sa.func.count()).select_from(PreparedData).where(PreparedData.catalog_session == sid)
    )


def _prepare(testapp, sid, ds):
    return testapp.post("/ids/prepareData", {"sessionId": sid, "datasetIds": str(ds)}, expect_errors=True)


def test_carol_cannot_pile_up_prepared_ids(testapp, scene, dbsession, app):  # noqa: F811
    assert app.registry["ijp.prepared"].max_live == CAP
    carol, ds = scene["carol"], scene["carols_dataset"]
    before = _count(dbsession, carol)
    refused = []
    for _ in range(CAP + 20):
        r = _prepare(testapp, carol, ds)
        assert r.status_int < 500, r.text
        if r.status_int >= 400:
            refused.append(ids_error(r, 400, "BadRequestException"))
    assert _count(dbsession, carol) - before == CAP
    assert len(refused) == 20
    assert "ijp.ids.max_prepared" in refused[0] and str(CAP) in refused[0]
    assert carol not in refused[0]  # a session id is a credential
    # a new login of hers does not start a new allowance: the cap is per user
    again = session_of(dbsession, "carol")
    ids_error(_prepare(testapp, again, ds), 400, "BadRequestException")
    # bob is not held by carol's ids
    bob_ds = scene["bob_df"]  # any id bob may read: his datafile
    r = testapp.post("/ids/prepareData", {"sessionId": scene["bob"], "datafileIds": str(bob_ds)})
    assert r.status_int == 200 and r.text


def test_ids_of_an_ended_session_do_not_count(testapp, scene, dbsession):  # noqa: F811
    ds = scene["carols_dataset"]
    sid = icat_login(testapp, "carol")
    for _ in range(CAP):
        assert _prepare(testapp, sid, ds).status_int == 200
    ids_error(_prepare(testapp, sid, ds), 400, "BadRequestException")
    testapp.delete(f"/icat/session/{sid}")
    fresh = icat_login(testapp, "carol")
    assert _prepare(testapp, fresh, ds).status_int == 200


def test_is_prepared_is_false_once_the_session_has_logged_out(testapp, scene, dbsession):  # noqa: F811
    sid = icat_login(testapp, "carol")
    pid = testapp.post(
        "/ids/prepareData", {"sessionId": sid, "datasetIds": str(scene["carols_dataset"])}
    ).text
    assert testapp.get("/ids/isPrepared", {"preparedId": pid}).text == "true"
    testapp.delete(f"/icat/session/{sid}")
    ids_error(
        testapp.get("/ids/isPrepared", {"preparedId": pid}, expect_errors=True), 404, "NotFoundException"
    )
    ids_error(testapp.get("/ids/getData", {"preparedId": pid}, expect_errors=True), 404, "NotFoundException")


def test_a_prepared_id_of_an_expired_session_is_not_found(testapp, scene, dbsession):  # noqa: F811
    from datetime import timedelta

    from ijpweb.models import CatalogSession, utcnow

    sid = session_of(dbsession, "carol")
    pid = testapp.post(
        "/ids/prepareData", {"sessionId": sid, "datasetIds": str(scene["carols_dataset"])}
    ).text
    dbsession.get(CatalogSession, sid).expires_at = utcnow() - timedelta(seconds=1)
    dbsession.flush()
    ids_error(
        testapp.get("/ids/isPrepared", {"preparedId": pid}, expect_errors=True), 404, "NotFoundException"
    )
