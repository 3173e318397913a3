"""ijpweb.previews: bounded previews of files, and images converted safely."""

import io
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from ijpweb import previews
from ijpweb.previews import PREVIEW_BYTES, PreviewError, image_to_png, image_type, preview


def test_text_shows_first_lines_and_says_it_is_cut():
    data = "".join(f"line {i}\n" for i in range(1000)).encode()
    p = preview("run.log", data[:4000], size=len(data))
    assert p.kind == "text" and p.truncated
    lines = p.text.splitlines()
    assert lines[0] == "line 0" and len(lines) <= previews.MAX_LINES
    assert all(ln.startswith("line ") and ln[5:].isdigit() for ln in lines)  # no half line


def test_a_long_line_is_cut():
    p = preview("a.txt", b"x" * 10_000)
    assert len(p.text) < previews.MAX_LINE_CHARS + 5 and p.text.endswith("…")


def test_csv_table_and_plot():
    rows = ["time,signal,noise"] + [f"{i},{i * i},{(-1) ** i}" for i in range(100)]
    p = preview("scan.csv", ("\n".join(rows) + "\n").encode())
    assert p.kind == "table" and p.header == ("time", "signal", "noise")
    assert len(p.rows) == previews.MAX_ROWS and p.rows[0] == ("0", "0", "1")
    assert p.truncated and any("50 of 100" in n for n in p.notes)
    assert p.plot is not None and p.plot.x_label == "time" and p.plot.points == 100
    assert [s.label for s in p.plot.series] == ["signal", "noise"]
    assert p.plot.y_min == -1 and p.plot.y_max == 99 * 99
    xs = [float(pt.split(",")[0]) for pt in p.plot.series[0].points.split()]
    assert xs[0] == 0 and xs[-1] == previews.Plot.WIDTH


def test_csv_without_header_or_numbers():
    p = preview("n.csv", b"1,2\n3,4\n")
    assert p.header == ("column 1", "column 2") and len(p.rows) == 2 and p.plot is not None
    p = preview("words.csv", b"name,colour\nbob,red\ncarol,blue\n")
    assert p.kind == "table" and p.plot is None
    p = preview("x.tsv", b"a\tb\n1\t2\n2\t1\n")
    assert p.header == ("a", "b")


def test_json_pretty_or_text():
    p = preview("r.json", json.dumps({"a": [1, 2], "b": "<script>"}).encode())
    assert p.kind == "json" and '"b": "<script>"' in p.text and "\n  " in p.text
    bad = preview("r.json", b'{"a": ')
    assert bad.kind == "text" and any("not valid JSON" in n for n in bad.notes)
    deep = preview("d.json", b"[" * 5000 + b"]" * 5000)
    assert deep.kind == "text" and any("deeply" in n for n in deep.notes)


def test_images_by_magic_bytes_not_name():
    png = io.BytesIO()
    Image.new("RGB", (4, 4)).save(png, "PNG")
    assert preview("pic.png", png.getvalue()).media_type == "image/png"
    assert preview("pic.dat", png.getvalue()).kind == "image"  # its bytes say PNG
    fake = preview("evil.png", b"<html><script>alert(1)</script>")
    assert fake.kind == "none" and "not a valid PNG" in fake.message
    assert image_type(b"<svg") is None and image_type(b"\xff\xd8\xff\xe0") == "image/jpeg"


def test_svg_and_html_are_shown_as_source():
    p = preview("plot.svg", b"<svg onload='alert(1)'></svg>")
    assert p.kind == "text" and "<svg onload" in p.text and "never drawn" in p.notes[0]
    assert preview("<script>.html", b"<script>x</script>").kind == "text"


def test_binary_and_hdf5():
    assert preview("a.bin", bytes(range(256)) * 10).kind == "none"
    assert "HDF5" in preview("d.h5", b"\x89HDF\r\n\x1a\n" + b"\x00" * 100).message


def _tiff(mode, size, value=0):
    out = io.BytesIO()
    Image.new(mode, size, value).save(out, "TIFF")
    out.seek(0)
    return out


def test_tiff_16_bit_to_png():
    png = image_to_png(_tiff("I;16", (2048, 1024), 1000))
    im = Image.open(io.BytesIO(png))
    assert im.format == "PNG" and im.size == (1024, 512) and im.mode == "L"


def test_decompression_bomb_refused(monkeypatch):
    with pytest.raises(PreviewError, match="more than the 1,000"):
        image_to_png(_tiff("L", (100, 100)), max_pixels=1000)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow's own check says bomb too
    with pytest.raises(PreviewError, match="decompression bomb"):
        image_to_png(_tiff("L", (100, 100)), max_pixels=10**9)


def test_corrupt_tiff_says_it_cannot_be_shown():
    good = _tiff("L", (64, 64)).getvalue()
    for data in (b"II*\x00garbage", good[:40], good[:8] + b"\xff" * 200):
        with pytest.raises(PreviewError, match="cannot be shown|not converted"):
            image_to_png(io.BytesIO(data))


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(["a.csv", "a.tsv", "a.json", "a.txt", "a.png", "a.tif", "a", "a.svg"]),
       data=st.binary(max_size=3000), size=st.one_of(st.none(), st.integers(0, 10**12)))  # fmt: skip
def test_any_bytes_give_a_bounded_preview(name, data, size):
    p = preview(name, data, size)
    assert p.kind in ("text", "table", "json", "image", "none")
    assert len(p.text) <= previews.MAX_LINES * (previews.MAX_LINE_CHARS + 2) + previews.MAX_JSON_CHARS
    assert len(p.rows) <= previews.MAX_ROWS
    assert all(len(r) <= previews.MAX_COLUMNS for r in p.rows)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.one_of(st.floats(allow_nan=True), st.integers(), st.text(max_size=5)),
                         min_size=1, max_size=6), min_size=0, max_size=40))  # fmt: skip
def test_any_table_parses_and_plots_inside_the_box(rows):
    text = "\n".join(",".join(str(c).replace(",", ";").replace("\n", " ") for c in r) for r in rows)
    p = preview("t.csv", text.encode())
    if p.plot:
        for s in p.plot.series:
            for pt in s.points.split():
                x, y = map(float, pt.split(","))
                assert 0 <= x <= previews.Plot.WIDTH and 0 <= y <= previews.Plot.HEIGHT


def test_only_the_bound_is_read():
    p = preview("big.txt", b"a\n" * PREVIEW_BYTES, size=10**9)
    assert p.truncated and len(p.text) <= PREVIEW_BYTES


def test_a_16_bit_gradient_keeps_its_range_once_scaled():
    ramp = Image.linear_gradient("L").resize((600, 300)).convert("I").point(lambda v: v * 200)
    src = io.BytesIO()
    ramp.save(src, "TIFF")
    src.seek(0)
    out = Image.open(io.BytesIO(image_to_png(src, max_side=100)))
    assert out.mode == "L" and out.size == (100, 50) and out.getextrema() == (0, 255)
