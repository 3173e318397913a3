"""Previews and names carol can no longer abuse (issue 13, carol's findings 3, 6, 7, 8, 9):
an HDF5 preview bounded whatever its types and read in a process of its own with limits;
thumbnails bounded in pixels, conversions at once and a server-side cache that never
answers a request the catalog would refuse; images revalidated on every use (nothing of
bob's usable from a shared browser's cache after logout); invisible and bidi characters
refused in datafile and dataset names."""

import functools
import io
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import sqlalchemy as sa
from PIL import Image

from ijpweb import datafiles, previews
from ijpweb.catalog.icatdb import TABLES as T
from ijpweb.catalog.ids import zip_entry

from .test_data import NOT_YOURS, bobs, carols, datafile, files_on, upload  # noqa: F401 - fixtures
from .test_outputs import jobs  # noqa: F401 - the fixture

ROOT = Path(__file__).resolve().parents[2]


# --- 3. HDF5 -------------------------------------------------------------------------------------

FIELDS = 700  # fits HDF5's 64 KB object header message
DATASETS = 8
ATTRS = 20


@functools.cache
def crafted_hdf5(datasets: int = DATASETS) -> bytes:
    """carol's: one committed compound type of 700 fields (~40 KB as str(dtype)) shared by
    8 datasets and their 20 attributes each: a 175 KB file."""
    dt = np.dtype([(f"f{i:04d}_" + "x" * 20, "i1") for i in range(FIELDS)])
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f["T"] = dt
        for g in range(datasets):
            d = f.create_dataset(f"d{g}", shape=(0,), dtype=f["T"])
            for a in range(ATTRS):
                d.attrs.create(f"a{a}", data=np.zeros((), dtype=dt), dtype=f["T"])
    return buf.getvalue()


def test_an_hdf5_preview_is_bounded_whatever_its_types(testapp, dbsession, carols):  # noqa: F811
    testapp.login("carol")
    data = crafted_hdf5()
    assert len(data) < 400_000
    upload(testapp, carols, [("types.h5", data)])
    df = datafile(dbsession, carols, "types.h5")
    # bob shares LMF-2026-003 and opens its preview in the dataset page (htmx), or its page
    testapp.reset()
    testapp.login("bob")
    frag = testapp.htmx("GET", f"/datafiles/{df}/preview")
    assert len(frag.body) < 1_000_000, f"a {len(data):,}-byte file gave a {len(frag.body):,}-byte preview"
    longest = max(len(line) for line in frag.text.splitlines())
    assert longest < 10_000, f"one line of the tree is {longest:,} characters"
    # described briefly, yet still saying what it is
    assert "compound, 700 fields (f0000_" in frag.text and "d7  dataset" in frag.text


def test_an_hdf5_tree_stops_at_its_text_bound():
    """Many objects with long (but bounded) lines: the whole text stops at MAX_HDF5_TEXT."""
    buf = io.BytesIO()
    dt = np.dtype([(f"field_{i}_" + "y" * 60, "f8") for i in range(10)])
    with h5py.File(buf, "w") as f:
        for g in range(60):
            d = f.create_dataset(f"{'n' * 100}{g}", shape=(1,), dtype=dt)
            for a in range(20):
                d.attrs.create(f"{'a' * 110}{a}", data=np.zeros((), dtype=dt))
    buf.seek(0)
    p = previews.hdf5_tree(buf, "wide.h5")
    assert len(p.text) <= previews.MAX_HDF5_TEXT
    assert max(len(line) for line in p.text.splitlines()) <= previews.MAX_LINE_CHARS + 2
    assert any("cut at 256 KB" in n for n in p.notes)


def _file(data: bytes):
    f = tempfile.TemporaryFile()  # noqa: SIM115 - returned open
    f.write(data)
    f.seek(0)
    return f


def test_the_hdf5_reader_is_another_process_that_a_time_limit_stops():
    """The tree is read by python -m ijpweb.hdf5_reader (a real process); one that takes
    too long is stopped and the preview says so, with the reason."""
    with _file(crafted_hdf5()) as f:
        p = datafiles.hdf5_preview(f, "types.h5")
    assert p.kind == "text" and "compound, 700 fields" in p.text
    with _file(crafted_hdf5()) as f:
        slow = datafiles.hdf5_preview(f, "types.h5", timeout=0.001)
    assert slow.kind == "none" and "cannot be shown" in slow.message and "time limit" in slow.message
    with _file(b"\x89HDF\r\n\x1a\n" + b"\xff" * 999) as f:
        damaged = datafiles.hdf5_preview(f, "bad.h5")
    assert damaged.kind == "none" and "cannot be shown" in damaged.message


