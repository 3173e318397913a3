"""The embedded IDS: datafile contents in a file store, served with IDS's semantics.

Every call runs as the user of the session: reading needs R on each Datafile, putting
needs C on the new Datafile, deleting needs D, all under the catalog's rules. Errors
are :class:`IdsError` with IDS's codes and HTTP statuses.

Locations cannot be forged. As icat.server's IDS does with its ``key``, the location a
Datafile carries in the catalog is ``"<path> <digest>"``, where the digest is an
HMAC-SHA256 of ``"<datafile id> <path>"`` keyed by the server's IDS key (see
:func:`server_key`). Only :meth:`Ids.put` (and the operator's demo loader, dump loader
and migration) write such locations; a location a client gives through ICAT's
``entityManager`` is kept as metadata but never addresses the store: any read (getData,
getSize, getStatus, getDatafileIds, prepareData) of a selection holding a datafile whose
digest does not match is an ``InsufficientPrivilegesException``, as in ids.server. A
signed path is also resolved (symlinks included) and must stay inside the store; one that
does not is refused the same way, never a 500. Deleting such a datafile removes its
catalog row, as the D rules allow (there is no ICAT delete here to do it), and nothing in
the store: only a location that passes both checks ever has its file removed.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import io
import os
import re
import secrets
import stat
import unicodedata
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import sqlalchemy as sa

from .. import inputs
from ..models.catalog import CatalogSession, PreparedData
from ..models.jobs import as_utc, utcnow
from . import DataError, Download, InvestigationView, SessionError
from .icatdb import TABLES as T

VERSION = "2.1.0"
CHUNK = 1 << 16
MAX_SESSION_ID = 256
MIN_KEY = 16
HEX64 = re.compile(r"[0-9a-f]{64}", re.ASCII)
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


# --- the server's key and the location digest ---------------------------------------------


def server_key(key: str = "", key_file: str = "") -> bytes:
    """The IDS key: ``key`` (from ``IJP_IDS_KEY`` or ``ijp.ids.key``) if given, else the
    contents of ``key_file``, which is created (mode 0600, 32 random bytes as hex) the
    first time. With neither, the embedded IDS cannot run: raise ValueError saying so."""
    if key:
        if len(key) < MIN_KEY:
            raise ValueError(
                f"the IDS key (IJP_IDS_KEY or ijp.ids.key) must have at least {MIN_KEY} characters"
            )
        return key.encode("utf-8", "surrogateescape")
    if not key_file:
        raise ValueError(
            "the embedded IDS needs a key to sign datafile locations: set IJP_IDS_KEY "
            "(or ijp.ids.key_file to a file it may create, as development.ini does)"
        )
    path = Path(key_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # written whole under another name, then linked into place (which fails if another
        # portal process starting at the same moment was first: its key is the one kept),
        # so that no process reads a key file another has created but not yet written
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as out:
                out.write(secrets.token_hex(32) + "\n")
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)
        finally:
            tmp.unlink()
    if stat.S_IMODE(path.stat().st_mode) & 0o077:
        raise ValueError(f"the IDS key file {path} may be read by others: chmod 600 it")
    text = path.read_text().strip()
    if len(text) < MIN_KEY:
        raise ValueError(f"the IDS key file {path} must hold at least {MIN_KEY} characters")
    return text.encode()


def digest(key: bytes, datafile_id: int, path: str) -> str:
    message = f"{datafile_id} {path}".encode("utf-8", "surrogatepass")
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def sign(key: bytes, datafile_id: int, path: str) -> str:
    """The location to store in the catalog for ``path``: the path and its digest."""
    return f"{path} {digest(key, datafile_id, path)}"


def verified_path(key: bytes, datafile_id: int, location: str) -> str | None:
    """The path of a location this server signed for this datafile, else None."""
    path, _, given = location.rpartition(" ")
    if not path or not HEX64.fullmatch(given):
        return None
    return path if hmac.compare_digest(given, digest(key, datafile_id, path)) else None


def canonical_path(datafile_id: int) -> str:
    """Where put (and the demo loader) keep a datafile's contents."""
    return f"{datafile_id // 1000:04d}/{datafile_id}"


