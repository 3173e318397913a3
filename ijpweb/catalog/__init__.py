"""The Catalog seam: what views and planning ask of ICAT or of the embedded catalog.

Every call that reads data takes the user's catalog session id and answers as that
user sees the catalog."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")


class CatalogError(Exception):
    """The catalog refused or failed; the message is fit to show a user."""


class AuthenticationError(CatalogError):
    pass


class SessionError(CatalogError):
    """The session is unknown or has expired."""


class QueryLimitError(CatalogError):
    """A query went past one of the catalog's limits (its time limit, or maxEntities);
    the message names the limit."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status  # 400: the query asks too much; 503: it took too long


class QueryBusyError(QueryLimitError):
    """The user already has as many catalog queries running as one user may
    (``ijp.catalog.user_queries``): refused at once, to be tried again when one ends."""

    def __init__(self, message: str):
        super().__init__(message, 429)


@dataclass(frozen=True)
class CatalogLogin:
    session_id: str
    user_name: str
    expires_at: datetime


@dataclass(frozen=True)
class DatasetView:
    id: int
    name: str
    type_name: str
    investigation: str
    investigation_title: str = ""
    description: str = ""
    complete: bool = False
    datafile_count: int = 0  # the datafiles the user may read
    create_time: datetime | None = None
    datafile_size: int = 0  # their sizes' sum (bytes)
    investigation_id: int = 0


@dataclass(frozen=True)
class DatafileView:
    id: int
    name: str
    size: int
    format: str
    dataset_id: int
    dataset_name: str = ""


@dataclass(frozen=True)
class ParameterView:
    name: str
    value: Any
    units: str = ""


Position = tuple  # a keyset position: the values of a list's order for one row


@dataclass(frozen=True)
class DatasetQuery:
    """A search: filters, and which page (the one after ``after``, or before ``before``, a
    position a previous Page gave out; neither: the first). Datasets come in the order of
    their investigation (by id: oldest first) then name, the order :data:`DATASET_ORDER`."""

    type_name: str = ""
    investigation: str = ""
    name: str = ""
    per_page: int = 20
    after: Position | None = None
    before: Position | None = None
    facets: bool = True  # also the choices of type and investigation (a page's menus)
    count: bool = True  # False: the caller knows the count (Page.total is then 0, not exact)


DATASET_ORDER = ("investigation_id", "name", "id")  # a dataset's position: these values
DATAFILE_ORDER = ("name", "id")  # a datafile's position in its dataset


@dataclass(frozen=True)
class DatafileQuery:
    """A page of one dataset's datafiles (by name), optionally those whose name contains
    ``name``; ``after``/``before`` as in :class:`DatasetQuery`."""

    name: str = ""
    per_page: int = 50
    after: Position | None = None
    before: Position | None = None
    count: bool = True  # as DatasetQuery's


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list. ``total`` is counted up to a cap (``exact`` False: there are
    more than ``total``); ``next``/``previous`` are the positions to ask for the page after
    and before this one (None: there is none)."""

    items: Sequence[T]
    total: int
    per_page: int
    exact: bool = True
    next: Position | None = None
    previous: Position | None = None
    facets: dict[str, list[str]] = field(default_factory=dict)

    @property
    def shown_total(self) -> str:
        return f"{self.total:,}" if self.exact else f"more than {self.total:,}"


class Catalog(Protocol):
    def authenticators(self) -> list[str]: ...

    def login(self, authenticator: str, credentials: dict[str, str]) -> CatalogLogin: ...

    def logout(self, session_id: str) -> None: ...

    def user_name(self, session_id: str) -> str: ...

    def remaining_minutes(self, session_id: str) -> float: ...

    def refresh(self, session_id: str) -> None: ...

    def query(self, session_id: str, text: str, params: dict[str, Any] | None = None) -> list:
        """A JPQL or concise query, run as the user."""

    def search_datasets(self, session_id: str, query: DatasetQuery) -> Page[DatasetView]: ...

    def datasets(self, session_id: str, ids: Sequence[int]) -> list[DatasetView]: ...

    def datafiles(self, session_id: str, ids: Sequence[int]) -> list[DatafileView]: ...

    def dataset_datafiles(
        self,
        session_id: str,
        dataset_id: int,
        query: DatafileQuery = DatafileQuery(),  # noqa: B008
    ) -> Page[DatafileView]:
        """A page of the dataset's datafiles that the user may read."""

    def dataset_parameters(self, session_id: str, dataset_id: int) -> list[ParameterView]: ...

    def job_parameters(
        self, session_id: str, datasets: Sequence[DatasetView], definitions
    ) -> dict[int, dict[str, Any]]:
        """Dataset-type parameters of each dataset: {dataset id: {name: value}}."""


