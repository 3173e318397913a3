"""Bounded parsing of what clients send, shared by every face (the pages, /api/v1,
/ijp/rest/jm, /icat, /ids and ijp-batchserver): whole numbers in a range, ids that fit a
64-bit column, JSON of bounded size and depth, text that is valid Unicode.

No Pyramid here. A bad value raises :class:`InputError` naming the field; each face
reports it in its own format (views/errors.py, and ijp-batchserver's views).
"""

from __future__ import annotations

import codecs
import json
import re
from itertools import accumulate
from typing import Any
from urllib.parse import unquote_to_bytes

MAX_ID = 2**63 - 1  # the largest id (or offset) a signed 64-bit column holds
# jobs and submissions (and ijp-batchserver's jobs) are numbered by a 32-bit column on
# PostgreSQL (INTEGER): a larger number is no job at all
MAX_JOB_ID = 2**31 - 1
MAX_OFFSET = 2**63 - 1
MAX_JSON_DEPTH = 32
MAX_JSON_BYTES = 1 << 20
MAX_IDS = 10_000  # ids in one list

_WHOLE = re.compile(r"[+-]?[0-9]{1,100}")
# NUL cannot be stored (PostgreSQL) nor be an argv element; a lone surrogate is not
# Unicode at all (it cannot be encoded as UTF-8, so it cannot be stored or sent back)
_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")
# JSON strings (escapes included), taken out to measure nesting by the brackets left
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_PLAIN_STRING = re.compile(r'"[^"]*"')  # the same where the text has no backslash at all
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_NESTING = {"[": 1, "{": 1, "]": -1, "}": -1}
# what a JSON text needs to hold a string that is not text: a \u0000 or \udXXX escape, or
# a raw surrogate (in text that was never UTF-8). Without one, no string need be looked at.
_NOT_TEXT_ESCAPE = re.compile(r"\\u(?:0000|[dD][89a-fA-F])")


class InputError(ValueError):
    """A value a client sent that cannot be used: ``field`` and why (``reason``), with the
    HTTP status a face should answer (400, or 413 for too large)."""

    def __init__(self, field: str, reason: str, status: int = 400):
        self.field, self.reason, self.status = field, reason, status
        self.message = f"{field} {reason}" if field else reason
        super().__init__(self.message)


def whole_number(raw: Any, field: str, low: int, high: int) -> int:
    """``raw`` (text, or a JSON number) as an int in ``low..high``."""
    problem = f"must be a whole number from {low} to {high}"
    if isinstance(raw, bool):
        raise InputError(field, problem)
    if isinstance(raw, str):
        text = raw.strip()
        if not _WHOLE.fullmatch(text):
            raise InputError(field, problem)
        value = int(text)
    elif isinstance(raw, int):
        value = raw
    elif isinstance(raw, float) and raw.is_integer():  # JSON's 7.0 is the integer 7
        value = int(raw)
    else:
        raise InputError(field, problem)
    if not low <= value <= high:
        raise InputError(field, problem)
    return value


def ident(raw: Any, field: str) -> int:
    """An id: 1 to 2^63-1."""
    return whole_number(raw, field, 1, MAX_ID)


def job_id(raw: Any, field: str) -> int:
    """The id of a job or a submission: 1 to 2^31-1."""
    return whole_number(raw, field, 1, MAX_JOB_ID)


def offset(raw: Any, field: str) -> int:
    """A byte offset: 0 to 2^63-1."""
    return whole_number(raw, field, 0, MAX_OFFSET)


def id_list(raw: str, field: str, max_items: int = MAX_IDS) -> list[int]:
    """Ids separated by commas (blanks between commas are skipped)."""
    parts = [p for p in raw.split(",") if p.strip()]
    if len(parts) > max_items:
        raise InputError(field, f"must list at most {max_items} ids")
    return [ident(p, field) for p in parts]


def json_ids(value: Any, field: str, max_items: int = MAX_IDS) -> list[int]:
    """A JSON list of ids."""
    if not isinstance(value, list):
        raise InputError(field, f"must be a list of ids (whole numbers from 1 to {MAX_ID})")
    if len(value) > max_items:
        raise InputError(field, f"must list at most {max_items} ids")
    if any(isinstance(item, str) for item in value):  # JSON numbers, not text
        raise InputError(field, f"must be a list of ids (whole numbers from 1 to {MAX_ID})")
    return [ident(item, field) for item in value]


def text(value: Any, field: str, max_length: int | None = None) -> str:
    """A string that can be stored and sent back: valid Unicode, no NUL."""
    if not isinstance(value, str):
        raise InputError(field, "must be text")
    bad = _NOT_TEXT.search(value)
    if bad is not None:
        what = "a NUL character" if bad.group() == "\x00" else "a lone surrogate (not Unicode)"
        raise InputError(field, f"contains {what} at position {bad.start()}")
    if max_length is not None and len(value) > max_length:
        raise InputError(field, f"is longer than {max_length} characters")
    return value