class FileStore:
    """Datafile contents under one directory, one file per datafile id, addressed only
    by locations signed with the server's key."""

    def __init__(self, root: str | os.PathLike, key: bytes):
        if len(key) < MIN_KEY:
            raise ValueError(f"the IDS key must have at least {MIN_KEY} bytes")
        self.root = Path(root)
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.real_root = self.root.resolve()
        self.key = key

    def sign(self, datafile_id: int, path: str) -> str:
        return sign(self.key, datafile_id, path)

    def _outside(self, datafile_id: int) -> IdsError:
        return IdsError(
            "InsufficientPrivilegesException",
            f"datafile {datafile_id}: its location is outside the file store",
        )

    def within(self, datafile_id: int, path: str) -> str:
        """``path`` if, read as text, it stays in the store: relative, no ``..``, no NUL
        (no file system access: cheap enough for every datafile of a getSize)."""
        parts = path.split("/")
        if "\0" in path or path.startswith("/") or ".." in parts or all(p in ("", ".") for p in parts):
            raise self._outside(datafile_id)
        return path

    def inside(self, datafile_id: int, path: str) -> Path:
        """``path`` resolved under the store, symbolic links followed; refused if that
        leaves the store."""
        self.within(datafile_id, path)
        try:
            p = (self.real_root / path).resolve()
        except (OSError, ValueError, RuntimeError):
            raise self._outside(datafile_id) from None
        if self.real_root not in p.parents:
            raise self._outside(datafile_id)
        return p

    def path(self, datafile_id: int, location: str) -> str:
        """The store path of a datafile whose location this server signed (checked as text)."""
        path = verified_path(self.key, datafile_id, location)
        if path is None:
            raise IdsError(
                "InsufficientPrivilegesException",
                f"datafile {datafile_id}: its location was not set by this IDS "
                "(only put stores contents), so nothing can be read through it",
            )
        return self.within(datafile_id, path)

    def file(self, datafile_id: int, location: str) -> Path:
        """The store file of a datafile whose location this server signed, resolved."""
        return self.inside(datafile_id, self.path(datafile_id, location))

    def put(self, datafile_id: int, stream) -> tuple[str, int, int]:
        """Store the stream as the datafile's contents; return (signed location, size, crc32)."""
        path = canonical_path(datafile_id)
        target = self.inside(datafile_id, path)
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        target = self.inside(datafile_id, path)  # the directory may not be a link out
        tmp = target.with_name(f".{target.name}.{secrets.token_hex(4)}")
        size, crc = 0, 0
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(CHUNK):
                    out.write(chunk)
                    size += len(chunk)
                    crc = zlib.crc32(chunk, crc)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return self.sign(datafile_id, path), size, crc & 0xFFFFFFFF

    def remove(self, path: Path) -> None:
        """Remove a file that :meth:`file` returned."""
        path.unlink(missing_ok=True)


# --- selections -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Selection:
    investigation_ids: tuple[int, ...] = ()
    dataset_ids: tuple[int, ...] = ()
    datafile_ids: tuple[int, ...] = ()

    @classmethod
    def parse(cls, params) -> Selection:
        """The ids of a request (1 to 2^63-1 each, at most MAX_IDS in all); a bad list is a
        BadRequestException naming the parameter, never repeating its value."""

        def ids(name):
            try:
                return tuple(dict.fromkeys(inputs.id_list(params.get(name) or "", name)))
            except inputs.InputError as e:
                raise IdsError("BadRequestException", e.message) from None

        sel = cls(ids("investigationIds"), ids("datasetIds"), ids("datafileIds"))
        if not (sel.investigation_ids or sel.dataset_ids or sel.datafile_ids):
            raise IdsError("BadRequestException", "give investigationIds, datasetIds or datafileIds")
        if len(sel.investigation_ids) + len(sel.dataset_ids) + len(sel.datafile_ids) > inputs.MAX_IDS:
            raise IdsError("BadRequestException", f"give at most {inputs.MAX_IDS} ids in all")
        return sel


