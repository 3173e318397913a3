"""Previews of files, bounded: what a page shows of a job's output file (and of a
datafile from IDS) without the reader downloading it. Pure: no Pyramid, no database.

A preview is made from the file's first bytes (at most :data:`PREVIEW_BYTES`, read by
the caller) and its name. Text and logs show their first lines, CSV and TSV their first
rows as a table and their numeric columns as a line plot (a :class:`Plot` of numbers the
template draws as SVG: no script), JSON pretty-printed. PNG and JPEG are shown as images
served from their own URL once :func:`image_type` has seen their magic bytes; TIFF is
converted to PNG by :func:`image_to_png` (pixels bounded: a decompression bomb is refused
with a message). SVG and HTML are never drawn: their source is shown as text. Anything
else is "no preview", with a reason. A file that cannot be read as what its name says
(a corrupt TIFF, a CSV of binary) says so; nothing here raises for bad content except
:func:`image_to_png`'s :class:`PreviewError`, whose message is fit to show.
"""

from __future__ import annotations

import csv
import io
import json
import math
import struct
import time
import warnings
from dataclasses import dataclass, field

PREVIEW_BYTES = 256 * 1024  # read at most this much of a file for its preview
MAX_LINES = 200  # of text
MAX_LINE_CHARS = 500  # a longer line is cut (its end marked)
MAX_ROWS = 50  # of a table shown
MAX_COLUMNS = 20
MAX_CELL_CHARS = 200
MAX_PLOT_POINTS = 2000  # per series
MAX_SERIES = 8
MAX_JSON_CHARS = 64 * 1024  # of pretty-printed JSON shown
MAX_JSON_DEPTH = 50
# images: at most this many pixels decoded (a 16-bit 4000 x 4000 detector frame), and the
# PNG made of one at most this wide and high
MAX_PIXELS = 16_000_000
MAX_SIDE = 1024
# a TIFF (or other image converted) larger than this is not read for a preview
MAX_IMAGE_BYTES = 64 * 1024 * 1024

TEXT_SUFFIXES = {
    "txt", "log", "out", "err", "dat", "md", "rst", "ini", "cfg", "conf", "yaml", "yml", "xml",
    "py", "sh", "c", "h", "f90", "m", "r", "tex", "nxs.txt", "lst", "list", "html", "htm", "svg",
}  # fmt: skip
NEVER_DRAWN = {"svg": "SVG", "html": "HTML", "htm": "HTML", "xhtml": "HTML"}


class PreviewError(Exception):
    """An image could not be converted; the message says why, fit to show a user."""


@dataclass(frozen=True)
class Series:
    label: str
    points: str  # "x,y x,y ..." in the plot's own coordinates (0..WIDTH, 0..HEIGHT)


@dataclass(frozen=True)
class Plot:
    """A line plot of a table's numeric columns: polylines in a WIDTH x HEIGHT box, with
    the data's ranges for the axes' labels."""

    WIDTH = 600
    HEIGHT = 300
    x_label: str
    series: tuple[Series, ...]
    x_min: float
    x_max: float
    y_min: float
    y_max: float
    points: int  # how many rows were plotted


@dataclass(frozen=True)
class Preview:
    """What a page shows of one file. ``kind`` is one of ``text``, ``table``, ``json``,
    ``image`` (served from the caller's image URL as ``media_type``) or ``none`` (then
    ``message`` says why)."""

    name: str
    kind: str
    text: str = ""
    header: tuple[str, ...] = ()
    rows: tuple[tuple[str, ...], ...] = ()
    plot: Plot | None = None
    media_type: str = ""
    truncated: bool = False  # only the beginning is shown
    notes: tuple[str, ...] = field(default_factory=tuple)  # what else the reader should know
    message: str = ""  # for kind "none": why there is no preview


def suffix(name: str) -> str:
    base = name.rsplit("/", 1)[-1].lower()
    return base.rsplit(".", 1)[-1] if "." in base else ""


