"""The Catalog seam: what views and planning ask of ICAT or of the embedded catalog.

Every call that reads data takes the user's catalog session id and answers as that
user sees the catalog."""

from __future__ import annotations

import math
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
    datafile_count: int = 0
    create_time: datetime | None = None


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


@dataclass(frozen=True)
class DatasetQuery:
    type_name: str = ""
    investigation: str = ""
    name: str = ""
    page: int = 1
    per_page: int = 20


@dataclass(frozen=True)
class Page(Generic[T]):
    items: Sequence[T]
    total: int
    page: int
    per_page: int
    facets: dict[str, list[str]] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))


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

    def dataset_datafiles(self, session_id: str, dataset_id: int) -> list[DatafileView]: ...

    def dataset_parameters(self, session_id: str, dataset_id: int) -> list[ParameterView]: ...

    def job_parameters(
        self, session_id: str, datasets: Sequence[DatasetView], definitions
    ) -> dict[int, dict[str, Any]]:
        """Dataset-type parameters of each dataset: {dataset id: {name: value}}."""