class Prepared:
    """Prepared selections by a random id (a bearer credential, as in IDS), kept in the
    database by its SHA-256 (ids_prepared): any portal process answers for an id another
    gave, after a restart too. The session id they run as never leaves the server. An id
    is good for PREPARED_HOURS (the purge then forgets it)."""

    def __init__(self, max_live: int = 100):
        self.max_live = max_live  # live prepared ids per catalog user (0: no cap)

    def add(self, db, value: tuple) -> str:
        """A new prepared id for ``value`` (session id, selection, zip, compress); refused
        (IdsError, 400) when the session's user already holds ``max_live`` live ones: each is a
        row kept for PREPARED_HOURS, so one login could otherwise fill the table."""
        session_id, sel, zip_flag, compress = value
        if self.max_live:
            user = (
                sa.select(CatalogSession.user_name).where(CatalogSession.id == session_id).scalar_subquery()
            )
            live = db.scalar(
                sa.select(sa.func.count())
                .select_from(PreparedData)
                .join(CatalogSession, CatalogSession.id == PreparedData.catalog_session)
                .where(
                    CatalogSession.user_name == user,
                    CatalogSession.expires_at > utcnow(),
                    PreparedData.created_at >= utcnow() - timedelta(hours=PREPARED_HOURS),
                )
            )
            if live >= self.max_live:
                raise IdsError(
                    "BadRequestException",
                    f"at most {self.max_live} prepared ids may be live per user (ijp.ids.max_prepared); "
                    f"they last {PREPARED_HOURS} hours or until their session ends: reuse one, or log out "
                    "sessions you no longer need",
                )
        token = secrets.token_urlsafe(24)
        db.add(
            PreparedData(
                key=_prepared_key(token),
                catalog_session=session_id,
                selection={
                    "investigationIds": list(sel.investigation_ids),
                    "datasetIds": list(sel.dataset_ids),
                    "datafileIds": list(sel.datafile_ids),
                },
                zip=zip_flag,
                compress=compress,
                created_at=utcnow(),
            )
        )
        db.flush()
        return token

    def get(self, db, token: str) -> tuple | None:
        if not token or len(token) > 200:
            return None
        # one query: the id, if its catalog session still exists and has not expired (a
        # logged-out session's ids are gone at once, not at the next purge)
        row = db.scalar(
            sa.select(PreparedData)
            .join(CatalogSession, CatalogSession.id == PreparedData.catalog_session)
            .where(PreparedData.key == _prepared_key(token), CatalogSession.expires_at > utcnow())
        )
        if row is None or as_utc(row.created_at) < utcnow() - timedelta(hours=PREPARED_HOURS):
            return None
        sel = row.selection
        selection = Selection(
            tuple(sel["investigationIds"]), tuple(sel["datasetIds"]), tuple(sel["datafileIds"])
        )
        return row.catalog_session, selection, row.zip, row.compress


PREPARED_HOURS = 24


def purge_prepared(db) -> int:
    """Forget prepared ids older than PREPARED_HOURS or whose catalog session has gone."""
    old = PreparedData.created_at < utcnow() - timedelta(hours=PREPARED_HOURS)
    gone = PreparedData.catalog_session.not_in(sa.select(CatalogSession.id))
    return db.execute(sa.delete(PreparedData).where(old | gone)).rowcount


