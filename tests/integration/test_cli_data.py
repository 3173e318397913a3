"""ijp download, ijp upload and ijp mkdataset (issue 13, point 5), run as a user runs them
(the installed console script, its own process) against the portal on waitress: bytes
compared with what IDS holds; carol gets bob's data refused."""

import zipfile

import pytest
import sqlalchemy as sa

from ijpweb.catalog.icatdb import TABLES as T

from .test_cli import IJP, ijp  # noqa: F401 - the fixture

pytestmark = [
    pytest.mark.once,
    pytest.mark.skipif(IJP is None, reason="the ijp console script is not installed (pip install -e .)"),
]


def _login(ijp, user):  # noqa: F811
    ijp("login", "--url", ijp.url, "db", "username", user, "password", "-", stdin=f"{user}-demo\n")


def _files(engine, investigation, name):
    df, ds, inv = T["Datafile"], T["Dataset"], T["Investigation"]
    with engine.connect() as conn:
        return conn.execute(
            sa.select(df.c.id, ds.c.id)
            .join(ds, df.c.dataset_id == ds.c.id)
            .join(inv, ds.c.investigation_id == inv.c.id)
            .where(inv.c.name == investigation, df.c.name == name)
            .order_by(df.c.id)
        ).all()


def test_download_upload_and_mkdataset_as_bob(ijp, live_server, tmp_path):  # noqa: F811
    _url, engine = live_server
    _login(ijp, "bob")
    (csv, ds), (csv2, _) = _files(engine, "LMF-2026-002", "intensities.csv")[:2]
    out = tmp_path / "out"
    out.mkdir()
    saved = ijp("download", str(csv), "-o", str(out)).stdout.strip()
    assert saved == str(out / "intensities.csv")
    first = (out / "intensities.csv").read_bytes()
    assert first.startswith(b"frame,channel,mean_intensity")
    # another datafile of the same name: refused without --force, the first kept whole
    again = ijp("download", str(csv2), "-o", str(out), expect=5)
    assert "intensities.csv exists: give --force" in again.stderr
    assert (out / "intensities.csv").read_bytes() == first
    assert [p.name for p in out.iterdir()] == ["intensities.csv"]  # no partial file left
    ijp("download", str(csv2), "-o", str(out), "--force")
    assert (out / "intensities.csv").read_bytes() != first
    ijp("download", str(csv2), "-o", str(out / "two.csv"))
    assert (out / "two.csv").read_bytes().startswith(b"frame,channel")
    ijp("download", "--dataset", str(ds), "-o", str(tmp_path / "ds.zip"))
    names = zipfile.ZipFile(tmp_path / "ds.zip").namelist()
    assert any(n.endswith("/intensities.csv") for n in names)
    # a new dataset, and files into it
    made = ijp("mkdataset", "LMF-2026-002", "cli-made", "--type", "confocal", "--json")
    new_id = __import__("json").loads(made.stdout)["id"]
    a, b = tmp_path / "a.txt", tmp_path / "b.bin"
    a.write_text("alpha\n")
    b.write_bytes(bytes(range(256)) * 1000)
    up = ijp("upload", str(new_id), str(a), str(b))
    assert "a.txt" in up.stdout and "b.bin" in up.stdout
    back = tmp_path / "back"
    back.mkdir()
    ids = [int(line.split("datafile ")[1].split()[0]) for line in up.stdout.splitlines()]
    ijp("download", *map(str, ids), "-o", str(back))
    assert (back / "a.txt").read_text() == "alpha\n" and (back / "b.bin").read_bytes() == b.read_bytes()
    dup = ijp("upload", str(new_id), str(a), expect=5)
    assert "already has a datafile named 'a.txt'" in dup.stderr
    bad = ijp("mkdataset", "LMF-2026-002", "x", "--type", "nope", expect=1)
    assert "confocal" in bad.stderr


def test_carol_cannot_download_or_upload_bobs(ijp, live_server, tmp_path):  # noqa: F811
    _url, engine = live_server
    _login(ijp, "carol")
    (csv, ds), *_ = _files(engine, "LMF-2026-002", "intensities.csv")
    out = tmp_path / "out"
    out.mkdir()
    got = ijp("download", str(csv), "-o", str(out), expect=4)
    assert got.stderr == f"ijp: not found or not visible to you: datafile {csv}\n"
    ijp("download", "--dataset", str(ds), "-o", str(out / "x.zip"), expect=4)
    assert list(out.iterdir()) == []
    f = tmp_path / "f.txt"
    f.write_text("carol")
    assert "not found or not visible to you: dataset" in ijp("upload", str(ds), str(f), expect=4).stderr
    assert (
        "not found or not visible"
        in ijp("mkdataset", "LMF-2026-002", "c", "--type", "confocal", expect=4).stderr
    )