def _check_json_texts(data: Any, field: str) -> None:
    """Every string and key in parsed JSON is text (iterative: depth is bounded already,
    but a long flat list must not cost recursion either)."""
    stack = [(data, field)]
    while stack:
        value, where = stack.pop()
        if isinstance(value, str):
            text(value, where)
        elif isinstance(value, list):
            stack.extend((item, f"{where}[{i}]") for i, item in enumerate(value))
        elif isinstance(value, dict):
            for key, item in value.items():
                text(key, f"a key of {where}" if where else "a key")
                stack.append((item, f"{where}.{key}" if where else key))


def json_depth(document: str) -> int:
    """How deeply arrays and objects nest in ``document`` (brackets inside strings do not
    count), without parsing it."""
    strings = _JSON_STRING if "\\" in document else _PLAIN_STRING
    brackets = _NOT_BRACKETS.sub("", strings.sub("", document))
    return max(0, max(accumulate(map(_NESTING.__getitem__, brackets)), default=0))


def _no_constant(name: str):
    raise ValueError(f"{name} is not JSON")


def loads(
    document: str | bytes,
    field: str,
    max_depth: int = MAX_JSON_DEPTH,
    max_bytes: int = MAX_JSON_BYTES,
    root: str | None = None,
) -> Any:
    """Parse JSON sent by a client: at most ``max_bytes`` long, nested at most
    ``max_depth`` deep, strict (no NaN or Infinity), every string valid text. A bad
    string is named by its path under ``root`` (``field`` unless given: "" names the
    document's own keys, as an API body's fields are named)."""
    if len(document) > max_bytes:
        raise InputError(field, f"is larger than {max_bytes} bytes", 413)
    if isinstance(document, bytes):
        try:
            document = document.decode("utf-8")
        except UnicodeDecodeError as e:
            raise InputError(field, f"is not UTF-8 (byte {e.start})") from None
    if document.count("[") + document.count("{") > max_depth and json_depth(document) > max_depth:
        raise InputError(field, f"nests arrays and objects more than {max_depth} deep")
    try:
        data = json.loads(document, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise InputError(field, f"is not JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except (ValueError, RecursionError):  # e.g. a number with more digits than Python converts
        raise InputError(field, "is not JSON that can be read") from None
    if ("\\u" in document and _NOT_TEXT_ESCAPE.search(document)) or not _is_utf8(document):
        _check_json_texts(data, field if root is None else root)
    return data


def _is_utf8(document: str) -> bool:
    """Whether ``document`` can be encoded (it has no raw lone surrogate)."""
    try:
        document.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def undecodable_field(query: str) -> str | None:
    """The name of the first field of a query string or form body whose name or value is
    not UTF-8 (``query`` as WSGI gives it: bytes as latin-1), or None."""
    for pair in re.split("[&;]", query):
        name, _, value = pair.partition("=")
        raw_name = unquote_to_bytes(name.replace("+", " ").encode("latin-1", "replace"))
        raw_value = unquote_to_bytes(value.replace("+", " ").encode("latin-1", "replace"))
        try:
            decoded = raw_name.decode("utf-8")
        except UnicodeDecodeError:
            return "a parameter name"
        try:
            raw_value.decode("utf-8")
        except UnicodeDecodeError:
            return decoded
    return None


_CHARSET = re.compile(r';\s*charset\s*=\s*"?([^";\s]*)', re.I)
# printable ASCII, and what an escaping codec (unicode_escape, UTF-7, IDNA) reads otherwise
# (in this order: unicode_escape fails on the escapes before the last one makes it warn)
_ASCII_PROBES = (b"\\u0041\\x41", b"+AEE-", b"xn--ls8h", bytes(range(0x20, 0x7F)))


def declared_charset(content_type: str) -> str | None:
    """The ``charset`` parameter of a Content-Type header, or None when there is none."""
    found = _CHARSET.search(content_type or "")
    return found.group(1) if found else None


def is_utf8(charset: str) -> bool:
    try:
        return codecs.lookup(charset).name == "utf-8"
    except LookupError:
        return False


def reads_ascii(charset: str) -> bool:
    """Is ``charset`` a text encoding Python knows in which printable ASCII is itself
    (ISO-8859-1, windows-1252, ...)? A form (``a=b&c=%E9``) can only be written in such
    a one; UTF-7, UTF-16 or EBCDIC cannot carry it."""
    try:
        return all(probe.decode(charset) == probe.decode("ascii") for probe in _ASCII_PROBES)
    except (LookupError, UnicodeError, ValueError):
        return False
