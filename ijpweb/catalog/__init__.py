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