# --- data in and out (IDS) ------------------------------------------------------------------


class DataError(CatalogError):
    """IDS or the catalog refused a download, an upload or a new dataset; the message is
    fit to show a user and names the field or limit concerned. ``status`` is the HTTP
    status a face answers with: 404 for what the user may not read (the same answer as for
    what does not exist), 403 for a write the rules refuse, 400/409/413 for bad input."""

    def __init__(self, message: str, status: int = 400, code: str = "bad_parameter", field: str = ""):
        super().__init__(message)
        self.message, self.status, self.code, self.field = message, status, code, field

    @classmethod
    def dataset_exists(cls, name: str) -> DataError:
        return cls(f"this investigation already has a dataset named {name!r}", 409, "exists", "name")

    @classmethod
    def no_new_dataset(cls, investigation_id: int) -> DataError:
        return cls(
            f"you may not create datasets in investigation {investigation_id} (the catalog's rules decide)",
            403,
            "forbidden",
        )


@dataclass
class Download:
    """Contents to send: a file name, a content type, the body (an iterable of bytes that
    may have a ``close()``, as a WSGI app_iter) and its length when known."""

    name: str
    content_type: str
    body: Any
    length: int | None = None

    def close(self) -> None:
        close = getattr(self.body, "close", None)
        if close is not None:
            close()

    def read(self, most: int) -> bytes:
        """At most ``most`` bytes from the start of the body, then the body is closed (a
        preview or a thumbnail reads a bounded head, never the whole file)."""
        parts, got = [], 0
        try:
            for chunk in self.body:
                parts.append(chunk[: most - got])
                got += len(parts[-1])
                if got >= most:
                    break
        finally:
            self.close()
        return b"".join(parts)


@dataclass(frozen=True)
class InvestigationView:
    id: int
    name: str
    title: str = ""


class DataAccess(Protocol):
    """Contents through IDS, with the user's session: the embedded IDS
    (:class:`ijpweb.catalog.ids.EmbeddedData`) or a facility's IDS through python-icat
    (:class:`ijpweb.catalog.icatserver.IcatData`). Reading answers only what the user may
    read (anything else is the 404 of a missing object); writing is decided by the
    catalog's C rules."""

    def datafile(self, session_id: str, datafile_id: int) -> Download: ...

    def zip(
        self, session_id: str, dataset_ids: Sequence[int], datafile_ids: Sequence[int], name: str
    ) -> Download:
        """The datafiles of the datasets and the datafiles named, as a zip streamed as it
        is sent; every id must be one the user may read."""

    def put(self, session_id: str, dataset_id: int, name: str, stream) -> int:
        """A new datafile ``name`` in the dataset, its contents read from ``stream`` in
        chunks; its id."""

    def undo(self) -> None:
        """Take back every put of this request (an upload is all or nothing)."""

    def discard(self) -> None:
        """After a transaction that did not commit: remove contents its puts stored."""

    def new_dataset(
        self, session_id: str, investigation_id: int, name: str, type_name: str, description: str = ""
    ) -> int: ...

    def dataset_types(self, session_id: str) -> list[str]: ...

    def investigations(self, session_id: str) -> list[InvestigationView]:
        """The investigations the user may read (where a new dataset may go if the rules
        let them create one there)."""

    def may_write(self, session_id: str, dataset_id: int) -> bool:
        """Whether to offer an upload into the dataset (the put itself decides)."""