def test_a_file_costly_to_describe_is_cut_after_its_time_and_says_so():
    """libhdf5 takes milliseconds to decode each attribute of the 700-field type (carol's
    4.6 MB file of 299 datasets x 20 attributes did not finish in 5 minutes before): the
    walk stops after its CPU time (MAX_HDF5_SECONDS in the portal; none at all here, so that
    the cut does not depend on how fast the machine is) and shows what it read."""
    p = previews.hdf5_tree(io.BytesIO(crafted_hdf5()), "types.h5", seconds=0)
    assert p.kind == "text" and "d7  dataset" not in p.text
    assert any("cut after 0 s of reading" in n for n in p.notes), p.notes


def test_hdf5_readers_beyond_the_ones_at_once_are_told_to_retry(monkeypatch):
    monkeypatch.setattr(datafiles, "CONVERSION_WAIT", 0.05)
    held = [datafiles._readers.acquire(timeout=5) for _ in range(datafiles.MAX_READERS)]
    assert all(held)
    try:
        with _file(crafted_hdf5()) as f:
            busy = datafiles.hdf5_preview(f, "types.h5")
    finally:
        for _ in held:
            datafiles._readers.release()
    assert busy.kind == "none" and "try again" in busy.message


def test_the_hdf5_reader_runs_under_limits_and_without_the_portals_environment(monkeypatch):
    """What the reader process runs with: its rlimits (memory, CPU, output size) and an
    environment that holds nothing of the portal's (a secret set here does not reach it)."""
    monkeypatch.setenv("IJP_TEST_SECRET", "catalog-session-1234")
    probe = textwrap.dedent(
        """
        import json, os, resource
        from ijpweb import hdf5_reader
        hdf5_reader.limit()
        print(json.dumps({
            "as": resource.getrlimit(resource.RLIMIT_AS)[0],
            "cpu": resource.getrlimit(resource.RLIMIT_CPU)[0],
            "fsize": resource.getrlimit(resource.RLIMIT_FSIZE)[0],
        }))
        try:
            bytearray(2 << 30)
            print("allocated")
        except MemoryError:
            print("refused")
        """
    )
    out = subprocess.run(
        [sys.executable, "-I", "-c", probe], capture_output=True, text=True, timeout=60, check=True, cwd="/"
    )
    first, second = out.stdout.splitlines()
    assert '"as": 1073741824' in first and '"cpu": 10' in first and '"fsize": 2097152' in first
    assert second == "refused"  # 2 GB is over the reader's address space
    # the portal's side: the environment it gives the reader
    seen = {}
    real_run = subprocess.run

    def run(argv, **kw):
        seen.update(argv=argv, env=kw["env"])
        return real_run(argv, **kw)

    monkeypatch.setattr(datafiles.subprocess, "run", run)
    with _file(crafted_hdf5()) as f:
        assert datafiles.hdf5_preview(f, "types.h5").kind == "text"
    assert seen["argv"][1:] == ["-I", "-m", "ijpweb.hdf5_reader"]
    assert "IJP_TEST_SECRET" not in seen["env"] and set(seen["env"]) <= {
        "PATH", "LANG", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"
    }  # fmt: skip


# --- 6. thumbnails ---------------------------------------------------------------------------------

MEASURE = textwrap.dedent(
    """
    import io, sys
    def hwm_mb():  # (VmHWM: this program's own peak; ru_maxrss starts at the parent's)
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    from ijpweb import previews
    from PIL import Image  # noqa: F401 - imported before the baseline
    data = open(sys.argv[1], "rb").read()
    before = hwm_mb()
    try:
        previews.thumbnail(io.BytesIO(data))
    except previews.PreviewError:
        pass  # refused: costs nothing
    print(len(data), hwm_mb() - before)
    """
)


