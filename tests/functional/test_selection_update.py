"""The no-JS selection contract (issue 13, point 8): POST /selection with action=update,
kind, every shown id and the ticked ones sets exactly those ids' state and returns to the
(normalised) back URL; htmx gets the run panel. The search results and a dataset's
datafile table both use it."""

import sqlalchemy as sa

from ijpweb.catalog.icatdb import TABLES as T
from ijpweb.models import WebSession

from .test_flow import dataset_ids, select


def _selection(dbsession):
    (ws,) = dbsession.scalars(sa.select(WebSession)).all()
    return ws.selection or {}


def _update(app, kind, shown, checked, back="/datasets", status=303, **extra):
    params = [("action", "update"), ("kind", kind), ("back", back), ("csrf_token", app.get_csrf_token())]
    params += [("shown", str(i)) for i in shown] + [("checked", str(i)) for i in checked]
    params += list(extra.items())
    return app.post("/selection", params, status=status)


def _datafile_ids(dbsession, dataset_id):
    df = T["Datafile"]
    q = sa.select(df.c.id).where(df.c.dataset_id == dataset_id).order_by(df.c.id)
    return list(dbsession.connection().execute(q).scalars())


def test_update_sets_exactly_the_shown_ids(alice, dbsession):
    ids = dataset_ids(dbsession, "confocal", "LMF-2026-001")[:5]
    select(alice, "dataset", [ids[0], ids[4]])  # ids[4] is not on the "page" below
    res = _update(alice, "dataset", shown=ids[:3], checked=[ids[1], ids[2]], back="/datasets?name=conf")
    assert res.headers["Location"] == "http://example.com/datasets?name=conf"
    assert set(_selection(dbsession)["datasets"]) == {ids[4], ids[1], ids[2]}  # ids[0] unticked
    _update(alice, "dataset", shown=ids[:3], checked=[])
    assert _selection(dbsession)["datasets"] == [ids[4]]
    # a ticked id that was not shown changes nothing
    _update(alice, "dataset", shown=[ids[1]], checked=[ids[3]])
    assert _selection(dbsession)["datasets"] == [ids[4]]
    page = alice.get("/datasets")
    assert "Selected (1)" in page.text


def test_update_of_datafiles_leaves_datasets_alone(alice, dbsession):
    ds = dataset_ids(dbsession, "confocal", "LMF-2026-001")[0]
    files = _datafile_ids(dbsession, ds)[:3]
    select(alice, "dataset", [ds])
    _update(alice, "datafile", shown=files, checked=files[1:], back=f"/datasets/{ds}")
    sel = _selection(dbsession)
    assert sel["datasets"] == [ds] and sel["datafiles"] == files[1:]


def test_update_by_htmx_answers_with_the_run_panel(alice, dbsession):
    ids = dataset_ids(dbsession, "confocal", "LMF-2026-001")[:2]
    res = alice.htmx(
        "POST", "/selection", [("action", "update"), ("kind", "dataset"), ("shown", str(ids[0])),
                               ("shown", str(ids[1])), ("checked", str(ids[1]))],
    )  # fmt: skip
    assert res.status_int == 200 and 'id="run-panel"' in res.text and "Selected (1)" in res.text


def test_update_bad_input_is_a_400_naming_the_field(alice, dbsession):
    ids = dataset_ids(dbsession, "confocal", "LMF-2026-001")[:1]
    select(alice, "dataset", ids)
    res = _update(alice, "dataset", shown=range(1, 202), checked=[], status=400)
    assert "shown" in res.text and "at most 200" in res.text
    res = _update(alice, "dataset", shown=[1], checked=range(1, 202), status=400)
    assert "checked" in res.text
    res = _update(alice, "dataset", shown=["x"], checked=[], status=400)
    assert "shown must be a whole number" in res.text
    res = _update(alice, "dataset", shown=[1], checked=["0"], status=400)
    assert "checked must be a whole number" in res.text
    res = _update(alice, "table", shown=[1], checked=[], status=400)
    assert "kind must be dataset or datafile" in res.text
    assert _selection(dbsession)["datasets"] == ids  # nothing changed by any of them
    _update(alice, "dataset", shown=range(1, 201), checked=[])  # 200 is fine


def test_carol_cannot_send_bob_anywhere_else(alice, dbsession):
    """back= leads only to a path under the portal: another host, //host, a backslash."""
    ids = dataset_ids(dbsession, "confocal", "LMF-2026-001")[:1]
    for back in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "/%5cevil", "javascript:x"):
        res = _update(alice, "dataset", shown=ids, checked=ids, back=back)
        assert res.headers["Location"] == "http://example.com/submit", back
    res = _update(alice, "dataset", shown=ids, checked=ids, back="/jobs/../datasets?x=1")
    assert res.headers["Location"] == "http://example.com/datasets?x=1"


def test_other_peoples_datasets_are_not_revealed(alice, dbsession):
    """Bob's dataset ids ticked by alice: kept as the single add keeps them (shown as not
    visible, by number only) and refused at submission; the name never appears."""
    bobs = dataset_ids(dbsession, investigation="LMF-2026-003")[:2]
    ds = T["Dataset"]
    names = list(dbsession.connection().execute(sa.select(ds.c.name).where(ds.c.id.in_(bobs))).scalars())
    res = _update(alice, "dataset", shown=bobs, checked=bobs, back="/submit").follow()
    assert "no longer visible to you" in res.text and "Selected (0)" in res.text
    for name in names:
        assert name not in res.text
    res = alice.post(
        "/submit",
        {"jobtype": "Test args - single dataset or datafile", "csrf_token": alice.get_csrf_token()},
        status=400,
    )
    assert f"dataset {bobs[0]}" in res.text and "not visible" in res.text
    for name in names:
        assert name not in res.text
