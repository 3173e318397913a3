"""Request bodies read within bounds (issue 13, carol's findings 1 and 2). No Pyramid here.

Two bounds, so that no request makes the portal hold more than a little of its body in
memory, whoever sends it (before any login, too):

- Every body but an upload's is at most ``ijp.max_form_bytes``: refused (413) by its
  Content-Length before anything reads it, and a body without one (chunked) is read to at
  most the limit and one byte (:func:`read_at_most`). views/bodies.py applies it.
- An upload's multipart form is parsed here (:func:`parse_multipart`), not by WebOb:
  files go to temporary files on disk in chunks, and every part that is not a file (the
  CSRF token) is at most :data:`MAX_FIELD_BYTES`, all of them together at most
  :data:`MAX_FIELDS_BYTES`, with at most :data:`MAX_PARTS` parts and
  :data:`MAX_HEADER_BYTES` of headers each. WebOb's parser (cgi.FieldStorage) reads a
  field's value whole into memory, whatever its size.
"""

from __future__ import annotations

import re
import tempfile
from email.parser import HeaderParser
from email.utils import collapse_rfc2231_value

from .inputs import InputError

CHUNK = 64 << 10  # bytes read at once
MAX_FIELD_BYTES = 64 << 10  # one part of an upload's form that is not a file
MAX_FIELDS_BYTES = 256 << 10  # all of them
MAX_PARTS = 1_000  # parts of one form (files and fields)
MAX_HEADER_BYTES = 16 << 10  # the headers of one part
MAX_PREAMBLE_BYTES = 64 << 10  # what comes before the first boundary
BODY = "the request body"
FORM = "the form"
# a boundary as WebOb (Python's cgi) takes one: printable ASCII, not ending in a space
# (RFC 2046 says at most 70 of fewer characters; clients such as WebTest use others)
_BOUNDARY = re.compile(r"[ -~]{0,200}[!-~]")
_PADDING = re.compile(rb"[ \t]*")


class BodyTooLarge(InputError):
    """A request body larger than a face takes: always a 413, before any of it is used."""

    def __init__(self, reason: str, field: str = BODY):
        super().__init__(field, reason, 413)


def too_large(length: int | None, limit: int, setting: str) -> BodyTooLarge:
    size = f"has {length:,} bytes" if length is not None else f"has more than {limit:,} bytes"
    return BodyTooLarge(f"{size}; at most {limit:,} are taken here ({setting})")


def read_at_most(stream, limit: int) -> bytes | None:
    """At most ``limit`` bytes of ``stream`` (read in chunks), or None when it holds more:
    never more than ``limit + 1`` bytes are read."""
    parts, have = [], 0
    while have <= limit:
        chunk = stream.read(min(CHUNK, limit + 1 - have))
        if not chunk:
            return b"".join(parts)
        parts.append(chunk)
        have += len(chunk)
    return None


def boundary(content_type: str) -> bytes:
    """The boundary a ``multipart/form-data`` Content-Type names, or InputError naming
    Content-Type."""
    msg = HeaderParser().parsestr(f"Content-Type: {content_type}\r\n\r\n")
    value = msg.get_param("boundary")
    value = collapse_rfc2231_value(value) if value is not None else None
    if not isinstance(value, str) or not _BOUNDARY.fullmatch(value):
        raise InputError(
            "Content-Type", "must name the form's boundary (1 to 201 printable ASCII characters)"
        )
    return value.encode("ascii")


class FilePart:
    """A file of a form, in a temporary file (as WebOb's FieldStorage gives one: ``name``,
    ``filename``, ``type``, ``file``)."""

    def __init__(self, name: str, filename: str, content_type: str):
        self.name, self.filename, self.type = name, filename, content_type
        self.file = tempfile.TemporaryFile()  # noqa: SIM115 - closed when the request ends

    def __repr__(self) -> str:
        return f"FilePart({self.name!r}, {self.filename!r})"


class _Buffer:
    def __init__(self, stream, start: bytes = b""):
        self.stream, self.data, self.eof = stream, start, False

    def fill(self) -> bool:
        if self.eof:
            return False
        chunk = self.stream.read(CHUNK)
        if not chunk:
            self.eof = True
            return False
        self.data += chunk
        return True

    def need(self, n: int) -> bool:
        while len(self.data) < n:
            if not self.fill():
                return False
        return True

    def until(self, marker: bytes, sink) -> bool:
        """Give ``sink`` every byte before ``marker`` (in pieces) and take the marker;
        False when the stream ends first."""
        keep = len(marker) - 1
        while True:
            i = self.data.find(marker)
            if i >= 0:
                sink(self.data[:i])
                self.data = self.data[i + len(marker) :]
                return True
            if len(self.data) > keep:
                sink(self.data[:-keep])
                self.data = self.data[-keep:]
            if not self.fill():
                return False