@pytest.mark.parametrize("mode", ["F", "RGBA", "I;16"])
def test_a_small_file_never_costs_hundreds_of_megabytes_to_thumbnail(tmp_path, mode):
    tiff = tmp_path / "zeros.tif"
    if mode == "F":
        im = Image.fromarray(np.zeros((4000, 4000), dtype=np.float32), mode="F")
    elif mode == "RGBA":
        im = Image.new("RGBA", (4000, 4000))
    else:
        im = Image.fromarray(np.zeros((4000, 4000), dtype=np.uint16)).convert("I;16")
    im.save(tiff, "TIFF", compression="tiff_adobe_deflate")
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(tiff)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    size, grew_mb = (int(v) for v in out.stdout.split())
    assert size < 300_000
    assert grew_mb < 64, f"a {size:,}-byte TIFF took {grew_mb} MB more memory to thumbnail"


def test_a_thumbnail_decodes_fewer_pixels_than_a_preview():
    big = io.BytesIO()
    Image.new("L", (3000, 2000)).save(big, "PNG")  # 6 M pixels: a preview, not a thumbnail
    big.seek(0)
    with pytest.raises(previews.PreviewError, match="4,000,000 a thumbnail decodes"):
        previews.thumbnail(big)
    big.seek(0)
    assert Image.open(io.BytesIO(previews.image_to_png(big))).size == (1024, 683)
    # a JPEG is decoded at a fraction of its size (draft): 8000 x 4000 becomes a thumbnail
    jpeg = io.BytesIO()
    Image.new("RGB", (8000, 4000), "red").save(jpeg, "JPEG")
    jpeg.seek(0)
    assert Image.open(io.BytesIO(previews.thumbnail(jpeg))).size == (160, 80)


def test_thumbnails_beyond_the_conversions_at_once_are_told_to_retry(testapp, bobs, monkeypatch):  # noqa: F811
    testapp.login("bob")
    monkeypatch.setattr(datafiles, "CONVERSION_WAIT", 0.05)
    monkeypatch.setattr(datafiles, "PNGS", datafiles.PngCache())
    monkeypatch.setattr(datafiles.image_png, "__defaults__", ((), datafiles.PNGS))
    held = [datafiles._conversions.acquire(timeout=5) for _ in range(datafiles.MAX_CONVERSIONS)]
    assert all(held)
    try:
        res = testapp.get(f"/datafiles/{bobs['tif']}/thumbnail.png", status=503)
        assert res.headers["Retry-After"] == "2" and "try again" in res.text
    finally:
        for _ in held:
            datafiles._conversions.release()
    assert testapp.get(f"/datafiles/{bobs['tif']}/thumbnail.png").content_type == "image/png"


def test_the_thumbnail_cache_never_answers_carol_for_bobs_file(testapp, dbsession, bobs, monkeypatch):  # noqa: F811
    cache = datafiles.PngCache()
    monkeypatch.setattr(datafiles.image_png, "__defaults__", ((), cache))
    testapp.login("bob")
    url = f"/datafiles/{bobs['tif']}/thumbnail.png"
    first = testapp.get(url)
    assert len(cache.items) == 1 and next(iter(cache.items))[0] == bobs["tif"]
    again = testapp.get(url)  # from the cache: the same PNG
    assert again.body == first.body and len(cache.items) == 1
    # bob's browser revalidates: unchanged, a 304 without a body
    same = testapp.get(url, headers={"If-None-Match": first.headers["ETag"]}, status=304)
    assert same.body == b"" and same.headers["ETag"] == first.headers["ETag"]
    testapp.reset()
    testapp.login("carol")
    for headers in ({}, {"If-None-Match": first.headers["ETag"]}, {"If-None-Match": "*"}):
        refused = testapp.get(url, headers=headers, status=404)
        assert NOT_YOURS in refused.text and refused.body != first.body


def test_the_cache_holds_at_most_its_bytes():
    cache = datafiles.PngCache(most=1000)
    for i in range(10):
        cache.put((i, "d", 160), b"x" * 200)
    assert cache.used <= 1000 and len(cache.items) == 5
    assert cache.get((0, "d", 160)) is None and cache.get((9, "d", 160)) == b"x" * 200
    cache.put((99, "d", 160), b"y" * 400)  # more than a quarter of the cache: not kept
    assert cache.get((99, "d", 160)) is None


