"""A job's outputs, without Pyramid: the files it left in its output directory
(``JOB_OUTPUT_DIR``) and the variables it wrote as ``OUT_NAME=value`` lines to the file
``JOB_OUTPUT_VARS`` names.

Names a user gives are never trusted: :func:`open_output` walks the name component by
component from the output directory with ``O_NOFOLLOW`` (a symlink anywhere, to
``/etc/passwd``, to another job's directory or to the portal's database, is refused, and
nothing is read through it), takes only regular files, and refuses ``..``, absolute
names, NUL and overlong names (:class:`BadName`). Listings and variables are bounded.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

# the file JOB_OUTPUT_VARS names: in the job's work directory (writable by the job, not
# one of its output files)
VARS_FILE = "output-vars"
MAX_VARS = 1000
MAX_VARS_BYTES = 64 * 1024  # of the file read; the rest is left out (and the page says so)
MAX_VAR_NAME = 128
VAR_LINE = re.compile(r"(OUT_[A-Z0-9_]+)=(.*)", re.ASCII | re.DOTALL)

MAX_LISTED = 500  # files a listing shows ("and M more")
MAX_SCANNED = 100_000  # entries a listing or a zip looks at, at most
MAX_ZIPPED = 100_000
MAX_NAME = 4096  # bytes of a name (a path inside the output directory)
MAX_COMPONENT = 255


class OutputError(Exception):
    """A name that is not a file of the job's outputs; the message is fit to show."""

    status = 404


class BadName(OutputError):
    """A name that cannot be one (``..``, absolute, NUL, too long): 400. ``reason`` is
    what is wrong with it, after the field's name ("name must be relative ...")."""

    status = 400

    def __init__(self, reason: str):
        self.reason = reason.removeprefix("name: ").removeprefix("name ")
        super().__init__(f"name {self.reason}")


class NoOutput(OutputError):
    """The backend keeps no output files for this job (an original batch server)."""

    status = 404


# --- output variables -------------------------------------------------------------------


@dataclass(frozen=True)
class OutputVars:
    values: tuple[tuple[str, str], ...]  # (name, value) in the order first written
    skipped: int = 0  # lines that were not OUT_NAME=value
    left_out: int = 0  # variables beyond MAX_VARS
    cut: bool = False  # the file was larger than MAX_VARS_BYTES: the rest was not read

    def as_json(self) -> dict:
        return {"values": [list(v) for v in self.values], "skipped": self.skipped,
                "left_out": self.left_out, "cut": self.cut}  # fmt: skip

    @classmethod
    def from_json(cls, data) -> OutputVars | None:
        if not isinstance(data, dict):
            return None
        pairs = tuple((str(n), str(v)) for n, v in data.get("values", ()))
        return cls(
            pairs, int(data.get("skipped", 0)), int(data.get("left_out", 0)), bool(data.get("cut", False))
        )


