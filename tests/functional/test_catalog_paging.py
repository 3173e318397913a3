"""The dataset search and a dataset's datafiles in keyset pages (issue 12, points 1, 2 and
the bad input it names), on every face: /api/v1 (each response checked against the
OpenAPI document), the search page and its htmx fragment, a dataset's page; a cursor that
was changed, is another user's or another search's is a 400 naming it and never shows
another user's rows; per_page above the most is capped and says so."""

from __future__ import annotations

import re

import pytest

from ijpweb.catalog import DatasetQuery
from ijpweb.catalog.embedded import EmbeddedCatalog

from .test_api import API, check, token
from .test_flow import dataset_ids


def walk(app, auth, doc, path, params, key):
    """Every page of a list, next by next: (items, the pages' answers)."""
    items, pages, cursor = [], [], None
    while True:
        res = app.get(API + path, {**params, **({"cursor": cursor} if cursor else {})}, headers=auth)
        got = check(doc, res, re.sub(r"/\d+", "/{dataset_id}", API + path), "get").json
        items += got[key]
        pages.append(got)
        cursor = got["next"]
        if cursor is None:
            return items, pages


def test_every_dataset_once_in_order_next_by_next_and_back(testapp, doc, dbsession):
    alice = token(testapp, "alice")
    items, pages = walk(testapp, alice, doc, "/datasets", {"per_page": 7}, "datasets")
    mine = dataset_ids(dbsession, investigation="LMF-2026-001") + dataset_ids(
        dbsession, investigation="LMF-2026-002"
    )
    assert sorted(d["id"] for d in items) == sorted(mine) and len(items) == len(mine) == 30
    keys = [(d["investigation"], d["name"]) for d in items]
    assert keys == sorted(keys)  # by investigation (the demo's are made in name order), then name
    assert [p["page"] for p in pages] == [1, 2, 3, 4, 5]
    assert {(p["total"], p["total_exact"]) for p in pages} == {(30, True)}  # carried from page 1
    assert pages[0]["previous"] is None and pages[-1]["next"] is None
    # back from page 3: page 2 again, and its previous is page 1's items
    back = testapp.get(API + "/datasets", {"per_page": 7, "cursor": pages[2]["previous"]}, headers=alice).json
    assert [d["id"] for d in back["datasets"]] == [d["id"] for d in pages[1]["datasets"]]
    assert back["page"] == 2
    first = testapp.get(API + "/datasets", {"per_page": 7, "cursor": back["previous"]}, headers=alice).json
    assert [d["id"] for d in first["datasets"]] == [d["id"] for d in pages[0]["datasets"]]
    assert first["previous"] is None
    # the next_url is the same list's next page
    assert (
        pages[0]["next_url"].endswith("cursor=" + pages[0]["next"]) and "per_page=7" in pages[0]["next_url"]
    )


def test_filters_hold_across_pages_and_file_counts_are_the_readable_ones(testapp, doc, dbsession):
    bob = token(testapp, "bob")
    items, _ = walk(testapp, bob, doc, "/datasets", {"per_page": 4, "type": "confocal"}, "datasets")
    assert {d["type"] for d in items} == {"confocal"}
    assert sorted(d["id"] for d in items) == sorted(
        dataset_ids(dbsession, "confocal", "LMF-2026-002")
        + dataset_ids(dbsession, "confocal", "LMF-2026-003")
    )
    one = items[0]
    files, _ = walk(testapp, bob, doc, f"/datasets/{one['id']}/datafiles", {"per_page": 100}, "datafiles")
    assert one["datafile_count"] == len(files) and one["datafile_size"] == sum(f["size"] for f in files)