class _Bounded:
    """A sink that refuses past ``most`` bytes (also counted into ``total``, if given)."""

    def __init__(self, most: int, error, total: list[int] | None = None, keep: bool = True):
        self.most, self.error, self.total, self.keep = most, error, total, keep
        self.size, self.data = 0, bytearray()

    def __call__(self, piece: bytes) -> None:
        self.size += len(piece)
        if self.total is not None:
            self.total[0] += len(piece)
        if self.size > self.most or (self.total is not None and self.total[0] > MAX_FIELDS_BYTES):
            raise self.error()
        if self.keep:
            self.data += piece


def _headers(raw: bytes) -> tuple[str, str | None, str]:
    """(name, filename or None, content type) of a part's headers."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(FORM, "has a part whose headers are not UTF-8") from None
    msg = HeaderParser().parsestr(text + "\r\n\r\n")
    disposition = msg.get("Content-Disposition")
    if disposition is None or msg.get_content_disposition() != "form-data":
        raise InputError(FORM, "has a part without Content-Disposition: form-data")
    name = msg.get_param("name", header="content-disposition")
    name = collapse_rfc2231_value(name) if name is not None else None
    if not isinstance(name, str) or not name:
        raise InputError(FORM, "has a part without a name")
    filename = msg.get_param("filename", header="content-disposition")
    filename = collapse_rfc2231_value(filename) if filename is not None else None
    if msg.get_content_maintype() == "multipart":
        raise InputError(name[:60], "is a multipart part inside the form, which is not taken")
    return name, filename, msg.get_content_type()


def parse_multipart(stream, boundary: bytes) -> list[tuple[str, str | FilePart]]:
    """The parts of a multipart/form-data body read from ``stream``: (name, text) for a
    field, (name, :class:`FilePart`) for a file (a part with a non-empty ``filename``).
    A field over :data:`MAX_FIELD_BYTES` (or all of them over :data:`MAX_FIELDS_BYTES`) is
    refused (413) naming it as soon as that is known, having read no more of it; a form that
    is not well made is refused (400)."""
    delimiter = b"\r\n--" + boundary
    # (the first boundary may come first of all: as if after a line break)
    buf = _Buffer(stream, b"\r\n")
    out: list[tuple[str, str | FilePart]] = []
    total = [0]
    try:
        preamble = _Bounded(MAX_PREAMBLE_BYTES, lambda: InputError(FORM, "has too much before its first boundary"),
                            keep=False)  # fmt: skip
        if not buf.until(delimiter, preamble):
            raise InputError(FORM, "has no part (its boundary is not in the body)")
        while True:
            if not buf.need(2):
                raise InputError(FORM, "ends inside a boundary")
            if buf.data.startswith(b"--"):
                return out  # the closing boundary: what follows is ignored (and not read)
            padding = _Bounded(100, lambda: InputError(FORM, "has a boundary line that does not end"))
            if not buf.until(b"\r\n", padding) or not _PADDING.fullmatch(bytes(padding.data)):
                raise InputError(FORM, "has a boundary followed by something else than a line break")
            if len(out) >= MAX_PARTS:
                raise BodyTooLarge(f"has more than {MAX_PARTS:,} parts", FORM)
            header = _Bounded(
                MAX_HEADER_BYTES, lambda: BodyTooLarge("has a part with too many headers", FORM)
            )
            if not buf.need(2):
                raise InputError(FORM, "ends inside a part's headers")
            if buf.data.startswith(b"\r\n"):
                buf.data = buf.data[2:]  # no headers at all (then no name: refused below)
            elif not buf.until(b"\r\n\r\n", header):
                raise InputError(FORM, "ends inside a part's headers")
            name, filename, content_type = _headers(bytes(header.data))
            if filename:
                part = FilePart(name, filename, content_type)
                out.append((name, part))
                found = buf.until(delimiter, part.file.write)
                part.file.seek(0)
            else:
                shown = name[:60]
                value = _Bounded(
                    MAX_FIELD_BYTES,
                    lambda n=shown: BodyTooLarge(
                        f"is larger than {MAX_FIELD_BYTES:,} bytes (a field of an upload's form "
                        f"that is not a file; all of them together: at most {MAX_FIELDS_BYTES:,})",
                        n,
                    ),
                    total,
                )
                found = buf.until(delimiter, value)
                try:
                    out.append((name, bytes(value.data).decode("utf-8")))
                except UnicodeDecodeError:
                    raise InputError(shown, "is not UTF-8") from None
            if not found:
                raise InputError(FORM, "ends before its closing boundary")
    except BaseException:
        for _name, value in out:
            if isinstance(value, FilePart):
                value.file.close()
        raise