def _prepared_key(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class FileRow:
    id: int
    name: str
    location: str | None
    size: int
    dataset: str
    investigation: str


# --- streaming bodies ------------------------------------------------------------------------


class FileBody:
    """A store file from an offset, in chunks, as a WSGI app_iter: the file is opened
    when the response is made (so a missing one is a clean error) and closed at the end
    or when the server gives up on the client."""

    def __init__(self, path: Path, offset: int):
        self.fh = open(path, "rb")  # noqa: SIM115 - closed by close(), as WSGI requires
        size = os.fstat(self.fh.fileno()).st_size
        self.length = max(0, size - offset)
        self.fh.seek(min(offset, size))

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.fh.read(CHUNK):
            yield chunk

    def close(self) -> None:
        self.fh.close()


class _Sink:
    """A write-only, non-seekable file for zipfile: what it gets is handed on in pieces."""

    def __init__(self):
        self.parts: list[bytes] = []

    def write(self, data) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out = b"".join(self.parts)
        self.parts.clear()
        return out


def plain_name(name: str) -> bool:
    """A datafile name put may store: one path component of printable characters, none
    invisible (:func:`invisible`)."""
    return (
        0 < len(name) <= 255
        and name not in (".", "..")
        and "/" not in name
        and not has_control(name)
        and invisible(name) is None
    )


def has_control(text: str) -> bool:
    """Control characters (CR, LF, NUL...) or lone surrogates."""
    return any(unicodedata.category(c) in ("Cc", "Cs") for c in text)


# Unicode categories of characters a name must not hold besides controls: format
# characters (bidi overrides and isolates, zero-width spaces and joiners, BOM, soft
# hyphen...) and line/paragraph separators: they make a name display as another
# ("report\u202efdp.exe" shows as "reportexe.pdf")
INVISIBLE_CATEGORIES = ("Cf", "Zl", "Zp")


def invisible(text: str) -> str | None:
    """The first character of ``text`` that is invisible or reorders what follows (see
    INVISIBLE_CATEGORIES), or None."""
    return next((c for c in text if unicodedata.category(c) in INVISIBLE_CATEGORIES), None)


def zip_name(part: str) -> str:
    """One component of a name inside a zip: no separators, no '..', no control or
    invisible characters (catalog names are user data, which may have come in through
    /icat: a client unzipping must not be led out, nor shown one name for another)."""
    clean = "".join("_" if c in "/\\" or has_control(c) or invisible(c) else c for c in part)
    return "_" if clean in ("", ".", "..") else clean


def zip_stream(
    entries: Iterable[tuple[str, Path | Callable[[], BinaryIO]]], offset: int = 0, compress: bool = False
) -> Iterator[bytes]:
    """A zip of the files, produced as it is sent (never held whole), from ``offset``.
    As ids.server does, entries are deflated at level 0 (stored blocks: fast) unless
    ``compress``. An entry's file is a path, or a function that opens it (a job's output
    files are opened without following links: ijpweb.outputs.zip_entries); ``entries``
    may be a generator, taken one at a time."""
    sink, skip = _Sink(), offset

    def pending() -> bytes:
        nonlocal skip
        data = sink.take()
        if skip:
            cut = min(skip, len(data))
            data, skip = data[cut:], skip - cut
        return data

    with zipfile.ZipFile(sink, "w", zipfile.ZIP_DEFLATED, compresslevel=6 if compress else 0) as z:
        for arcname, path in entries:
            with path() if callable(path) else open(path, "rb") as src:
                try:
                    big = os.fstat(src.fileno()).st_size >= zipfile.ZIP64_LIMIT
                except (OSError, io.UnsupportedOperation):  # (not a local file: its size unknown)
                    big = True
                with z.open(arcname, "w", force_zip64=big) as dst:
                    while chunk := src.read(CHUNK):
                        dst.write(chunk)
                        if data := pending():
                            yield data
    if data := pending():
        yield data


# --- the service -------------------------------------------------------------------------------


def check_session_id(session_id: str) -> None:
    """A session id must look like one; the message never repeats any of it."""
    if not session_id:
        raise IdsError("BadRequestException", "sessionId is required")
    if len(session_id) > MAX_SESSION_ID or not all("!" <= c <= "~" for c in session_id):
        raise IdsError("BadRequestException", "sessionId is not a well-formed session id")


class Ids:
    def __init__(self, catalog, store: FileStore):
        self.catalog = catalog  # EmbeddedCatalog
        self.store = store

    def _user(self, session_id: str) -> str:
        check_session_id(session_id)
        try:
            return self.catalog.user_name(session_id)
        except SessionError as e:
            raise IdsError("InsufficientPrivilegesException", f"the sessionId is not valid: {e}") from None

    def _check(self, session_id: str, entity: str, ids: tuple[int, ...]) -> None:
        if not ids:
            return
        table = T[entity]
        found = set(self.catalog.run(sa.select(table.c.id).where(table.c.id.in_(ids))).scalars())
        missing = [i for i in ids if i not in found]
        if missing:
            raise IdsError("NotFoundException", f"{entity} {missing[0]} does not exist")
        # one query for all of them, not one per id (a selection may name thousands)
        query = sa.select(table.c.id).where(table.c.id.in_(ids))
        readable = set(
            self.catalog.run(self.catalog.restrict(session_id, query, entity, table.c.id)).scalars()
        )
        hidden = [i for i in ids if i not in readable]
        if hidden:
            raise IdsError("InsufficientPrivilegesException", f"you may not read {entity} {hidden[0]}")

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

    def located(
        self, session_id: str, sel: Selection, resolve: bool = False
    ) -> list[tuple[FileRow, Path | None]]:
        """The datafiles of a selection that have contents, with their store files when
        ``resolve`` (to read them; otherwise their locations are checked as text only).

        As in ids.server, datafiles without a location are left out (a datafile named
        explicitly without one is NotFound), and one whose location this server did not
        sign, or that leaves the store, makes the whole call an
        InsufficientPrivilegesException."""
        named = set(sel.datafile_ids)
        out: list[tuple[FileRow, Path | None]] = []
        for f in self.files(session_id, sel):
            if f.location is None:
                if f.id in named:
                    raise IdsError("NotFoundException", f"datafile {f.id} has no contents in this IDS")
                continue
            if resolve:
                out.append((f, self.store.file(f.id, f.location)))
            else:
                self.store.path(f.id, f.location)
                out.append((f, None))
        return out

    def size(self, session_id: str, sel: Selection) -> int:
        return sum(f.size for f, _ in self.located(session_id, sel))

    def datafile_ids(self, session_id: str, sel: Selection) -> list[int]:
        return [f.id for f, _ in self.located(session_id, sel)]

    def data(
        self, session_id: str, sel: Selection, zip_flag: bool, offset: int = 0, compress: bool = False
    ) -> tuple[str, str, object]:
        """(content type, file name, body) of one datafile, or a zip of several; the body
        streams from the store (a :class:`FileBody` or a zip generator)."""
        files = self.located(session_id, sel, resolve=True)
        if not files:
            raise IdsError("NotFoundException", "the selection holds no datafiles with contents")
        for f, path in files:
            if not path.is_file():
                raise IdsError("NotFoundException", f"the contents of datafile {f.id} are not in the store")
        if len(files) == 1 and not zip_flag and not sel.dataset_ids and not sel.investigation_ids:
            (f, path), = files  # fmt: skip
            try:
                return "application/octet-stream", f.name, FileBody(path, offset)
            except OSError:
                raise IdsError(
                    "NotFoundException", f"the contents of datafile {f.id} are not in the store"
                ) from None
        entries = [
            ("/".join(["ids", *(zip_name(p) for p in (f.investigation, f.dataset, f.name))]), path)
            for f, path in files
        ]
        return "application/zip", "ids.zip", zip_stream(entries, offset, compress)

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
        if not plain_name(name):
            raise IdsError(
                "BadRequestException",
                "name must be a plain file name: no '/', no control characters, at most 255 characters",
            )
        self._check(session_id, "Dataset", (dataset_id,))
        if self.catalog.run(
            sa.select(T["Datafile"].c.id).where(
                T["Datafile"].c.dataset_id == dataset_id, T["Datafile"].c.name == name
            )
        ).first():
            raise IdsError("BadRequestException", f"dataset {dataset_id} already has a datafile of that name")
        values = {"name": name, "dataset_id": dataset_id, "datafileFormat_id": format_id, "description": description,
                  "datafileCreateTime": create_time, "datafileModTime": mod_time}  # fmt: skip
        try:
            new_id = self.catalog.create(session_id, "Datafile", values)
        except PermissionError as e:
            raise IdsError("InsufficientPrivilegesException", str(e)) from None
        except sa.exc.IntegrityError:
            raise IdsError("BadRequestException", f"datafileFormat {format_id} does not exist") from None
        try:
            location, size, crc = self.store.put(new_id, stream)
        except BaseException:  # (the stream failed, or went past a limit: no datafile without contents)
            self.catalog.run(T["Datafile"].delete().where(T["Datafile"].c.id == new_id))
            raise
        self.catalog.run(
            T["Datafile"].update().where(T["Datafile"].c.id == new_id)
            .values(location=location, fileSize=size, checksum=f"{crc:08x}")
        )  # fmt: skip
        return new_id, crc

    def delete(self, session_id: str, sel: Selection) -> list[Path]:
        """Delete the Datafiles (as the D rules allow); return the store files to remove
        once that commits: only those of locations this server signed. A datafile whose
        location fails the check loses its catalog row (as deleting it through ICAT would)
        but nothing in the store: it never addressed anything there."""
        paths = []
        for f in self.files(session_id, sel):
            try:
                self.catalog.delete(session_id, "Datafile", f.id)
            except PermissionError as e:
                raise IdsError("InsufficientPrivilegesException", str(e)) from None
            if f.location is not None:
                with contextlib.suppress(IdsError):
                    paths.append(self.store.file(f.id, f.location))
        return paths


# --- the portal's own downloads and uploads (catalog.DataAccess) ------------------------------

# a new datafile's format, by the end of its name (matched to the facility's format names,
# case-insensitively); a name that fits none gets no format, or on ICAT the fallback
FORMAT_BY_EXTENSION = {
    ".tif": "TIFF", ".tiff": "TIFF", ".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG",
    ".h5": "HDF5", ".hdf5": "HDF5", ".hdf": "HDF5", ".nxs": "NeXus", ".csv": "CSV",
    ".txt": "Text", ".log": "Text", ".md": "Text", ".json": "JSON", ".xml": "XML",
}  # fmt: skip
MAX_NAME = 255  # characters of a datafile or dataset name (ICAT's column)
MAX_DESCRIPTION = 4000


def format_for(name: str, formats: dict[str, int]) -> int | None:
    """The id of the format (of ``formats``, name -> id) that the file name's extension
    suggests, or None."""
    ext = os.path.splitext(name)[1].lower()
    wanted = FORMAT_BY_EXTENSION.get(ext, "").lower()
    by_lower = {k.lower(): v for k, v in formats.items()}
    return by_lower.get(wanted) if wanted else None


def check_file_name(name: str, field: str = "name") -> str:
    """A datafile name a user gives (an upload's file name): one plain path component
    (:func:`plain_name`), or a DataError naming the field and what is wrong."""
    if not isinstance(name, str) or not name:
        raise DataError(f"{field} is required: the file's name", field=field)
    if len(name) > MAX_NAME:
        raise DataError(f"{field} has {len(name)} characters; at most {MAX_NAME}", field=field)
    if "/" in name or "\\" in name or name in (".", ".."):
        raise DataError(f"{field} must be a plain file name, without '/', '\\' or '..'", field=field)
    if has_control(name):
        raise DataError(f"{field} must not hold control characters (NUL, newlines...)", field=field)
    _check_visible(name, field)
    return name


def check_dataset_name(name: str, field: str = "name") -> str:
    name = name.strip() if isinstance(name, str) else ""
    if not name:
        raise DataError(f"{field} is required: the new dataset's name", field=field)
    if len(name) > MAX_NAME:
        raise DataError(f"{field} has {len(name)} characters; at most {MAX_NAME}", field=field)
    if has_control(name):
        raise DataError(f"{field} must not hold control characters (NUL, newlines...)", field=field)
    _check_visible(name, field)
    return name


def _check_visible(name: str, field: str) -> None:
    c = invisible(name)
    if c is not None:
        raise DataError(
            f"{field} must not hold invisible or direction-changing characters: it holds U+{ord(c):04X}"
            f" ({unicodedata.name(c, 'a format character')}), which would make it display as another name",
            field=field,
        )


def unseen(kind: str, object_id) -> DataError:
    """What one may not read, whether it exists or not: one answer for both."""
    return DataError(f"not found or not visible to you: {kind} {object_id}", 404, "not_found")


def zip_entry(investigation: str, dataset: str, name: str) -> str:
    """A datafile's path in a download zip: ``<investigation>/<dataset>/<name>``, each part
    made safe (:func:`zip_name`)."""
    return "/".join(zip_name(p) for p in (investigation or "investigation", dataset or "dataset", name))


class EmbeddedData:
    """catalog.DataAccess for the embedded IDS: every read and write goes through
    :class:`Ids` with the user's session, as a client of /ids would."""

    def __init__(self, ids: Ids, max_zip_files: int = 10_000):
        self.ids = ids
        self.catalog = ids.catalog
        self.max_zip_files = max_zip_files
        self.stored: list[Path] = []  # store files written by put in this request
        self.created: list[int] = []  # and their datafiles

    def _session(self, session_id: str) -> None:
        self.catalog.user_name(session_id)  # SessionError when expired

    def datafile(self, session_id: str, datafile_id: int) -> Download:
        self._session(session_id)
        try:
            _, name, body = self.ids.data(session_id, Selection(datafile_ids=(datafile_id,)), False)
        except IdsError as e:
            missing = e.code == "NotFoundException" and (
                "has no contents" in e.message or "not in the store" in e.message
            )
            if missing and self.catalog.datafiles(session_id, [datafile_id]):
                raise DataError(f"datafile {datafile_id} has no contents in IDS", 404, "not_found") from None
            raise unseen("datafile", datafile_id) from None
        return Download(name, "application/octet-stream", body, body.length)

    def zip(self, session_id: str, dataset_ids, datafile_ids, name: str) -> Download:
        self._session(session_id)
        sel = Selection(
            dataset_ids=tuple(dict.fromkeys(dataset_ids)), datafile_ids=tuple(dict.fromkeys(datafile_ids))
        )
        if not sel.dataset_ids and not sel.datafile_ids:
            raise DataError("nothing to download: no datasets or datafiles named", field="ids")
        for kind, ids in (("dataset", sel.dataset_ids), ("datafile", sel.datafile_ids)):
            if len(ids) > inputs.MAX_IDS:
                raise DataError(f"{kind} ids: at most {inputs.MAX_IDS} at once", field=f"{kind}_ids")
        # every id must be one the user may read: else the answer of a missing one, naming
        # the first (the zip never leaves out quietly what one named)
        seen_ds = (
            {d.id for d in self.catalog.datasets(session_id, list(sel.dataset_ids))}
            if sel.dataset_ids
            else set()
        )
        for i in sel.dataset_ids:
            if i not in seen_ds:
                raise unseen("dataset", i)
        if sel.datafile_ids:
            seen_df = {f.id for f in self.catalog.datafiles(session_id, list(sel.datafile_ids))}
            for i in sel.datafile_ids:
                if i not in seen_df:
                    raise unseen("datafile", i)
        try:
            files = self.ids.located(session_id, sel, resolve=True)
        except IdsError as e:
            raise DataError(f"IDS refused the download: {e.message}", 404, "not_found") from None
        if len(files) > self.max_zip_files:
            raise DataError(
                f"the zip would hold {len(files):,} files; at most {self.max_zip_files:,} "
                "(ijp.download.zip_max_files): download fewer datasets at once",
                413,
                "too_large",
            )
        if not files:
            raise DataError(
                "there is nothing to download: no datafile there has contents in IDS", 404, "not_found"
            )
        entries, seen = [], set()
        for f, path in files:
            if not path.is_file():
                raise DataError(f"the contents of datafile {f.id} are missing from IDS", 404, "not_found")
            arcname = zip_entry(f.investigation, f.dataset, f.name)
            if arcname in seen:  # (a name twice: datafiles of two datasets of one name)
                arcname = f"{arcname}.{f.id}"
            seen.add(arcname)
            entries.append((arcname, path))
        return Download(name, "application/zip", zip_stream(entries))

    def put(self, session_id: str, dataset_id: int, name: str, stream) -> int:
        self._session(session_id)
        check_file_name(name)
        if not self.catalog.datasets(session_id, [dataset_id]):
            raise unseen("dataset", dataset_id)
        formats = dict(
            self.catalog.run(sa.select(T["DatafileFormat"].c.name, T["DatafileFormat"].c.id)).all()
        )
        try:
            new_id, _ = self.ids.put(session_id, stream, name, dataset_id, format_for(name, formats))
        except IdsError as e:
            if "already has a datafile" in e.message:
                raise DataError(
                    f"dataset {dataset_id} already has a datafile named {name!r}: rename the file "
                    "or delete the old one first",
                    409,
                    "exists",
                    "name",
                ) from None
            if e.code == "InsufficientPrivilegesException":
                raise DataError(
                    f"you may not add datafiles to dataset {dataset_id} (the catalog's rules decide)",
                    403,
                    "forbidden",
                ) from None
            raise DataError(f"IDS refused the upload: {e.message}", e.status, "bad_parameter") from None
        location = self.catalog.run(
            sa.select(T["Datafile"].c.location).where(T["Datafile"].c.id == new_id)
        ).scalar()
        self.created.append(new_id)
        with contextlib.suppress(IdsError):
            self.stored.append(self.ids.store.file(new_id, location))
        return new_id

    def undo(self) -> None:
        """Take back every put of this request (an upload of several files is all or
        nothing): their datafiles and their contents."""
        if self.created:
            self.catalog.run(T["Datafile"].delete().where(T["Datafile"].c.id.in_(self.created)))
            self.created.clear()
        self.discard()

    def discard(self) -> None:
        """Remove the store files this request's puts wrote (its transaction did not commit:
        their catalog rows are gone, so must their contents be)."""
        for path in self.stored:
            self.ids.store.remove(path)
        self.stored.clear()

    def new_dataset(
        self, session_id: str, investigation_id: int, name: str, type_name: str, description: str = ""
    ) -> int:
        self._session(session_id)
        name = check_dataset_name(name)
        if len(description or "") > MAX_DESCRIPTION or has_control(
            (description or "").replace("\n", "").replace("\r", "").replace("\t", "")
        ):
            raise DataError(f"description: at most {MAX_DESCRIPTION} characters of text", field="description")
        inv = T["Investigation"]
        q = self.catalog.restrict(
            session_id, sa.select(inv.c.id).where(inv.c.id == investigation_id), "Investigation", inv.c.id
        )
        if self.catalog.run(q).first() is None:
            raise unseen("investigation", investigation_id)
        dt = T["DatasetType"]
        types = dict(self.catalog.run(sa.select(dt.c.name, dt.c.id)).all())
        if type_name not in types:
            raise DataError(
                f"type must be one of the facility's dataset types: {', '.join(sorted(types)) or '(none)'}",
                field="type",
            )
        ds = T["Dataset"]
        if self.catalog.run(
            sa.select(ds.c.id).where(ds.c.investigation_id == investigation_id, ds.c.name == name)
        ).first():
            raise DataError.dataset_exists(name)
        values = {"name": name, "investigation_id": investigation_id, "type_id": types[type_name],
                  "description": description or None, "complete": False}  # fmt: skip
        try:
            return self.catalog.create(session_id, "Dataset", values)
        except PermissionError:
            raise DataError.no_new_dataset(investigation_id) from None

    def dataset_types(self, session_id: str) -> list[str]:
        dt = T["DatasetType"]
        q = self.catalog.restrict(
            session_id, sa.select(dt.c.name).order_by(dt.c.name), "DatasetType", dt.c.id
        )
        return list(self.catalog.run(q).scalars())

    def investigations(self, session_id: str) -> list[InvestigationView]:
        inv = T["Investigation"]
        q = self.catalog.restrict(
            session_id, sa.select(inv.c.id, inv.c.name, inv.c.title).order_by(inv.c.name).limit(500),
            "Investigation", inv.c.id,
        )  # fmt: skip
        return [InvestigationView(r.id, r.name, r.title or "") for r in self.catalog.run(q)]

    def may_write(self, session_id: str, dataset_id: int) -> bool:
        # the C rule of a datafile not yet made cannot be asked without making it: the form
        # is offered where the user may update the dataset, and the put decides
        return self.catalog.allowed(session_id, "Dataset", dataset_id, "U")