def test_a_changed_cursor_is_a_400_naming_it_on_every_face(testapp, doc, alice):
    bob = token(testapp, "bob")
    page = testapp.get(API + "/datasets", {"per_page": 5}, headers=bob).json
    body, sig = page["next"].split(".")
    # the same position with one character of the signature changed, or of the body
    changed = [
        f"{body}.{sig[:-1]}{'A' if sig[-1] != 'A' else 'B'}",
        f"{body[:-1]}x.{sig}",
        "garbage",
        "a.b.c",
    ]
    for cursor in changed:
        res = testapp.get(API + "/datasets", {"cursor": cursor}, headers=bob, status=400)
        got = check(doc, res, "/api/v1/datasets", "get").json
        assert got["code"] == "bad_parameter" and list(got["fields"]) == ["cursor"]
        assert "not valid for this list" in got["message"]
    page_res = alice.get("/datasets", {"cursor": changed[0]}, status=400)
    assert "cursor" in page_res.text and "not valid for this list" in page_res.text
    frag = alice.htmx("GET", "/datasets", {"cursor": changed[0]}, status=400)
    assert "<html" not in frag.text or "not valid for this list" in frag.text


def test_carols_attack_with_bobs_cursor_shows_her_nothing_of_his(testapp, doc, dbsession):
    """carol takes the cursor of bob's page 1 (from a shared link): on her own session it is
    refused on the API, the page and the datafile list; she never sees bob's rows."""
    bob, carol = token(testapp, "bob"), token(testapp, "carol")
    bobs = testapp.get(API + "/datasets", {"per_page": 3}, headers=bob).json
    res = testapp.get(API + "/datasets", {"per_page": 3, "cursor": bobs["next"]}, headers=carol, status=400)
    assert check(doc, res, "/api/v1/datasets", "get").json["fields"] == {
        "cursor": res.json["fields"]["cursor"]
    }
    bobs_only = set(dataset_ids(dbsession, investigation="LMF-2026-002"))
    assert not bobs_only & {d["id"] for d in res.json.get("datasets", [])}
    # a datafile cursor of bob's dataset, on carol's session: refused, no datafile shown
    ds = next(iter(sorted(bobs_only)))
    files = testapp.get(f"{API}/datasets/{ds}/datafiles", {"per_page": 2}, headers=bob).json
    res = testapp.get(f"{API}/datasets/{ds}/datafiles", {"cursor": files["next"]}, headers=carol, status=400)
    assert "datafiles" not in res.json
    testapp.get(f"{API}/datasets/{ds}/datafiles", headers=carol, status=404)  # (without: not visible)
    # and a cursor of her own search (another scope) cannot carry her into another search
    mine = testapp.get(API + "/datasets", {"per_page": 2}, headers=carol).json
    other = testapp.get(
        API + "/datasets",
        {"per_page": 2, "type": "widefield", "cursor": mine["next"]},
        headers=carol,
        status=400,
    )
    assert list(other.json["fields"]) == ["cursor"]


def test_a_datafile_cursor_is_bound_to_its_dataset_and_name_search(testapp, doc, dbsession):
    bob = token(testapp, "bob")
    a, b = dataset_ids(dbsession, "lightsheet", "LMF-2026-002")[:2]
    page = testapp.get(f"{API}/datasets/{a}/datafiles", {"per_page": 2}, headers=bob).json
    for path, params in ((f"/datasets/{b}/datafiles", {}), (f"/datasets/{a}/datafiles", {"file": "t0"})):
        res = testapp.get(API + path, {**params, "cursor": page["next"]}, headers=bob, status=400)
        assert list(check(doc, res, "/api/v1/datasets/{dataset_id}/datafiles", "get").json["fields"]) == [
            "cursor"
        ]


def test_per_page_above_the_most_is_capped_and_says_so(testapp, doc):
    bob = token(testapp, "bob")
    res = testapp.get(API + "/datasets", {"per_page": 5000}, headers=bob)
    got = check(doc, res, "/api/v1/datasets", "get").json
    assert (
        got["per_page"] == 200
        and got["per_page_capped"] is True
        and res.headers["X-Per-Page-Capped"] == "200"
    )
    res = testapp.get(API + "/datasets", {"per_page": 200}, headers=bob)
    assert res.json["per_page_capped"] is False and "X-Per-Page-Capped" not in res.headers


