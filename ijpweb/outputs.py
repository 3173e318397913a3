"""A job's outputs, without Pyramid: the files it left in its output directory
(``JOB_OUTPUT_DIR``) and the variables it wrote as ``OUT_NAME=value`` lines to the file
``JOB_OUTPUT_VARS`` names.

Names a user gives are never trusted: :func:`open_output` walks the name component by
component from the output directory with ``O_NOFOLLOW`` (a symlink anywhere, to
``/etc/passwd``, to another job's directory or to the portal's database, is refused, and
nothing is read through it), takes only regular files, and refuses ``..``, absolute
names, NUL and overlong names (:class:`BadName`). Listings and variables are bounded.

Everything a job can write or replace is read through directory descriptors: the
directory the caller names as ``base`` (the job's directory, which a sandboxed job cannot
see, let alone swap) is opened, and each component below it with ``O_NOFOLLOW``
relative to its parent's descriptor (``dir_fd=``). A running job that swaps a
subdirectory of its output for a symlink between a listing's look and its descent gets
the link counted, never followed: nothing outside the output directory is ever listed,
zipped or read. A name that is not UTF-8 cannot be shown, put in a URL or a zip: it is
counted (``Listing.unnamed``), never listed nor served.
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


def read_vars(path: Path, base: Path | None = None) -> OutputVars | None:
    """The variables of the file at ``path`` (a regular file), or None when the job wrote
    none. Nothing below ``base`` (default: the file's directory) is followed if a link:
    with the job's directory as ``base``, a job that makes ``work/`` itself, or the file,
    a link to another job's gets nothing."""
    try:
        d = open_dir(path.parent, path.parent if base is None else base)
    except (OSError, ValueError):
        return None
    try:
        fd = _open_file(path.name, d)
    finally:
        os.close(d)
    if fd is None:
        return None  # absent, a link (a job pointing it elsewhere gets nothing), not a file
    with os.fdopen(fd, "rb") as fh:
        data = fh.read(MAX_VARS_BYTES + 1)
    return parse_vars(data)


# --- descriptors --------------------------------------------------------------------------

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_NOFOLLOW = os.O_NOFOLLOW


def open_dir(path: Path, base: Path | None = None) -> int:
    """A descriptor of the directory ``path``: ``base`` (default: the parent of
    ``path``; the portal's own, a job cannot swap it) opened as it is, then each component
    of ``path`` below it relative to the one before, a symlink not followed (OSError:
    ELOOP or ENOTDIR). ValueError if ``path`` is not under ``base``."""
    path = Path(path)
    base = path.parent if base is None else Path(base)
    parts = path.relative_to(base).parts
    fd = os.open(base, _DIR)
    try:
        for p in parts:
            nxt = os.open(p, _DIR | _NOFOLLOW, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open_file(name: str, dir_fd: int) -> int | None:
    """The regular file ``name`` in the directory ``dir_fd``, not followed if a link and
    without hanging on a FIFO (O_NONBLOCK, cleared once it is known a file); None if it
    is not one (or gone). ENAMETOOLONG is raised."""
    try:
        f = os.open(name, os.O_RDONLY | _NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError as e:
        if e.errno == errno.ENAMETOOLONG:
            raise
        return None
    if not stat.S_ISREG(os.fstat(f).st_mode):
        os.close(f)
        return None
    os.set_blocking(f, True)
    return f


def showable(name: str) -> bool:
    """Whether a name read from the disk is text (UTF-8: it can go in a page, a URL, a zip
    and a header); one that is not holds surrogate escapes."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


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


def open_output(root: Path, name: str, base: Path | None = None) -> BinaryIO:
    """The output file ``name`` under ``root`` (the job's output directory), opened for
    reading without following any symlink below ``base`` (default: the parent of
    ``root``): a regular file, or OutputError/BadName."""
    parts = check_name(name)
    try:
        fd = open_dir(root, base)
    except (OSError, ValueError):
        raise _not_found(name) from None
    try:
        for p in parts[:-1]:
            try:
                nxt = os.open(p, _DIR | _NOFOLLOW, dir_fd=fd)
            except OSError:
                raise _not_found(name) from None
            os.close(fd)
            fd = nxt
        try:
            f = _open_file(parts[-1], fd)  # (a FIFO the job left does not hang the portal)
        except OSError:
            raise BadName("is too long") from None
    finally:
        os.close(fd)
    if f is None:
        raise _not_found(name)
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
    unnamed: int = 0  # entries whose names are not UTF-8 (not shown: never listed nor served)

    @property
    def hidden(self) -> int:
        return self.total - len(self.files)


# what _walk yields: a regular file, a link or special file (or a directory that stopped
# being one before it was entered), a name that cannot be shown, and the budget spent
FILE, OTHER, UNNAMED, MORE = "file", "other", "unnamed", "more"


def _walk(root: Path, base: Path | None, budget: int):
    """(kind, name, stat, dir_fd, entry) of every entry under ``root`` in name order, a
    directory's files before its subdirectories', each subdirectory entered through its
    parent's descriptor with O_NOFOLLOW (a directory swapped for a link meanwhile is an
    OTHER, never followed). ``name`` is the "/"-separated path; ``dir_fd`` (open while
    the caller holds the entry) and ``entry`` open the file safely. A directory whose
    name cannot be shown is one UNNAMED entry, not entered. At most ``budget`` entries;
    then MORE. Nothing if ``root`` is not a directory (or a link)."""
    try:
        top = open_dir(root, base)
    except (OSError, ValueError):
        return
    frames: list[list] = [["", top, None]]  # [prefix, dir fd, subdirectories left (reversed)]
    seen = 0
    try:
        while frames:
            frame = frames[-1]
            prefix, fd, pending = frame
            if pending is None:
                try:
                    with os.scandir(fd) as it:
                        # (a directory of a million entries is read only as far as the budget)
                        entries = sorted(itertools.islice(it, budget - seen + 1), key=lambda e: e.name)
                except OSError:
                    entries = []
                pending = []
                for e in entries:
                    seen += 1
                    if seen > budget:
                        yield MORE, "", None, fd, ""
                        return
                    if not showable(e.name):
                        yield UNNAMED, "", None, fd, ""
                        continue
                    try:
                        st = e.stat(follow_symlinks=False)  # (fstatat on fd: the entry itself)
                    except OSError:
                        continue
                    if stat.S_ISDIR(st.st_mode):
                        pending.append(e.name)
                    elif stat.S_ISREG(st.st_mode):
                        yield FILE, prefix + e.name, st, fd, e.name
                    else:
                        yield OTHER, prefix + e.name, None, fd, e.name
                pending.reverse()
                frame[2] = pending
                continue
            if not pending:
                frames.pop()
                os.close(fd)
                continue
            sub = pending.pop()
            try:
                nxt = os.open(sub, _DIR | _NOFOLLOW, dir_fd=fd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):  # made a link (or a file) meanwhile
                    yield OTHER, prefix + sub, None, fd, sub
                continue
            frames.append([f"{prefix}{sub}/", nxt, None])
    finally:
        for frame in frames:
            os.close(frame[1])


def list_outputs(root: Path, limit: int = MAX_LISTED, budget: int = MAX_SCANNED,
                 base: Path | None = None) -> Listing:  # fmt: skip
    """The regular files under ``root`` (subdirectories' files as paths), bounded; no
    link below ``base`` (default: the parent of ``root``) followed."""
    files: list[OutputFile] = []
    total = total_size = others = unnamed = 0
    more = False
    with contextlib.closing(_walk(root, base, budget)) as walk:
        for kind, name, st, _, _ in walk:
            if kind == MORE:
                more = True
                break
            if kind == UNNAMED:
                unnamed += 1
                continue
            if kind == OTHER:
                others += 1
                continue
            total += 1
            total_size += st.st_size
            if len(files) < limit:
                files.append(OutputFile(name, st.st_size, datetime.fromtimestamp(st.st_mtime, UTC)))
    return Listing(tuple(files), total, total_size, others, more, unnamed)


def zip_entries(
    root: Path, limit: int = MAX_ZIPPED, base: Path | None = None
) -> Iterator[tuple[str, object]]:
    """(name, opener) for ijpweb.catalog.ids.zip_stream: every regular file under
    ``root`` (at most ``limit``) whose name can be shown, each opened through its
    directory's descriptor as the walk reaches it (a file gone or made a link meanwhile
    is left out); no link below ``base`` followed."""
    n = 0
    with contextlib.closing(_walk(root, base, MAX_SCANNED)) as walk:
        for kind, name, _, dir_fd, entry in walk:
            if kind == MORE or n >= limit:
                return
            if kind != FILE:
                continue
            try:
                f = _open_file(entry, dir_fd)
            except OSError:
                continue
            if f is None:
                continue
            n += 1
            fh = os.fdopen(f, "rb")
            yield name, (lambda fh=fh: fh)


def content_disposition(name: str, attachment: bool = True) -> str:
    """A Content-Disposition header for a file ``name`` (any characters: newlines, quotes,
    HTML): an ASCII fallback and RFC 5987's UTF-8 ``filename*``."""
    from urllib.parse import quote

    base = name.rsplit("/", 1)[-1]
    if not showable(base):  # (bytes that are not UTF-8, escaped: shown as U+FFFD)
        base = base.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
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