def parse_vars(data: bytes, cut: bool = False) -> OutputVars:
    """``OUT_NAME=value`` lines (the value to the end of the line; a later line of the
    same name replaces the value). Blank lines and ``#`` comments are ignored; any other
    line is skipped and counted, never an error. At most MAX_VARS variables of at most
    MAX_VARS_BYTES (``data`` beyond it is not read: ``cut``)."""
    if len(data) > MAX_VARS_BYTES:
        data, cut = data[:MAX_VARS_BYTES], True
    text = data.decode("utf-8", errors="replace").replace("\x00", "\ufffd")
    lines = text.split("\n")
    if cut and lines:
        lines.pop()  # the last line read may be cut short: left out with the rest
    values: dict[str, str] = {}
    skipped = left_out = 0
    for line in lines:
        line = line.removesuffix("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = VAR_LINE.fullmatch(line)
        if m is None or len(m.group(1)) > MAX_VAR_NAME:
            skipped += 1
            continue
        name, value = m.groups()
        if name not in values and len(values) >= MAX_VARS:
            left_out += 1
            continue
        values[name] = value
    return OutputVars(tuple(values.items()), skipped, left_out, cut)


def read_vars(path: Path) -> OutputVars | None:
    """The variables of the file at ``path`` (a regular file, not followed if a link), or
    None when the job wrote none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None  # absent, or a link (a job pointing it elsewhere gets nothing)
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        data = fh.read(MAX_VARS_BYTES + 1)
    return parse_vars(data)


# --- names --------------------------------------------------------------------------------


def check_name(name: str) -> list[str]:
    """The components of a relative name inside the output directory; BadName if it
    cannot be one."""
    if not isinstance(name, str) or not name:
        raise BadName("is required: give the name of an output file")
    if "\x00" in name:
        raise BadName("cannot hold a NUL character")
    try:
        raw = name.encode("utf-8", errors="surrogateescape")
    except UnicodeEncodeError:
        raise BadName("is not a file name") from None
    if len(raw) > MAX_NAME:
        raise BadName(f"is longer than {MAX_NAME} bytes")
    if name.startswith("/"):
        raise BadName("must be relative to the job's output directory")
    parts = name.split("/")
    for p in parts:
        if p in ("", ".", ".."):
            raise BadName("cannot have '.', '..' or empty path components")
        if len(p.encode("utf-8", errors="surrogateescape")) > MAX_COMPONENT:
            raise BadName(f"has a component longer than {MAX_COMPONENT} bytes")
    return parts


def _not_found(name: str) -> OutputError:
    return OutputError("no such output file (or it is not a regular file)")


def open_output(root: Path, name: str) -> BinaryIO:
    """The output file ``name`` under ``root`` (the job's output directory), opened for
    reading without following any symlink: a regular file, or OutputError/BadName."""
    parts = check_name(name)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(root, flags | os.O_DIRECTORY)
    except OSError:
        raise _not_found(name) from None
    try:
        for p in parts[:-1]:
            try:
                nxt = os.open(p, flags | os.O_DIRECTORY, dir_fd=fd)
            except OSError:
                raise _not_found(name) from None
            os.close(fd)
            fd = nxt
        try:
            # O_NONBLOCK: a FIFO the job left must not hang the portal (it is refused below)
            f = os.open(parts[-1], flags | os.O_NONBLOCK, dir_fd=fd)
        except OSError as e:
            if e.errno == errno.ENAMETOOLONG:
                raise BadName("is too long") from None
            raise _not_found(name) from None
    finally:
        os.close(fd)
    st = os.fstat(f)
    if not stat.S_ISREG(st.st_mode):
        os.close(f)
        raise _not_found(name)
    os.set_blocking(f, True)
    return os.fdopen(f, "rb")


# --- listing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutputFile:
    name: str  # the path inside the output directory, "/"-separated
    size: int
    modified: datetime


@dataclass(frozen=True)
class Listing:
    files: tuple[OutputFile, ...]  # the first MAX_LISTED by name
    total: int  # regular files found (at least; see ``more``)
    total_size: int
    others: int = 0  # symlinks and special files: never listed nor served
    more: bool = False  # the scan stopped at MAX_SCANNED entries: there may be more

    @property
    def hidden(self) -> int:
        return self.total - len(self.files)


def _walk(root: Path, budget: int) -> Iterator[tuple[str, os.stat_result | None]]:
    """(name, stat) of every entry under ``root`` in name order, not following links;
    a stat of None for a symlink or special file. At most ``budget`` entries."""
    stack: list[tuple[str, str]] = [("", str(root))]
    seen = 0
    while stack:
        prefix, path = stack.pop()
        try:
            with os.scandir(path) as it:
                # (a directory of a million entries is read only as far as the budget)
                entries = sorted(itertools.islice(it, budget - seen + 1), key=lambda e: e.name, reverse=True)
        except OSError:
            continue
        subdirs = []
        for e in reversed(entries):
            seen += 1
            if seen > budget:
                yield "", None  # the marker: the budget is spent
                return
            name = f"{prefix}{e.name}"
            try:
                st = e.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                subdirs.append((name + "/", e.path))
            elif stat.S_ISREG(st.st_mode):
                yield name, st
            else:
                yield name, None
        stack.extend(reversed(subdirs))


def _is_dir(root: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(root).st_mode)
    except OSError:
        return False


def list_outputs(root: Path, limit: int = MAX_LISTED, budget: int = MAX_SCANNED) -> Listing:
    """The regular files under ``root`` (subdirectories' files as paths), bounded."""
    if not _is_dir(root):  # (none yet; or the output directory itself made a link)
        return Listing((), 0, 0)
    files: list[OutputFile] = []
    total = total_size = others = 0
    more = False
    for name, st in _walk(root, budget):
        if not name:
            more = True
            break
        if st is None:
            others += 1
            continue
        total += 1
        total_size += st.st_size
        if len(files) < limit:
            files.append(OutputFile(name, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC)))
    return Listing(tuple(files), total, total_size, others, more)


def zip_entries(root: Path, limit: int = MAX_ZIPPED) -> Iterator[tuple[str, object]]:
    """(name, opener) for ijpweb.catalog.ids.zip_stream: every regular file under
    ``root`` (at most ``limit``), each opened safely when its turn comes (a file gone or
    made a link meanwhile is left out)."""
    if not _is_dir(root):
        return
    n = 0
    for name, st in _walk(root, MAX_SCANNED):
        if not name or n >= limit:
            return
        if st is None:
            continue
        try:
            fh = open_output(root, name)
        except OutputError:
            continue
        n += 1
        yield name, (lambda fh=fh: fh)


def content_disposition(name: str, attachment: bool = True) -> str:
    """A Content-Disposition header for a file ``name`` (any characters: newlines, quotes,
    HTML): an ASCII fallback and RFC 5987's UTF-8 ``filename*``."""
    from urllib.parse import quote

    base = name.rsplit("/", 1)[-1]
    ascii_name = "".join(c if 32 <= ord(c) < 127 and c not in '"\\;%' else "_" for c in base) or "output"
    kind = "attachment" if attachment else "inline"
    return f"{kind}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(base, safe='')}"


def read_head(fh: BinaryIO, limit: int) -> bytes:
    """At most ``limit`` bytes from the start of ``fh`` (closed after)."""
    with contextlib.closing(fh):
        out = bytearray()
        while len(out) < limit:
            chunk = fh.read(limit - len(out))
            if not chunk:
                break
            out += chunk
        return bytes(out)
