"""Fix O: a job's output listing and zip over any tree (hypothesis): exactly the regular
files whose path is text, reached without following a link, in the listing's order;
links, FIFOs and names that are not UTF-8 counted, never listed nor zipped; and a
subdirectory swapped for a link while the walk is inside the tree is never followed."""

import os
import shutil
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ijpweb import outputs
from ijpweb.catalog.ids import zip_stream

NAMES = st.sampled_from([b"a", b"b.txt", b"caf\xc3\xa9", b"caf\xe9", b"\xff", b"new\nline", b"z"])
LEAF = st.sampled_from(["file", "link", "fifo", "dirlink"])
TREE = st.recursive(
    st.dictionaries(NAMES, LEAF, max_size=4),
    lambda children: st.dictionaries(NAMES, children | LEAF, max_size=4),
    max_leaves=20,
)


def _make(d: bytes, tree: dict, outside: bytes) -> None:
    for name, kind in tree.items():
        p = os.path.join(d, name)
        if isinstance(kind, dict):
            os.mkdir(p)
            _make(p, kind, outside)
        elif kind == "file":
            with open(p, "wb") as fh:
                fh.write(name)
        elif kind == "link":
            os.symlink(os.path.join(outside, b"secret"), p)
        elif kind == "dirlink":
            os.symlink(outside, p)
        else:
            os.mkfifo(p)


def _expected(tree: dict, prefix: str = "") -> tuple[list[str], int, int]:
    """(the listed names in the walk's order, others, unnamed)."""
    files, others, unnamed, subdirs = [], 0, 0, []
    for name in sorted(tree, key=os.fsdecode):
        kind = tree[name]
        try:
            text = name.decode("utf-8")
        except UnicodeDecodeError:
            unnamed += 1
            continue
        if isinstance(kind, dict):
            subdirs.append((text, kind))
        elif kind == "file":
            files.append(prefix + text)
        else:
            others += 1
    for text, kind in subdirs:
        f, o, u = _expected(kind, f"{prefix}{text}/")
        files += f
        others += o
        unnamed += u
    return files, others, unnamed


@settings(max_examples=150, deadline=None)
@given(TREE)
def test_the_listing_and_zip_hold_exactly_the_showable_regular_files(tree):
    top = tempfile.mkdtemp()
    try:
        job = os.path.join(os.fsencode(top), b"1")
        out = os.path.join(job, b"output")
        outside = os.path.join(os.fsencode(top), b"bob")
        os.makedirs(out)
        os.mkdir(outside)
        with open(os.path.join(outside, b"secret"), "wb") as fh:
            fh.write(b"bob's")
        _make(out, tree, outside)
        files, others, unnamed = _expected(tree)
        found = outputs.list_outputs(Path(os.fsdecode(out)), base=Path(os.fsdecode(job)))
        assert [f.name for f in found.files] == files
        assert (found.total, found.others, found.unnamed) == (len(files), others, unnamed)
        zipped = []
        for n, opener in outputs.zip_entries(Path(os.fsdecode(out))):
            with opener() as fh:
                zipped.append((n, fh.read()))
        assert [n for n, _ in zipped] == files
        assert all(data == n.rsplit("/", 1)[-1].encode() for n, data in zipped)
        b"".join(zip_stream(outputs.zip_entries(Path(os.fsdecode(out)))))  # never breaks part-way
    finally:
        shutil.rmtree(top)


def test_a_subdirectory_swapped_for_a_link_mid_walk_is_never_followed(tmp_path, monkeypatch):
    """Every subdirectory is swapped for a link to bob's directory right after the walk
    has looked at it (when the walk yields the entry before it): none is entered."""
    out, bob = tmp_path / "output", tmp_path / "bob"
    bob.mkdir()
    (bob / "bob-secret").write_text("x")
    out.mkdir()
    for d in ("d1", "d2", "d3"):
        (out / d).mkdir()
        (out / d / "f").write_text("mine")
    (out / "a").write_text("a")
    walk = outputs._walk(out, None, 1000)
    seen = []
    for kind, name, *_ in walk:
        seen.append((kind, name))
        if name == "a":  # the top's entries are looked at: now swap each subdirectory
            for d in ("d1", "d2", "d3"):
                (out / d).rename(out / f"{d}.real")
                (out / d).symlink_to(bob)
    assert seen == [("file", "a"), ("other", "d1"), ("other", "d2"), ("other", "d3")]
