"""Thumbnails and HDF5 trees of datafiles (ijpweb.previews, part X): bounded, never a
crash on hostile files."""

import io
import struct

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from ijpweb import previews
from ijpweb.previews import PreviewError, hdf5_tree, thumbnail


def _png(w, h, mode="RGB"):
    out = io.BytesIO()
    Image.new(mode, (w, h), 128).save(out, "PNG")
    return out.getvalue()


def _h5(build, **kw) -> io.BytesIO:
    buf = io.BytesIO()
    with h5py.File(buf, "w", **kw) as f:
        build(f)
    buf.seek(0)
    return buf


def test_thumbnail_is_a_small_png():
    png = thumbnail(io.BytesIO(_png(800, 400)))
    im = Image.open(io.BytesIO(png))
    assert im.format == "PNG" and max(im.size) == previews.THUMB_SIDE and im.size[0] == 2 * im.size[1]


def test_thumbnail_of_a_16_bit_tiff():
    out = io.BytesIO()
    Image.fromarray(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 16).save(out, "TIFF")
    out.seek(0)
    assert Image.open(io.BytesIO(thumbnail(out))).size == (64, 64)


def _bomb_png(side: int) -> bytes:
    """A PNG header claiming side x side pixels with almost no data (a decompression bomb)."""
    import zlib

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = zlib.compress(b"\x00" * (side + 1) * 8, 9)  # only a few rows: the rest is missing
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", raw)
        + chunk(b"IEND", b"")
    )


def test_thumbnail_refuses_a_decompression_bomb():
    with pytest.raises(PreviewError, match="pixels"):
        thumbnail(io.BytesIO(_bomb_png(50_000)))


def test_thumbnail_refuses_a_big_tiff_header():
    # a TIFF claiming 100,000 x 100,000 pixels in a few hundred bytes
    from ijpweb.catalog.demo import tiff

    data = bytearray(tiff(4, 4, bytes(16)))
    data = bytes(data).replace(
        struct.pack("<HHIHH", 256, 3, 1, 4, 0), struct.pack("<HHII", 256, 4, 1, 100_000)
    )
    data = data.replace(struct.pack("<HHIHH", 257, 3, 1, 4, 0), struct.pack("<HHII", 257, 4, 1, 100_000))
    with pytest.raises(PreviewError):
        thumbnail(io.BytesIO(data))


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=2000))
def test_thumbnail_of_any_bytes_is_a_png_or_a_preview_error(data):
    try:
        out = thumbnail(io.BytesIO(b"\x89PNG\r\n\x1a\n" + data))
    except PreviewError as e:
        assert str(e)
    else:
        assert out.startswith(b"\x89PNG")


def test_hdf5_tree_shows_groups_datasets_and_attributes():
    def build(f):
        f.attrs["title"] = "scan"
        g = f.create_group("entry")
        d = g.create_dataset("data", shape=(10, 20), dtype="uint16")
        d.attrs["units"] = "counts"
        g["alias"] = h5py.SoftLink("/entry/data")
        g["other"] = h5py.ExternalLink("/etc/passwd", "/x")

    p = hdf5_tree(_h5(build), "scan.h5")
    assert p.kind == "text"
    assert "entry/  group" in p.text and "data  dataset  uint16  10×20" in p.text
    assert "@units" in p.text and "@title" in p.text
    assert "soft link, not followed" in p.text and "external link, not followed" in p.text
    assert "counts" not in p.text  # attribute values are never read


def test_hdf5_tree_is_bounded_in_depth():
    def build(f):
        g = f
        for i in range(200):
            g = g.create_group(f"level{i}")

    p = hdf5_tree(_h5(build), max_depth=5)
    assert "level3" in p.text and "level5" not in p.text
    assert any("cut" in n for n in p.notes)


def test_hdf5_tree_is_bounded_in_entries():
    def build(f):
        for i in range(2000):
            f.create_group(f"g{i:04d}")

    p = hdf5_tree(_h5(build), max_entries=50)
    assert p.text.count("group") == 50
    assert any("50 objects" in n for n in p.notes)


def test_hdf5_tree_reads_no_huge_attribute_or_dataset():
    def build(f):
        f.attrs.create("huge", data=np.zeros((1000, 1000)))
        f.create_dataset("big", shape=(10**6, 10**6), dtype="float64", chunks=(100, 100))

    p = hdf5_tree(_h5(build, libver="latest"))  # (dense attribute storage: 8 MB in one)
    assert "@huge  float64  1000×1000" in p.text
    assert "big  dataset  float64  1000000×1000000" in p.text


def test_hdf5_tree_survives_a_hard_link_cycle():
    def build(f):
        g = f.create_group("a")
        g["back"] = f["/"]

    p = hdf5_tree(_h5(build))
    assert "link back" in p.text


@pytest.mark.parametrize(
    "data",
    [b"", b"not hdf5 at all", b"\x89HDF\r\n\x1a\n" + bytes(500), b"\x89HDF\r\n\x1a\n" + b"\xff" * 4000],
)
def test_hdf5_tree_of_a_corrupt_file_says_it_cannot_be_shown(data):
    p = hdf5_tree(io.BytesIO(data), "bad.h5")
    assert p.kind == "none" and "cannot be shown" in p.message


def test_hdf5_tree_of_a_truncated_real_file():
    whole = _h5(lambda f: f.create_dataset("x", data=np.arange(1000))).getvalue()
    p = hdf5_tree(io.BytesIO(whole[: len(whole) // 3]))
    assert p.kind in ("none", "text")
