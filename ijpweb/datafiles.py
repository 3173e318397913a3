"""Datafiles in and out: previews, images and upload limits over catalog.DataAccess (the
embedded IDS or a facility's, always with the user's session). Pure: no Pyramid.

A preview reads a bounded head of the file (:data:`previews.PREVIEW_BYTES`); an image is
read up to :data:`previews.MAX_IMAGE_BYTES` and converted to PNG with its pixels bounded;
an HDF5 file is spooled to a temporary file (h5py needs to seek) up to
:data:`previews.MAX_HDF5_BYTES` and shown as its tree. Nothing is held whole in memory
beyond those bounds, and nothing is read but through IDS as the user.
"""

from __future__ import annotations

import tempfile

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


def _spool(download, most: int, what: str):
    """The download's bytes in a temporary file (in memory up to SPOOL_MEMORY), refused
    past ``most`` bytes; the file is positioned at its start."""
    out = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY)  # noqa: SIM115 - returned open
    got = 0
    try:
        for chunk in download.body:
            got += len(chunk)
            if got > most:
                out.close()
                raise DataError(
                    f"{what} larger than {human_bytes(most)} is not shown here: download it", 413, "too_large"
                )
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


def _hdf5(data: DataAccess, session_id: str, df: DatafileView) -> previews.Preview:
    if df.size > previews.MAX_HDF5_BYTES:
        return previews.Preview(
            df.name, "none",
            message=f"an HDF5 file of more than {human_bytes(previews.MAX_HDF5_BYTES)} is not previewed: download it",
        )  # fmt: skip
    try:
        spooled = _spool(data.datafile(session_id, df.id), previews.MAX_HDF5_BYTES, "an HDF5 file")
    except DataError as e:
        if e.status != 413:
            raise
        return previews.Preview(df.name, "none", message=e.message)
    with spooled:
        return previews.hdf5_tree(spooled, df.name)


def image_png(data: DataAccess, session_id: str, df: DatafileView, side: int) -> bytes:
    """A PNG of the datafile's image, at most ``side`` pixels a side; PreviewError if it
    cannot be made (not an image, damaged, a decompression bomb), DataError if IDS refuses
    or the file is larger than MAX_IMAGE_BYTES."""
    if df.size > previews.MAX_IMAGE_BYTES:
        raise previews.PreviewError(
            f"an image of more than {human_bytes(previews.MAX_IMAGE_BYTES)} is not shown here: download it"
        )
    try:
        spooled = _spool(data.datafile(session_id, df.id), previews.MAX_IMAGE_BYTES, "an image")
    except DataError as e:
        if e.status != 413:
            raise
        raise previews.PreviewError(e.message) from None
    with spooled:
        if previews.image_type(spooled.read(16)) is None:
            raise previews.PreviewError("not an image this portal can show (PNG, JPEG, GIF or TIFF)")
        spooled.seek(0)
        return previews.image_to_png(spooled, max_side=side)


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
