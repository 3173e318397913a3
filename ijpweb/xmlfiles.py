"""Reading facility XML files safely, and reporting what is wrong with them.

Entities, DTDs and network access are off; a document that declares a DOCTYPE is
refused outright (that is where external entities and "billion laughs" live).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from lxml import etree

log = logging.getLogger(__name__)

MAX_FILE_BYTES = 1_000_000


@dataclass(frozen=True)
class FileProblem:
    """A problem with one file: its name, the line (when known) and the reason."""

    file: str
    line: int | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.reason}"


class XMLFileError(Exception):
    def __init__(self, file: str, line: int | None, reason: str):
        super().__init__(str(FileProblem(file, line, reason)))
        self.problem = FileProblem(file, line, reason)


def _parser() -> etree.XMLParser:
    return etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
    )


def parse_bytes(data: bytes, file: str) -> etree._Element:
    """Parse ``data`` (named ``file`` in messages) and return the root element."""
    if len(data) > MAX_FILE_BYTES:
        raise XMLFileError(file, None, f"file is larger than {MAX_FILE_BYTES} bytes")
    try:
        tree = etree.fromstring(data, parser=_parser()).getroottree()
    except etree.XMLSyntaxError as e:
        line = e.lineno if e.lineno else None
        msg = e.msg or str(e)
        raise XMLFileError(file, line, f"not well-formed XML: {msg}") from None
    if tree.docinfo.doctype or tree.docinfo.internalDTD is not None:
        raise XMLFileError(file, 1, "a DOCTYPE is not allowed (DTDs and entities are off)")
    root = tree.getroot()
    for el in root.iter():
        if isinstance(el, etree._Entity):
            raise XMLFileError(file, el.sourceline, "entity references are not allowed")
    return root


def text_of(el: etree._Element) -> str:
    """The element's text, stripped; an empty element gives ''."""
    return (el.text or "").strip()


def local(el: etree._Element) -> str:
    tag = el.tag
    return etree.QName(tag).localname if isinstance(tag, str) else ""


T = TypeVar("T")


@dataclass
class _Loaded(Generic[T]):
    stamp: tuple[int, int]
    items: list[T]
    problems: list[FileProblem]


@dataclass
class Snapshot(Generic[T]):
    items: list[T] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)


class XMLDirectory(Generic[T]):
    """Every ``*.xml`` in a directory, parsed by ``load_file``, reloaded when a file
    changes (checked at most every ``interval`` seconds). A bad file is reported and
    skipped; the other files still load."""

    def __init__(
        self,
        directory: str | os.PathLike,
        load_file: Callable[[bytes, str], list[T]],
        interval: float = 2.0,
    ):
        self.directory = Path(directory)
        self.load_file = load_file
        self.interval = interval
        self._lock = threading.Lock()
        self._files: dict[str, _Loaded[T]] = {}
        self._checked = -1e9
        self._snapshot: Snapshot[T] = Snapshot()

    def snapshot(self) -> Snapshot[T]:
        now = time.monotonic()
        if now - self._checked < self.interval:
            return self._snapshot
        with self._lock:
            if now - self._checked >= self.interval:
                self._refresh()
                self._checked = time.monotonic()
            return self._snapshot

    def _refresh(self) -> None:
        try:
            names = sorted(p.name for p in self.directory.glob("*.xml") if p.is_file())
        except OSError as e:
            log.error("cannot list %s: %s", self.directory, e)
            names = []
        changed = set(self._files) - set(names)
        for name in names:
            path = self.directory / name
            try:
                st = path.stat()
            except OSError:
                continue
            stamp = (st.st_mtime_ns, st.st_size)
            old = self._files.get(name)
            if old is not None and old.stamp == stamp:
                continue
            changed.add(name)
            try:
                items = self.load_file(path.read_bytes(), name)
                problems: list[FileProblem] = []
            except XMLFileError as e:
                items, problems = [], [e.problem]
                log.error("%s", e.problem)
            except OSError as e:
                items, problems = [], [FileProblem(name, None, f"cannot read: {e.strerror}")]
                log.error("%s", problems[0])
            self._files[name] = _Loaded(stamp, items, problems)
        for name in set(self._files) - set(names):
            del self._files[name]
        if changed or not self._snapshot.items:
            items = [i for n in sorted(self._files) for i in self._files[n].items]
            problems = [p for n in sorted(self._files) for p in self._files[n].problems]
            self._snapshot = Snapshot(items, problems)
            if changed:
                log.info("loaded %d item(s) from %s", len(items), self.directory)