def test_a_datasets_datafiles_in_pages_with_a_name_search(testapp, doc, dbsession):
    bob = token(testapp, "bob")
    ds = dataset_ids(dbsession, "lightsheet", "LMF-2026-002")[0]
    detail = check(
        doc,
        testapp.get(f"{API}/datasets/{ds}", {"per_page": 3}, headers=bob),
        "/api/v1/datasets/{dataset_id}",
        "get",
    ).json
    assert len(detail["datafiles"]) == 3 and detail["datafiles_next"]
    assert (
        detail["datafiles_next_url"].startswith("http")
        and f"/datasets/{ds}/datafiles?" in detail["datafiles_next_url"]
    )
    everything, _ = walk(testapp, bob, doc, f"/datasets/{ds}/datafiles", {"per_page": 3}, "datafiles")
    assert [f["name"] for f in everything] == sorted(f["name"] for f in everything)
    assert len(everything) == detail["datafiles_total"] == detail["datafile_count"]
    assert everything[:3] == detail["datafiles"]
    tifs, pages = walk(
        testapp, bob, doc, f"/datasets/{ds}/datafiles", {"per_page": 2, "file": ".TIF"}, "datafiles"
    )
    assert tifs and all(".tif" in f["name"] for f in tifs)  # case does not matter
    assert pages[0]["total"] == len(tifs)
    none = testapp.get(f"{API}/datasets/{ds}/datafiles", {"file": "%"}, headers=bob).json
    assert none["datafiles"] == [] and none["total"] == 0  # the wildcard is a character


def test_the_search_page_pages_by_cursor_and_keeps_the_filters(alice):
    page = alice.get("/datasets")
    nxt = re.search(r'href="([^"]+)"[^>]*rel="next"', page.text).group(1).replace("&amp;", "&")
    assert "cursor=" in nxt and "page=" not in nxt
    second = alice.get(nxt)
    assert "page 2." in second.text and "Counted when the search began." in second.text
    assert 'rel="prev"' in second.text and "First page" in second.text
    frag = alice.htmx("GET", "/datasets", {"type": "confocal"})
    assert "12 dataset(s)." in frag.text and 'rel="next"' not in frag.text  # 8 + 4: one page of 20


def test_datafile_selection_holds_across_the_pages_of_a_big_dataset(alice, dbsession):
    """A dataset's page shows 50 datafiles at a time; a datafile ticked on page 2 is in the
    selection and shown ticked when page 2 is shown again, and page 1's are not ticked."""
    from ijpweb.catalog import demo

    conn = dbsession.connection()
    demo.scale(
        conn, investigations=1, datasets_each=0, files_each=0, members={"alice": 1}, big_dataset_files=120
    )
    big = conn.exec_driver_sql("SELECT id FROM icat_dataset WHERE name = 'scale-big'").scalar()
    page1 = alice.get(f"/datasets/{big}")
    assert page1.text.count('aria-label="Select datafile') == 50 and "120" in page1.text
    nxt = re.search(r'href="([^"]+)"[^>]*rel="next"', page1.text).group(1).replace("&amp;", "&")
    page2 = alice.get(nxt)
    ids = re.findall(r'id="df-(\d+)"', page2.text)
    assert len(ids) == 50 and not set(ids) & set(re.findall(r'id="df-(\d+)"', page1.text))
    alice.htmx("POST", "/selection", {"action": "set", "kind": "datafile", "id": ids[3], "checked": "1"})
    again = alice.get(nxt)
    assert re.search(rf'id="df-{ids[3]}" name="checked" value="{ids[3]}" checked', again.text)
    assert not re.search(
        r'id="df-\d+" name="checked" value="\d+" checked', alice.get(f"/datasets/{big}").text
    )
    found = alice.htmx("GET", f"/datasets/{big}", {"file": "file-00011"})
    assert found.text.count('aria-label="Select datafile') == 1


