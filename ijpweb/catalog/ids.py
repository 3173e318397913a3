"""The embedded IDS: datafile contents in a file store, served with IDS's semantics.

Every call runs as the user of the session: reading needs R on each Datafile, putting
needs C on the new Datafile, deleting needs D, all under the catalog's rules. Errors
are :class:`IdsError` with IDS's codes and HTTP statuses.
"""

from __future__ import annotations

import io
import os
import secrets
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import sqlalchemy as sa

from . import SessionError
from .icatdb import TABLES as T

VERSION = "2.1.0"
CHUNK = 1 << 16
STATUS = {
    "BadRequestException": 400,
    "InsufficientPrivilegesException": 403,
    "NotFoundException": 404,
    "InternalException": 500,
    "NotImplementedException": 501,
}


class IdsError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message, self.status = code, message, STATUS[code]


class FileStore:
    """Datafile contents under one directory, one file per datafile id."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def location(self, datafile_id: int) -> str:
        return f"{datafile_id // 1000:04d}/{datafile_id}"

    def path(self, location: str) -> Path:
        p = (self.root / location).resolve()
        if self.root.resolve() not in p.parents:
            raise IdsError("InternalException", "datafile location outside the store")
        return p

    def write(self, location: str, stream) -> tuple[int, int]:
        """Store the stream; return (size, crc32)."""
        target = self.path(location)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}")
        size, crc = 0, 0
        with open(tmp, "wb") as out:
            while chunk := stream.read(CHUNK):
                out.write(chunk)
                size += len(chunk)
                crc = zlib.crc32(chunk, crc)
        os.replace(tmp, target)
        return size, crc & 0xFFFFFFFF

    def remove(self, location: str) -> None:
        self.path(location).unlink(missing_ok=True)


@dataclass(frozen=True)
class Selection:
    investigation_ids: tuple[int, ...] = ()
    dataset_ids: tuple[int, ...] = ()
    datafile_ids: tuple[int, ...] = ()

    @classmethod
    def parse(cls, params) -> Selection:
        def ids(name):
            raw = (params.get(name) or "").strip()
            if not raw:
                return ()
            try:
                return tuple(int(x) for x in raw.split(","))
            except ValueError:
                raise IdsError(
                    "BadRequestException", f"{name} must be a comma-separated list of ids"
                ) from None

        sel = cls(ids("investigationIds"), ids("datasetIds"), ids("datafileIds"))
        if not (sel.investigation_ids or sel.dataset_ids or sel.datafile_ids):
            raise IdsError("BadRequestException", "give investigationIds, datasetIds or datafileIds")
        return sel


class Prepared:
    """Prepared selections by a random id, kept here (the session id they run as never
    leaves the server). Bounded: the oldest are forgotten first."""

    def __init__(self, limit: int = 10_000):
        self.limit = limit
        self._items: dict[str, tuple] = {}

    def add(self, value: tuple) -> str:
        token = secrets.token_urlsafe(24)
        self._items[token] = value
        while len(self._items) > self.limit:
            self._items.pop(next(iter(self._items)))
        return token

    def get(self, token: str) -> tuple | None:
        return self._items.get(token)


@dataclass(frozen=True)
class FileRow:
    id: int
    name: str
    location: str | None
    size: int
    dataset: str
    investigation: str


class Ids:
    def __init__(self, catalog, store: FileStore):
        self.catalog = catalog  # EmbeddedCatalog
        self.store = store

    def _user(self, session_id: str) -> str:
        if not session_id:
            raise IdsError("BadRequestException", "sessionId is required")
        try:
            return self.catalog.user_name(session_id)
        except SessionError as e:
            raise IdsError(
                "InsufficientPrivilegesException", f"sessionId {session_id[:4]}… is not valid: {e}"
            ) from None

    def _check(self, session_id: str, entity: str, ids: tuple[int, ...]) -> None:
        if not ids:
            return
        table = T[entity]
        found = set(self.catalog.run(sa.select(table.c.id).where(table.c.id.in_(ids))).scalars())
        missing = [i for i in ids if i not in found]
        if missing:
            raise IdsError("NotFoundException", f"{entity} {missing[0]} does not exist")
        for i in ids:
            if not self.catalog.allowed(session_id, entity, i, "R"):
                raise IdsError("InsufficientPrivilegesException", f"you may not read {entity} {i}")

    def files(self, session_id: str, sel: Selection) -> list[FileRow]:
        """The datafiles of a selection; every object named must exist and be readable."""
        self._user(session_id)
        self._check(session_id, "Investigation", sel.investigation_ids)
        self._check(session_id, "Dataset", sel.dataset_ids)
        self._check(session_id, "Datafile", sel.datafile_ids)
        df, ds, inv = T["Datafile"], T["Dataset"], T["Investigation"]
        q = (
            sa.select(df.c.id, df.c.name, df.c.location, df.c.fileSize, ds.c.name, inv.c.name)
            .join(ds, df.c.dataset_id == ds.c.id)
            .outerjoin(inv, ds.c.investigation_id == inv.c.id)
            .where(
                sa.or_(
                    df.c.id.in_(sel.datafile_ids),
                    df.c.dataset_id.in_(sel.dataset_ids),
                    ds.c.investigation_id.in_(sel.investigation_ids),
                )
            )
            .order_by(df.c.id)
        )
        q = self.catalog.restrict(session_id, q, "Datafile", df.c.id)
        rows = self.catalog.run(q).all()
        return [FileRow(r[0], r[1], r[2], r[3] or 0, r[4] or "", r[5] or "") for r in rows]

    def size(self, session_id: str, sel: Selection) -> int:
        return sum(f.size for f in self.files(session_id, sel))

    def datafile_ids(self, session_id: str, sel: Selection) -> list[int]:
        return [f.id for f in self.files(session_id, sel)]

    def data(
        self, session_id: str, sel: Selection, zip_flag: bool, offset: int = 0
    ) -> tuple[str, str, Iterator[bytes]]:
        """(content type, file name, body) of one datafile, or a zip of several."""
        files = self.files(session_id, sel)
        if not files:
            raise IdsError("NotFoundException", "the selection holds no datafiles")
        for f in files:
            if not f.location or not self.store.path(f.location).is_file():
                raise IdsError("NotFoundException", f"the contents of datafile {f.id} are not in the store")
        if len(files) == 1 and not zip_flag and not sel.dataset_ids and not sel.investigation_ids:
            return "application/octet-stream", files[0].name, self._read(files[0].location, offset)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for f in files:
                z.write(self.store.path(f.location), f"ids/{f.investigation}/{f.dataset}/{f.name}")
        data = buf.getvalue()[offset:]
        return "application/zip", "ids.zip", iter([data])

    def _read(self, location: str, offset: int) -> Iterator[bytes]:
        with open(self.store.path(location), "rb") as fh:
            fh.seek(offset)
            while chunk := fh.read(CHUNK):
                yield chunk

    def put(
        self,
        session_id: str,
        stream,
        name: str,
        dataset_id: int,
        format_id: int | None,
        description: str | None = None,
        create_time: datetime | None = None,
        mod_time: datetime | None = None,
    ) -> tuple[int, int]:
        """Store the bytes and create the Datafile; return (id, crc32)."""
        self._user(session_id)
        if not name or "/" in name or name in (".", ".."):
            raise IdsError("BadRequestException", "name must be a plain file name")
        self._check(session_id, "Dataset", (dataset_id,))
        if self.catalog.run(
            sa.select(T["Datafile"].c.id).where(
                T["Datafile"].c.dataset_id == dataset_id, T["Datafile"].c.name == name
            )
        ).first():
            raise IdsError(
                "BadRequestException", f"dataset {dataset_id} already has a datafile called {name!r}"
            )
        values = {"name": name, "dataset_id": dataset_id, "datafileFormat_id": format_id, "description": description,
                  "datafileCreateTime": create_time, "datafileModTime": mod_time}  # fmt: skip
        try:
            new_id = self.catalog.create(session_id, "Datafile", values)
        except PermissionError as e:
            raise IdsError("InsufficientPrivilegesException", str(e)) from None
        except sa.exc.IntegrityError:
            raise IdsError("BadRequestException", f"datafileFormat {format_id} does not exist") from None
        location = self.store.location(new_id)
        size, crc = self.store.write(location, stream)
        self.catalog.run(
            T["Datafile"].update().where(T["Datafile"].c.id == new_id)
            .values(location=location, fileSize=size, checksum=f"{crc:08x}")
        )  # fmt: skip
        return new_id, crc

    def delete(self, session_id: str, sel: Selection) -> list[str]:
        """Delete the Datafiles; return the store locations to remove once that commits."""
        files = self.files(session_id, sel)
        for f in files:
            try:
                self.catalog.delete(session_id, "Datafile", f.id)
            except PermissionError as e:
                raise IdsError("InsufficientPrivilegesException", str(e)) from None
        return [f.location for f in files if f.location]