# --- 7. cache headers ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["thumbnail.png", "image.png"])
def test_bobs_images_are_not_reused_from_the_cache_without_asking(testapp, bobs, kind):  # noqa: F811
    testapp.login("bob")
    res = testapp.get(f"/datafiles/{bobs['tif']}/{kind}")
    cc = res.headers["Cache-Control"]
    assert "public" not in cc and "max-age" not in cc
    assert "no-store" in cc or "no-cache" in cc, f"Cache-Control: {cc}"
    assert res.headers["ETag"]


def test_a_jobs_preview_images_are_never_stored(jobs):  # noqa: F811
    carol, job, _, _ = jobs
    for name in ("picture.png", "frame.tif"):
        res = carol.get(f"/jobs/{job.id}/image", {"name": name})
        assert res.headers["Cache-Control"] == "private, no-store"


# --- 9. names that display as others -------------------------------------------------------------


@pytest.mark.parametrize(
    "name, code",
    [("report\u202efdp.exe", "U+202E"), ("a\u2066b.txt", "U+2066"), ("zero\u200bwidth.txt", "U+200B"),
     ("\ufeffbom.txt", "U+FEFF"), ("line\u2028sep.txt", "U+2028")],
)  # fmt: skip
def test_a_name_that_displays_as_another_is_refused(testapp, dbsession, carols, name, code):  # noqa: F811
    testapp.login("carol")
    res = upload(testapp, carols, [(name, b"MZ")], status="*")
    assert res.status_int == 400, f"{name!r} was stored ({res.status})"
    assert "file name" in res.text and code in res.text
    df = T["Datafile"]
    assert dbsession.connection().execute(sa.select(df.c.id).where(df.c.name == name)).first() is None


def test_a_dataset_name_that_displays_as_another_is_refused(testapp, dbsession):
    testapp.login("bob")
    inv = (
        dbsession.connection()
        .execute(sa.select(T["Investigation"].c.id).where(T["Investigation"].c.name == "LMF-2026-002"))
        .scalar()
    )
    form = {"csrf_token": testapp.get_csrf_token(), "investigation": str(inv), "type": "confocal"}
    res = testapp.post("/datasets/new", {**form, "name": "scan\u202e2gnp"}, status=400)
    assert 'id="nd-name-error"' in res.text and "U+202E" in res.text
    api = testapp.post_json("/api/v1/datasets", {"investigation": inv, "name": "a\u200bb", "type": "confocal"},
                            headers={"X-CSRF-Token": testapp.get_csrf_token()}, status=400)  # fmt: skip
    assert api.json["code"] and "name" in api.json["fields"] and "U+200B" in api.json["message"]


def test_names_from_elsewhere_are_shown_and_zipped_without_their_invisible_characters():
    """A name stored before (or through /icat) is never zipped with a bidi override."""
    assert zip_entry("LMF", "d\u202e", "report\u202efdp.exe") == "LMF/d_/report_fdp.exe"


def test_a_name_stored_elsewhere_is_shown_isolated_and_without_its_override(testapp, dbsession, bobs):  # noqa: F811
    """A name that came in before these checks (or through /icat): the dataset page and
    the preview show it in a <bdi>, its override as U+FFFD, never as "reportexe.pdf"."""
    df = T["Datafile"]
    dbsession.connection().execute(
        sa.update(df).where(df.c.id == bobs["txt"]).values(name="report\u202efdp.exe")
    )
    testapp.login("bob")
    page = testapp.get(f"/datasets/{bobs['dataset']}")
    assert "\u202e" not in page.text
    assert page.html.find("bdi", string="report\ufffdfdp.exe") is not None
    assert "Download report\ufffdfdp.exe" in page.text
    preview = testapp.get(f"/datafiles/{bobs['txt']}/preview")
    assert "\u202e" not in preview.text and preview.html.find("h1").bdi.text == "report\ufffdfdp.exe"


def test_a_download_of_such_a_name_is_not_saved_under_its_disguise(testapp, dbsession, bobs):  # noqa: F811
    df = T["Datafile"]
    dbsession.connection().execute(
        sa.update(df).where(df.c.id == bobs["txt"]).values(name="report\u202efdp.exe")
    )
    testapp.login("bob")
    res = testapp.get(f"/datafiles/{bobs['txt']}/download")
    assert res.headers["Content-Disposition"] == 'attachment; filename="report_fdp.exe"'