def image_type(head: bytes) -> str | None:
    """The image type by magic bytes (never by name): PNG, JPEG, GIF, or TIFF; else None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if head.startswith((b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")):
        return "image/tiff"
    return None


def is_hdf5(head: bytes) -> bool:
    return head.startswith(b"\x89HDF\r\n\x1a\n")


def _binary(head: bytes) -> bool:
    """Whether the bytes are not text: a NUL, or (after the first 4 KB as UTF-8) many
    bytes that are not characters."""
    sample = head[:8192]
    if b"\x00" in sample:
        return True
    text = sample.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    return bad > max(8, len(text) // 50)


def _decode(head: bytes, truncated: bool) -> str:
    if truncated:  # a character cut at the end of what was read is not an error
        for cut in range(4):
            try:
                return head[: len(head) - cut].decode("utf-8")
            except UnicodeDecodeError:
                continue
    return head.decode("utf-8", errors="replace")


def preview(name: str, head: bytes, size: int | None = None) -> Preview:
    """The preview of the file ``name`` whose first bytes are ``head`` (at most
    PREVIEW_BYTES of them are looked at) and whose whole size is ``size`` (None: unknown)."""
    truncated = len(head) > PREVIEW_BYTES or (size is not None and size > len(head))
    head = head[:PREVIEW_BYTES]
    ext = suffix(name)
    kind = image_type(head)
    if kind in ("image/png", "image/jpeg", "image/gif"):
        return Preview(name, "image", media_type=kind)
    if kind == "image/tiff":
        if size is not None and size > MAX_IMAGE_BYTES:
            return Preview(
                name,
                "none",
                message=f"a TIFF image of more than {MAX_IMAGE_BYTES >> 20} MB is not previewed: download it",
            )
        return Preview(name, "image", media_type="image/png", notes=("TIFF, shown converted to PNG",))
    if ext in ("png", "jpg", "jpeg", "gif", "tif", "tiff"):
        return Preview(name, "none", message=f"not a valid {ext.upper()} image: it cannot be shown")
    if is_hdf5(head) or ext in ("h5", "hdf5", "nxs", "hdf"):
        return Preview(name, "none", message="HDF5 files are not previewed here: download it")
    if not head:
        return Preview(name, "text", text="", notes=("the file is empty",))
    if _binary(head):
        return Preview(name, "none", message="a binary file: no preview, download it")
    text = _decode(head, truncated)
    if ext in ("csv", "tsv"):
        return table_preview(name, text, "\t" if ext == "tsv" else ",", truncated)
    if ext == "json":
        return json_preview(name, text, truncated)
    notes = ()
    if ext in NEVER_DRAWN:
        notes = (f"{NEVER_DRAWN[ext]} is shown as its source, never drawn or run",)
    return text_preview(name, text, truncated, notes)


def text_preview(name: str, text: str, truncated: bool = False, notes: tuple[str, ...] = ()) -> Preview:
    lines = text.splitlines()
    if truncated and lines and not text.endswith(("\n", "\r")):
        lines.pop()  # the last line read is cut: leave it for the whole file
    if len(lines) > MAX_LINES:
        lines, truncated = lines[:MAX_LINES], True
    shown = [ln if len(ln) <= MAX_LINE_CHARS else ln[:MAX_LINE_CHARS] + " …" for ln in lines]
    return Preview(name, "text", text="\n".join(shown), truncated=truncated, notes=notes)


def _number(cell: str) -> float | None:
    try:
        v = float(cell)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def table_preview(name: str, text: str, delimiter: str = ",", truncated: bool = False) -> Preview:
    """The first rows as a table (the first row as header when it is not all numbers) and
    a plot of the numeric columns of all rows read."""
    lines = text.splitlines()
    if truncated and lines and not text.endswith(("\n", "\r")):
        lines.pop()
    rows: list[list[str]] = []
    try:
        for row in csv.reader(lines, delimiter=delimiter):
            if row and not all(c.startswith("#") for c in row[:1]):
                rows.append(row)
    except csv.Error as e:
        return text_preview(name, text, truncated, (f"not read as a table ({e}): shown as text",))
    if not rows:
        return Preview(name, "text", text="", notes=("no rows",))
    first = rows[0]
    if all(_number(c) is not None for c in first if c.strip()):
        header = [f"column {i + 1}" for i in range(len(first))]
        body = rows
    else:
        header, body = first, rows[1:]
    width = min(max(len(r) for r in [header, *body]), MAX_COLUMNS)
    notes: list[str] = []
    if max(len(r) for r in [header, *body]) > MAX_COLUMNS:
        notes.append(f"only the first {MAX_COLUMNS} columns are shown")

    def cells(row: list[str]) -> tuple[str, ...]:
        row = (row + [""] * width)[:width]
        return tuple(c if len(c) <= MAX_CELL_CHARS else c[:MAX_CELL_CHARS] + " …" for c in row)

    shown = tuple(cells(r) for r in body[:MAX_ROWS])
    more = len(body) > MAX_ROWS
    if more:
        notes.append(f"the first {MAX_ROWS} of {len(body)}{'+' if truncated else ''} rows are shown")
    return Preview(
        name,
        "table",
        header=cells(header),
        rows=shown,
        plot=plot(header[:width], body),
        truncated=truncated or more,
        notes=tuple(notes),
    )


def plot(header: list[str], rows: list[list[str]]) -> Plot | None:
    """A line plot of the columns whose every cell is a number (at least two rows): the
    first such column is x when it never decreases, else x is the row number."""
    rows = rows[:MAX_PLOT_POINTS]
    if len(rows) < 2:
        return None
    numeric: list[tuple[int, list[float]]] = []
    for i in range(len(header)):
        values = [_number(r[i]) if i < len(r) else None for r in rows]
        if all(v is not None for v in values):
            numeric.append((i, values))  # type: ignore[arg-type]
    if not numeric:
        return None
    first_i, first_v = numeric[0]
    if len(numeric) > 1 and all(a <= b for a, b in zip(first_v, first_v[1:], strict=False)):
        x_label, xs, ys = header[first_i], first_v, numeric[1:]
    else:
        x_label, xs, ys = "row", [float(n + 1) for n in range(len(rows))], numeric
    ys = ys[:MAX_SERIES]
    x_min, x_max = min(xs), max(xs)
    y_min = min(min(v) for _, v in ys)
    y_max = max(max(v) for _, v in ys)
    xr = (x_max - x_min) or 1.0
    yr = (y_max - y_min) or 1.0
    if not (math.isfinite(xr) and math.isfinite(yr)):
        return None  # (numbers near the float's limits: nothing to draw to scale)

    def points(vs: list[float]) -> str:
        return " ".join(
            f"{(x - x_min) / xr * Plot.WIDTH:.1f},{Plot.HEIGHT - (y - y_min) / yr * Plot.HEIGHT:.1f}"
            for x, y in zip(xs, vs, strict=True)
        )

    series = tuple(Series(header[i], points(v)) for i, v in ys)
    return Plot(x_label, series, x_min, x_max, y_min, y_max, len(rows))


def json_preview(name: str, text: str, truncated: bool = False) -> Preview:
    """Pretty-printed (at most MAX_JSON_CHARS of it); a file not whole or not JSON is
    shown as text with a note."""
    if truncated:
        return text_preview(name, text, True, ("only the beginning of a large JSON file: shown as text",))
    try:
        value = json.loads(text)
        pretty = json.dumps(value, indent=2, ensure_ascii=False)
    except RecursionError:
        return text_preview(
            name, text, False, (f"JSON nested too deeply to pretty-print (over {MAX_JSON_DEPTH} levels)",)
        )
    except ValueError as e:
        return text_preview(name, text, False, (f"not valid JSON ({e}): shown as text",))
    if _depth(value) > MAX_JSON_DEPTH:
        return text_preview(
            name, text, False, (f"JSON nested too deeply to pretty-print (over {MAX_JSON_DEPTH} levels)",)
        )
    cut = len(pretty) > MAX_JSON_CHARS
    return Preview(name, "json", text=pretty[:MAX_JSON_CHARS], truncated=cut)


def _depth(value, limit: int = MAX_JSON_DEPTH + 1) -> int:
    depth, level = 0, [value]
    while level and depth < limit:
        depth += 1
        nxt = []
        for v in level:
            if isinstance(v, dict):
                nxt.extend(v.values())
            elif isinstance(v, list):
                nxt.extend(v)
        level = nxt
    return depth


def check_image(source, max_pixels: int = MAX_PIXELS) -> None:
    """Whether :func:`image_to_png` can convert the image in ``source``: decoded (within
    the same bounds), not converted; PreviewError saying why not."""
    image_to_png(source, max_pixels=max_pixels, decode_only=True)


def image_to_png(
    source, max_side: int = MAX_SIDE, max_pixels: int = MAX_PIXELS, decode_only: bool = False
) -> bytes:
    """A PNG of the image read from the binary file object ``source`` (TIFF, PNG, JPEG...;
    the first frame), scaled to at most ``max_side`` pixels a side; 16-bit and float
    images are scaled to their range. An image of more than ``max_pixels`` (a
    decompression bomb), or one that cannot be read, is a :class:`PreviewError`.
    (``decode_only``: stop once it is decoded, and return nothing.)"""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # (a damaged file's own complaints: it fails below)
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(source)
            if im.format not in ("TIFF", "PNG", "JPEG", "GIF"):
                raise PreviewError(f"{im.format} images are not converted for a preview")
            if im.format == "JPEG" and not decode_only:
                im.draft(im.mode, (max_side, max_side))  # (decodes at 1/2, 1/4 or 1/8 of its size)
            w, h = im.size
            if w <= 0 or h <= 0 or w * h > max_pixels:
                what = "a thumbnail" if max_pixels < MAX_PIXELS else "a preview"
                raise PreviewError(
                    f"the image is {w} x {h} pixels, more than the {max_pixels:,} {what} decodes: download it"
                )
            im.load()
            if decode_only:
                return b""
            if im.mode.startswith("I;16"):  # (16-bit greys resize as 32-bit ones)
                im = im.convert("I")
            im.thumbnail((max_side, max_side))  # first: the scaling below is per pixel
            im = _eight_bit(im)
            out = io.BytesIO()
            im.save(out, "PNG")
            return out.getvalue()
    except PreviewError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PreviewError(
            "the image would decode to too many pixels (a decompression bomb): not shown"
        ) from None
    except (
        UnidentifiedImageError,
        OSError,
        ValueError,
        SyntaxError,
        EOFError,
        struct.error,
        MemoryError,
    ) as e:
        raise PreviewError(
            f"the image cannot be shown: it is damaged or of a kind not read ({type(e).__name__})"
        ) from None


def _eight_bit(im):
    """An image PNG can hold as a reader sees it: 16-bit, 32-bit and float greys scaled
    from their own minimum and maximum to 0..255."""
    if im.mode in ("1", "L", "LA", "P", "RGB", "RGBA"):
        return im
    if im.mode.startswith(("I", "F")):
        f = im.convert("F")
        lo, hi = f.getextrema()
        if not (math.isfinite(lo) and math.isfinite(hi)):
            lo, hi = 0.0, 1.0
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        return f.point(lambda v: (v - lo) * scale).convert("L")
    return im.convert("RGB")


# --- datafiles: thumbnails and HDF5's tree (part X) -------------------------------------------

THUMB_SIDE = 160  # pixels: a thumbnail's longest side
# HDF5: the tree shown stops at this depth and this many groups and datasets, with at most
# MAX_HDF5_ATTRS attributes (their names, shapes and types: values are never read) each;
# a file is read for it only up to MAX_HDF5_BYTES (h5py needs to seek: the caller spools)
MAX_HDF5_DEPTH = 8
MAX_HDF5_ENTRIES = 300
MAX_HDF5_ATTRS = 20
MAX_HDF5_NAME = 120
MAX_HDF5_BYTES = 64 * 1024 * 1024
MAX_HDF5_TYPE = 200  # characters of a type's description (a compound's first fields)
MAX_HDF5_FIELDS = 5  # a compound type's fields named before "…"
MAX_HDF5_TEXT = 256 * 1024  # characters of the whole tree: the walk stops there
# seconds of CPU the walk may take (libhdf5 decodes each attribute's type to list it: a
# type of hundreds of fields costs it milliseconds each time); it stops there and shows
# what it read. (The reader process's own RLIMIT_CPU is the bound past this.)
MAX_HDF5_SECONDS = 3.0
# thumbnails decode at most this many pixels (after Image.draft, which lets JPEG decode
# at a fraction of its size): a 2000 x 2000 frame; a larger image says so instead
THUMB_MAX_PIXELS = 4_000_000


def thumbnail(source, side: int = THUMB_SIDE, max_pixels: int = THUMB_MAX_PIXELS) -> bytes:
    """A small PNG (at most ``side`` pixels a side) of the image read from ``source`` (a
    binary file object: PNG, JPEG, GIF or TIFF); a decompression bomb or an unreadable
    image is a :class:`PreviewError` whose message says so."""
    return image_to_png(source, max_side=side, max_pixels=max_pixels)


def _h5_name(name: str) -> str:
    name = "".join("?" if not c.isprintable() else c for c in name)
    return name if len(name) <= MAX_HDF5_NAME else name[:MAX_HDF5_NAME] + "…"


def _h5_type(tid, depth: int = 0) -> str:
    """A type (h5py's low-level TypeID: a numpy dtype of a compound of many fields is
    costly to build) in a few words: a compound as its field count and first fields, an
    enum, array or variable-length type by what it holds; at most MAX_HDF5_TYPE characters
    whatever the file holds."""
    from h5py import h5t

    try:
        if isinstance(tid, h5t.TypeStringID) or (
            isinstance(tid, h5t.TypeVlenID) and isinstance(tid.get_super(), h5t.TypeStringID)
        ):
            text = "string"
        elif depth >= 3:
            text = "…"
        elif isinstance(tid, h5t.TypeCompoundID):
            n = tid.get_nmembers()
            shown = ", ".join(
                f"{_h5_name(tid.get_member_name(i).decode('utf-8', 'replace'))}: "
                f"{_h5_type(tid.get_member_type(i), depth + 1)}"
                for i in range(min(n, MAX_HDF5_FIELDS))
            )
            text = (
                f"compound, {n} field{'s' if n != 1 else ''} ({shown}{', …' if n > MAX_HDF5_FIELDS else ''})"
            )
        elif isinstance(tid, h5t.TypeEnumID):
            text = f"enum of {_h5_type(tid.get_super(), depth + 1)} ({tid.get_nmembers()} values)"
        elif isinstance(tid, h5t.TypeArrayID):
            text = f"array {_h5_shape(tid.get_array_dims())} of {_h5_type(tid.get_super(), depth + 1)}"
        elif isinstance(tid, h5t.TypeVlenID):
            text = f"variable-length of {_h5_type(tid.get_super(), depth + 1)}"
        elif isinstance(tid, h5t.TypeOpaqueID):
            text = f"opaque, {tid.get_size()} bytes"
        else:
            text = str(tid.dtype)
    except Exception:  # noqa: BLE001 - a type h5py cannot describe
        text = "(a type not read)"
    return text if len(text) <= MAX_HDF5_TYPE else text[:MAX_HDF5_TYPE] + "…"


def _h5_shape(shape) -> str:
    if shape is None:
        return "null"
    return "scalar" if shape == () else "×".join(str(n) for n in shape)


def _h5_attrs(obj, budget: _Lines | None = None) -> list[str]:
    """The attributes' names with their shapes and types (never their values), until
    ``budget`` is spent."""
    out = []
    try:
        names = iter(obj.attrs)
        for i, key in enumerate(names):
            if i >= MAX_HDF5_ATTRS:
                out.append(f"… more attributes than {MAX_HDF5_ATTRS}")
                break
            if budget is not None and budget.over:
                break
            try:
                aid = obj.attrs.get_id(key)
                out.append(f"@{_h5_name(key)}  {_h5_type(aid.get_type())}  {_h5_shape(aid.shape)}")
            except Exception:  # noqa: BLE001 - h5py raises many kinds for a damaged attribute
                out.append(f"@{_h5_name(key)}  (unreadable)")
    except Exception:  # noqa: BLE001
        out.append("(attributes unreadable)")
    return out


def hdf5_tree(
    source,
    name: str = "",
    max_depth: int = MAX_HDF5_DEPTH,
    max_entries: int = MAX_HDF5_ENTRIES,
    seconds: float = MAX_HDF5_SECONDS,
) -> Preview:
    """HDF5's tree of groups and datasets (shapes and types; attributes' names, shapes and
    types), read from ``source`` (a seekable binary file object) as a text preview. Bounded:
    at most ``max_depth`` levels, ``max_entries`` objects, MAX_HDF5_TEXT characters and
    ``seconds`` of CPU time (what was read is shown, with a note); no dataset or attribute value
    is read; links are shown, never followed (an external link would open another file);
    an object met twice (a hard-link cycle) is not walked again. A file that is not HDF5,
    or is damaged, is a preview of kind ``none`` saying so."""
    import h5py

    notes: list[str] = []
    count = 0
    seen: set = set()
    truncated = False
    lines = _Lines(MAX_HDF5_TEXT, seconds)

    def walk(group, depth: int) -> None:
        nonlocal count, truncated
        indent = "  " * depth
        for key in group:
            if count >= max_entries or lines.over:
                truncated = True
                return
            count += 1
            label = _h5_name(key)
            link = group.get(key, getlink=True)
            if isinstance(link, h5py.SoftLink):
                lines.append(f"{indent}{label} → {_h5_name(link.path)}  (soft link, not followed)")
                continue
            if isinstance(link, h5py.ExternalLink):
                lines.append(
                    f"{indent}{label} → {_h5_name(link.filename)}:{_h5_name(link.path)}  (external link, not followed)"
                )
                continue
            try:
                obj = group[key]
            except Exception:  # noqa: BLE001 - a damaged object
                lines.append(f"{indent}{label}  (unreadable)")
                continue
            if isinstance(obj, h5py.Dataset):
                lines.append(
                    f"{indent}{label}  dataset  {_h5_type(obj.id.get_type())}  {_h5_shape(obj.shape)}"
                )
                lines.extend(f"{indent}  {a}" for a in _h5_attrs(obj, lines))
            elif isinstance(obj, h5py.Group):
                addr = obj.id.__hash__()
                lines.append(f"{indent}{label}/  group")
                lines.extend(f"{indent}  {a}" for a in _h5_attrs(obj, lines))
                if addr in seen:
                    lines.append(f"{indent}  (already shown above: a link back)")
                elif depth + 1 >= max_depth:
                    if len(obj):
                        lines.append(f"{indent}  … deeper than {max_depth} levels, not shown")
                        truncated = True
                else:
                    seen.add(addr)
                    walk(obj, depth + 1)
            else:
                lines.append(f"{indent}{label}  (named type)")

    try:
        with h5py.File(source, "r") as f:
            lines.append("/")
            lines.extend(f"  {a}" for a in _h5_attrs(f, lines))
            seen.add(f.id.__hash__())
            walk(f, 1)
    except Exception:  # noqa: BLE001 - h5py raises OSError, KeyError, RuntimeError... for damage
        return Preview(name, "none", message="not a readable HDF5 file: it cannot be shown")
    if lines.full:
        notes.append(f"the tree is cut at {MAX_HDF5_TEXT // 1024} KB of text")
    elif lines.over:
        notes.append(f"the tree is cut after {seconds:g} s of reading (a costly file to describe)")
    elif truncated:
        notes.append(f"the tree is cut at {max_entries} objects and {max_depth} levels")
    notes.append("HDF5: groups and datasets with types and shapes; no values are read")
    return Preview(name, "text", text="\n".join(lines), truncated=False, notes=tuple(notes))


class _Lines(list):
    """Lines of text, each cut at MAX_LINE_CHARS, that stop being added to once their
    total passes ``most`` characters (``full`` then says so); ``over`` once that or
    ``seconds`` of this process's CPU time have gone since it was made."""

    def __init__(self, most: int, seconds: float = MAX_HDF5_SECONDS):
        super().__init__()
        self.most, self.chars, self.full = most, 0, False
        self.until = time.process_time() + seconds

    @property
    def over(self) -> bool:
        return self.full or time.process_time() > self.until

    def append(self, line: str) -> None:
        if self.full:
            return
        if len(line) > MAX_LINE_CHARS:
            line = line[:MAX_LINE_CHARS] + " …"
        self.chars += len(line) + 1
        if self.chars > self.most:
            self.full = True
            return
        super().append(line)

    def extend(self, lines) -> None:
        for line in lines:
            self.append(line)