@pytest.mark.parametrize("user", ["bob", "alice"])
def test_the_catalog_core_pages_match_a_plain_sort(dbsession, user):
    """Pages of every size, as the catalog gives them, concatenate to the whole list in the
    order, both ways (the keyset has no gap and no repeat, also at equal names)."""
    catalog = EmbeddedCatalog(dbsession, root_users={"db/alice"})
    sid = catalog.login("db", {"username": user, "password": f"{user}-demo"}).session_id
    whole = catalog.search_datasets(sid, DatasetQuery(per_page=200)).items
    assert [(d.investigation_id, d.name, d.id) for d in whole] == sorted(
        (d.investigation_id, d.name, d.id) for d in whole
    )
    for size in (1, 3, 8):
        got, page = [], catalog.search_datasets(sid, DatasetQuery(per_page=size))
        got += page.items
        while page.next:
            page = catalog.search_datasets(sid, DatasetQuery(per_page=size, after=page.next))
            got += page.items
        assert [d.id for d in got] == [d.id for d in whole]
        back, page = [], catalog.search_datasets(sid, DatasetQuery(per_page=size, before=(10**9, "", 0)))
        back = list(page.items)
        while page.previous:
            page = catalog.search_datasets(sid, DatasetQuery(per_page=size, before=page.previous))
            back = list(page.items) + back
        assert [d.id for d in back] == [d.id for d in whole]


def test_dataset_type_parameters_of_a_dataset_one_may_not_read_stay_hidden(dbsession, app):
    """carol asks the catalog for the dataset-type parameters of bob's datasets directly (as a
    selection naming them would): every value is null, although the queries check each
    candidate row against her rules (the rules' SELECTs use the same aliases as the query:
    a check that compared a row with itself would let every row through)."""
    from ijpweb.datasettypes import DatasetTypes

    types = DatasetTypes(app.registry.settings["ijp"].datasettypes_dir)
    catalog = EmbeddedCatalog(dbsession)
    bob = catalog.login("db", {"username": "bob", "password": "bob-demo"}).session_id
    carol = catalog.login("db", {"username": "carol", "password": "carol-demo"}).session_id
    bobs = catalog.datasets(bob, dataset_ids(dbsession, investigation="LMF-2026-002"))
    seen = catalog.job_parameters(bob, bobs, types.parameters_for)
    assert any(v is not None for values in seen.values() for v in values.values())
    hidden = catalog.job_parameters(carol, bobs, types.parameters_for)
    counts = {"numTiffFiles", "numHdfFiles", "numCsvFiles"}  # COUNTs: 0 when nothing is readable
    for values in hidden.values():
        assert all(v in (None, 0) if k in counts else v is None for k, v in values.items()), values


def test_a_parameter_of_an_entity_checked_row_by_row_stays_hidden_too(dbsession):
    """The same attack through an entity that does not hang from the dataset (Investigation:
    each candidate row is checked against the rules, authz.probe)."""
    from ijpweb.datasettypes import ParameterDef

    defs = [ParameterDef("invName", "Investigation.name <-> Dataset [id=${datasetId}]", "test.xml")]
    catalog = EmbeddedCatalog(dbsession)
    bob = catalog.login("db", {"username": "bob", "password": "bob-demo"}).session_id
    carol = catalog.login("db", {"username": "carol", "password": "carol-demo"}).session_id
    bobs = catalog.datasets(bob, dataset_ids(dbsession, investigation="LMF-2026-002")[:3])
    assert {v["invName"] for v in catalog.job_parameters(bob, bobs, lambda t: defs).values()} == {
        "LMF-2026-002"
    }
    assert {v["invName"] for v in catalog.job_parameters(carol, bobs, lambda t: defs).values()} == {None}


@pytest.mark.postgresql
def test_catalog_reads_are_planned_for_their_own_values_on_postgresql(dbsession):
    """psycopg prepares a statement run five times; a generic plan of a keyset page (made
    without the position) walked every file of the benchmark's 10,000-file dataset, past the
    5 s limit. Inside a catalog read, PostgreSQL plans each statement for its values; after
    it, the setting is as it was."""
    import sqlalchemy as sa

    from ijpweb.catalog.embedded import time_limit

    conn = dbsession.connection()
    mode = sa.select(sa.func.current_setting("plan_cache_mode"))
    before = conn.execute(mode).scalar()
    for seconds in (5, 0):
        with time_limit(conn, seconds):
            assert conn.execute(mode).scalar() == "force_custom_plan"
        assert conn.execute(mode).scalar() == before
