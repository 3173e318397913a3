"""Datafiles in and out: previews, images and upload limits over catalog.DataAccess (the
embedded IDS or a facility's, always with the user's session). Pure: no Pyramid.

A preview reads a bounded head of the file (:data:`previews.PREVIEW_BYTES`); an image is
read up to :data:`previews.MAX_IMAGE_BYTES` and converted to PNG with its pixels bounded;
an HDF5 file is spooled to a temporary file (h5py needs to seek) up to
:data:`previews.MAX_HDF5_BYTES` and its tree read in a process of its own with resource
limits (:mod:`ijpweb.hdf5_reader`): libhdf5 never parses a user's bytes in the portal's
process. Nothing is held whole in memory beyond those bounds, and nothing is read but
through IDS as the user.

Images are converted in the portal's process (Pillow, pixels bounded before anything is
decoded: see bench/README.md, "Previews in a process of their own", for why), at most
:data:`MAX_CONVERSIONS` at once; the PNGs made are kept in a small cache (:class:`PngCache`)
keyed by the datafile's id and the digest of the bytes IDS gave for this request, so the
cache can only answer a request whose IDS read, as the user, succeeded.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections import OrderedDict
from dataclasses import dataclass

from . import previews
from .catalog import DataAccess, DataError, DatafileView

IMAGE_SUFFIXES = {"png", "jpg", "jpeg", "gif", "tif", "tiff"}
HDF5_SUFFIXES = {"h5", "hdf5", "hdf", "nxs"}
SPOOL_MEMORY = 1 << 20  # bytes of a spooled file kept in memory before it goes to disk


def human_bytes(n: int) -> str:
    """A size as the pages show sizes (decimal units: 1 GB is 10^9 bytes)."""
    for unit, size in (("GB", 10**9), ("MB", 10**6), ("KB", 10**3)):
        if n >= size:
            value = n / size
            return f"{value:.0f} {unit}" if value == round(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"


def is_image(name: str) -> bool:
    return previews.suffix(name) in IMAGE_SUFFIXES


def _spool(download, most: int, what: str, memory: int = SPOOL_MEMORY, digest=None):
    """The download's bytes in a temporary file (in memory up to ``memory`` bytes; 0: a
    real file from the start, with a descriptor), refused past ``most`` bytes; the file is
    positioned at its start. ``digest``: a hashlib object fed the bytes."""
    out = tempfile.SpooledTemporaryFile(max_size=memory) if memory else tempfile.TemporaryFile()  # noqa: SIM115
    got = 0
    try:
        for chunk in download.body:
            got += len(chunk)
            if got > most:
                out.close()
                raise DataError(
                    f"{what} larger than {human_bytes(most)} is not shown here: download it", 413, "too_large"
                )
            if digest is not None:
                digest.update(chunk)
            out.write(chunk)
    finally:
        download.close()
    out.seek(0)
    return out


def preview(data: DataAccess, session_id: str, df: DatafileView) -> previews.Preview:
    """The preview of a datafile the user may read (DataError if IDS refuses)."""
    if previews.suffix(df.name) in HDF5_SUFFIXES:
        return _hdf5(data, session_id, df)
    head = data.datafile(session_id, df.id).read(previews.PREVIEW_BYTES + 1)
    if previews.is_hdf5(head):
        return _hdf5(data, session_id, df)
    found = previews.preview(df.name, head, df.size or None)
    if found.kind == "image":  # decoded once (bounded) so that a damaged one says so here
        try:
            with _spool(data.datafile(session_id, df.id), previews.MAX_IMAGE_BYTES, "an image") as spooled:
                previews.check_image(spooled)
        except previews.PreviewError as e:
            return previews.Preview(df.name, "none", message=str(e))
        except DataError as e:
            if e.status != 413:
                raise
            return previews.Preview(df.name, "none", message=e.message)
    return found


HDF5_TIMEOUT = 15.0  # seconds of wall-clock time for the reader process
MAX_READERS = 2  # reader processes at once from one portal process (each up to 1 GB)
_readers = threading.BoundedSemaphore(MAX_READERS)


def hdf5_preview(source, name: str, timeout: float = HDF5_TIMEOUT) -> previews.Preview:
    """The tree of the HDF5 file ``source`` (a real file, with a descriptor, at its
    start), read by :mod:`ijpweb.hdf5_reader` in a process of its own: the file is its
    standard input, the environment minimal (no catalog session, nothing of the
    request's), its time bounded by ``timeout``; its memory, CPU and output by its own
    rlimits. A reader that fails says why as a preview of kind ``none``."""
    env = {"PATH": os.defpath, "LANG": "C.UTF-8", "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    if not _readers.acquire(timeout=CONVERSION_WAIT):
        return previews.Preview(
            name, "none", message="too many HDF5 previews are being made at once: try again in a moment"
        )
    try:
        return _read_hdf5(source, name, timeout, env)
    finally:
        _readers.release()


def _read_hdf5(source, name: str, timeout: float, env: dict) -> previews.Preview:
    with tempfile.TemporaryFile() as out:
        try:
            done = subprocess.run(  # noqa: S603 - a fixed command: no user value in argv
                [sys.executable, "-I", "-m", "ijpweb.hdf5_reader"],
                stdin=source,
                stdout=out,
                stderr=subprocess.DEVNULL,
                env=env,
                cwd="/",
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return _cannot(name, f"reading it took longer than the time limit of {timeout:g} s")
        out.seek(0)
        raw = out.read(previews.MAX_HDF5_TEXT * 4 + 4096)
    if done.returncode == -signal.SIGXCPU or done.returncode == -signal.SIGKILL:
        return _cannot(name, "reading it took more than the CPU time limit")
    if done.returncode == -signal.SIGXFSZ:
        return _cannot(name, "its description is longer than the size limit")
    try:
        body = json.loads(raw.decode("utf-8")) if done.returncode == 0 else None
    except ValueError:
        body = None
    if body is None:
        return _cannot(name, "the HDF5 library failed on it (a damaged or unusual file)")
    if body.get("error") == "memory":
        return _cannot(name, "reading it needed more than the memory limit")
    if body.get("kind") != "text":
        return previews.Preview(name, "none", message=str(body.get("message") or "it cannot be shown"))
    return previews.Preview(name, "text", text=str(body["text"]), notes=tuple(map(str, body["notes"])))


def _cannot(name: str, why: str) -> previews.Preview:
    return previews.Preview(name, "none", message=f"this HDF5 file's tree cannot be shown: {why}")


def _hdf5(data: DataAccess, session_id: str, df: DatafileView) -> previews.Preview:
    if df.size > previews.MAX_HDF5_BYTES:
        return previews.Preview(
            df.name, "none",
            message=f"an HDF5 file of more than {human_bytes(previews.MAX_HDF5_BYTES)} is not previewed: download it",
        )  # fmt: skip
    try:
        spooled = _spool(data.datafile(session_id, df.id), previews.MAX_HDF5_BYTES, "an HDF5 file", memory=0)
    except DataError as e:
        if e.status != 413:
            raise
        return previews.Preview(df.name, "none", message=e.message)
    with spooled:
        return hdf5_preview(spooled, df.name)


MAX_CONVERSIONS = 2  # images decoded at once in one portal process
CONVERSION_WAIT = 2.0  # seconds a request waits for its turn before it is told to retry
_conversions = threading.BoundedSemaphore(MAX_CONVERSIONS)


class Busy(Exception):
    """Every conversion slot is taken: the caller says 503 and when to retry."""

    retry_after = 2


class PngCache:
    """PNGs made from images, at most ``most`` bytes of them in all (the least recently
    used go first), keyed by (datafile id, digest of its bytes, side). Only ever asked
    with the digest of bytes just read from IDS as the user: it saves the decoding, never
    the authorisation."""

    def __init__(self, most: int = 16 << 20):
        self.most, self.used = most, 0
        self.items: OrderedDict[tuple, bytes] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple) -> bytes | None:
        with self.lock:
            png = self.items.get(key)
            if png is not None:
                self.items.move_to_end(key)
            return png

    def put(self, key: tuple, png: bytes) -> None:
        if len(png) > self.most // 4:
            return
        with self.lock:
            old = self.items.pop(key, None)
            self.used += len(png) - (len(old) if old is not None else 0)
            self.items[key] = png
            while self.used > self.most:
                _, gone = self.items.popitem(last=False)
                self.used -= len(gone)


PNGS = PngCache()


@dataclass(frozen=True)
class Png:
    body: bytes | None  # None when the caller's ETag matched (nothing was converted)
    etag: str


def image_png(data: DataAccess, session_id: str, df: DatafileView, side: int, known=(), cache=PNGS) -> Png:
    """A PNG of the datafile's image, at most ``side`` pixels a side, with its ETag (the
    digest of the file's bytes and the side: body None when it is in ``known``, the
    ETags the client holds, e.g. a request's if_none_match); PreviewError if it cannot be made (not an image, damaged, a
    decompression bomb; a thumbnail decodes at most previews.THUMB_MAX_PIXELS), DataError
    if IDS refuses or the file is larger than MAX_IMAGE_BYTES, Busy if MAX_CONVERSIONS
    are under way for CONVERSION_WAIT seconds. The file is read from IDS as the user on
    every call, even when the PNG is cached or the client's copy is current."""
    if df.size > previews.MAX_IMAGE_BYTES:
        raise previews.PreviewError(
            f"an image of more than {human_bytes(previews.MAX_IMAGE_BYTES)} is not shown here: download it"
        )
    digest = hashlib.sha256()
    try:
        spooled = _spool(
            data.datafile(session_id, df.id), previews.MAX_IMAGE_BYTES, "an image", digest=digest
        )
    except DataError as e:
        if e.status != 413:
            raise
        raise previews.PreviewError(e.message) from None
    etag = f"{digest.hexdigest()[:40]}-{side}"
    key = (df.id, digest.hexdigest(), side)
    with spooled:
        if etag in known:
            return Png(None, etag)
        png = cache.get(key)
        if png is not None:
            return Png(png, etag)
        if previews.image_type(spooled.read(16)) is None:
            raise previews.PreviewError("not an image this portal can show (PNG, JPEG, GIF or TIFF)")
        spooled.seek(0)
        if not _conversions.acquire(timeout=CONVERSION_WAIT):
            raise Busy("too many images are being converted at once: try again in a moment")
        try:
            if side <= previews.THUMB_SIDE:
                png = previews.thumbnail(spooled, side=side)
            else:
                png = previews.image_to_png(spooled, max_side=side)
        finally:
            _conversions.release()
    cache.put(key, png)
    return Png(png, etag)


class Bounded:
    """A stream read in chunks that stops an upload past the limit: the first read beyond
    ``limit`` bytes (counted over every file of one upload: ``counter`` is shared) raises
    DataError 413 naming the limit, so the put fails and its catalog row and file go."""

    def __init__(self, stream, counter: list[int], limit: int, setting: str = "ijp.upload.max_bytes"):
        self.stream, self.counter, self.limit, self.setting = stream, counter, limit, setting

    def read(self, size: int = -1) -> bytes:
        chunk = self.stream.read(size if size and size > 0 else 1 << 16)
        self.counter[0] += len(chunk)
        if self.counter[0] > self.limit:
            raise too_large(self.limit, self.setting)
        return chunk


def too_large(limit: int, setting: str = "ijp.upload.max_bytes") -> DataError:
    return DataError(
        f"the upload is larger than the limit of {human_bytes(limit)}"
        f"{f' ({limit:,} bytes, {setting})' if limit >= 1000 else f' ({setting})'}; nothing was stored",
        413,
        "too_large",
        "file",
    )
