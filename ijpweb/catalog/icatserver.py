"""The Catalog for a facility's real ICAT (4.x–6.x) and IDS, through python-icat.

Every call runs with the user's own ICAT session, so ICAT's rules decide what they see.
Clients are made lazily, one per thread (suds clients are not thread-safe), so the
portal starts and shows a clear message while ICAT is down. Values put into queries are
quoted as JPQL string literals or are integers; nothing else from a user reaches ICAT.
"""

# ruff: noqa: S608 - JPQL for ICAT built only from int() ids and jpql_string() literals
from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from . import (
    AuthenticationError,
    CatalogError,
    CatalogLogin,
    DatafileView,
    DatasetQuery,
    DatasetView,
    Page,
    ParameterView,
    SessionError,
)

log = logging.getLogger(__name__)
DATASET_ID = "${datasetId}"


def jpql_string(value: str) -> str:
    """A JPQL string literal: quotes doubled, so the value cannot end the literal."""
    return "'" + str(value).replace("'", "''") + "'"


def _id_list(ids: Sequence[int]) -> str:
    return ", ".join(str(int(i)) for i in ids)


def _timeout_transport(seconds: float):
    """python-icat builds its suds transport without a timeout (so a silent server
    blocks for 90 s, and the WSDL is fetched in the constructor): give it one."""
    import icat.client

    original = icat.client.HTTPSTransport
    if getattr(original, "_ijp_timeout", None) == seconds:
        return

    def transport(context, **kwargs):
        kwargs.setdefault("timeout", seconds)
        return original(context, **kwargs)

    transport._ijp_timeout = seconds
    icat.client.HTTPSTransport = transport


class IcatServerCatalog:
    def __init__(
        self,
        url: str,
        ids_url: str | None = None,
        timeout: float = 10.0,
        client_factory: Callable[[], Any] | None = None,
    ):
        self.url = url
        self.ids_url = ids_url
        self.timeout = timeout
        self._factory = client_factory or self._new_client
        self._local = threading.local()

    # --- plumbing ------------------------------------------------------------------------

    def _new_client(self):
        import icat

        _timeout_transport(self.timeout)
        return icat.Client(self.url, idsurl=self.ids_url)

    def _client(self, session_id: str | None = None):
        client = getattr(self._local, "client", None)
        if client is None:
            try:
                client = self._factory()
            except Exception as e:  # URLError, TimeoutError, suds errors, "No services defined"
                raise CatalogError(f"ICAT at {self.url} cannot be reached: {e}") from None
            self._local.client = client
        client.autoLogout = False  # the user's session is theirs; never log it out for them
        client.sessionId = session_id
        return client

    def _call(self, session_id: str | None, fn: Callable[[Any], Any]) -> Any:
        from icat.exception import ICATError, ICATPrivilegesError, ICATSessionError

        client = self._client(session_id)
        try:
            return fn(client)
        except ICATSessionError as e:
            raise SessionError(f"ICAT: {getattr(e, 'message', e)}") from None
        except ICATPrivilegesError as e:
            raise PermissionError(f"ICAT: {getattr(e, 'message', e)}") from None
        except ICATError as e:
            raise CatalogError(f"ICAT refused: {getattr(e, 'message', e)}") from None
        except (OSError, ValueError) as e:
            raise CatalogError(f"ICAT at {self.url} did not answer: {e}") from None

    # --- sessions ------------------------------------------------------------------------

    def authenticators(self) -> list[str]:
        try:
            infos = self._call(None, lambda c: c.getAuthenticatorInfo())
            return [str(a.mnemonic) for a in infos] or ["db"]
        except CatalogError:
            return ["db"]

    def login(self, authenticator: str, credentials: dict[str, str]) -> CatalogLogin:
        from icat.exception import ICATSessionError

        def go(c):
            try:
                sid = c.login(authenticator, credentials)
            except ICATSessionError as e:
                raise AuthenticationError(f"ICAT refused the login: {getattr(e, 'message', e)}") from None
            minutes = c.getRemainingMinutes()
            return CatalogLogin(sid, c.getUserName(), datetime.now(UTC) + timedelta(minutes=minutes))

        return self._call(None, go)

    def logout(self, session_id: str) -> None:
        with contextlib.suppress(SessionError):  # already gone
            self._call(session_id, lambda c: c.logout())

    def user_name(self, session_id: str) -> str:
        return self._call(session_id, lambda c: c.getUserName())

    def remaining_minutes(self, session_id: str) -> float:
        return self._call(session_id, lambda c: c.getRemainingMinutes())

    def refresh(self, session_id: str) -> None:
        self._call(session_id, lambda c: c.refresh())

    # --- reading -------------------------------------------------------------------------

    def query(self, session_id: str, text: str, params: dict[str, Any] | None = None) -> list:
        return self._call(session_id, lambda c: list(c.search(text)))

    @staticmethod
    def _dataset_view(ds) -> DatasetView:
        inv = getattr(ds, "investigation", None)
        dtype = getattr(ds, "type", None)
        return DatasetView(
            id=ds.id,
            name=ds.name,
            type_name=getattr(dtype, "name", "") or "",
            investigation=getattr(inv, "name", "") or "",
            investigation_title=getattr(inv, "title", "") or "",
            description=getattr(ds, "description", "") or "",
            complete=bool(getattr(ds, "complete", False)),
            datafile_count=getattr(ds, "fileCount", None) or 0,
            create_time=getattr(ds, "createTime", None),
        )

    def search_datasets(self, session_id: str, query: DatasetQuery) -> Page[DatasetView]:
        where = []
        if query.type_name:
            where.append(f"t.name = {jpql_string(query.type_name)}")
        if query.investigation:
            where.append(f"i.name = {jpql_string(query.investigation)}")
        if query.name:
            where.append(f"ds.name LIKE {jpql_string('%' + query.name + '%')}")
        cond = (" WHERE " + " AND ".join(where)) if where else ""
        base = "FROM Dataset ds JOIN ds.type t JOIN ds.investigation i" + cond
        per_page = max(1, min(query.per_page, 200))
        page = max(1, query.page)

        def go(c):
            total = c.search(f"SELECT COUNT(ds) {base}")[0]
            items = c.search(
                f"SELECT ds {base} ORDER BY i.name, ds.name LIMIT {(page - 1) * per_page}, {per_page} "
                "INCLUDE ds.type, ds.investigation"
            )
            facets = {
                "types": sorted({str(n) for n in c.search("SELECT t.name FROM DatasetType t")}),
                "investigations": sorted({str(n) for n in c.search("SELECT i.name FROM Investigation i")}),
            }
            return Page([self._dataset_view(d) for d in items], int(total), page, per_page, facets)

        return self._call(session_id, go)

    def datasets(self, session_id: str, ids: Sequence[int]) -> list[DatasetView]:
        if not ids:
            return []
        found = self._call(
            session_id,
            lambda c: c.search(
                f"SELECT ds FROM Dataset ds WHERE ds.id IN ({_id_list(ids)}) INCLUDE ds.type, ds.investigation"
            ),
        )
        by_id = {d.id: self._dataset_view(d) for d in found}
        return [by_id[i] for i in ids if i in by_id]

    @staticmethod
    def _datafile_view(df) -> DatafileView:
        fmt = getattr(df, "datafileFormat", None)
        ds = getattr(df, "dataset", None)
        return DatafileView(
            df.id, df.name, getattr(df, "fileSize", 0) or 0, getattr(fmt, "name", "") or "",
            getattr(ds, "id", 0), getattr(ds, "name", "") or "",
        )  # fmt: skip

    def datafiles(self, session_id: str, ids: Sequence[int]) -> list[DatafileView]:
        if not ids:
            return []
        q = f"SELECT df FROM Datafile df WHERE df.id IN ({_id_list(ids)}) INCLUDE df.datafileFormat, df.dataset"
        by_id = {d.id: self._datafile_view(d) for d in self._call(session_id, lambda c: c.search(q))}
        return [by_id[i] for i in ids if i in by_id]

    def dataset_datafiles(self, session_id: str, dataset_id: int) -> list[DatafileView]:
        q = (
            f"SELECT df FROM Datafile df WHERE df.dataset.id = {int(dataset_id)} ORDER BY df.name "
            "INCLUDE df.datafileFormat, df.dataset"
        )
        return [self._datafile_view(d) for d in self._call(session_id, lambda c: c.search(q))]

    def dataset_parameters(self, session_id: str, dataset_id: int) -> list[ParameterView]:
        q = f"SELECT p FROM DatasetParameter p WHERE p.dataset.id = {int(dataset_id)} INCLUDE p.type"
        out = []
        for p in self._call(session_id, lambda c: c.search(q)):
            value = next(
                (v for v in (getattr(p, "numericValue", None), getattr(p, "stringValue", None),
                             getattr(p, "dateTimeValue", None)) if v is not None),
                None,
            )  # fmt: skip
            out.append(ParameterView(p.type.name, value, getattr(p.type, "units", "") or ""))
        return sorted(out, key=lambda p: p.name)

    def job_parameters(
        self, session_id: str, datasets: Sequence[DatasetView], definitions
    ) -> dict[int, dict[str, Any]]:
        """As the original IJP did: one ICAT query per dataset and parameter (ICAT's JPQL
        has no GROUP BY to answer for many datasets at once)."""
        out: dict[int, dict[str, Any]] = {d.id: {} for d in datasets}

        def go(c):
            for d in datasets:
                for p in definitions(d.type_name):
                    results = list(c.search(p.query.replace(DATASET_ID, str(int(d.id)))))
                    # no result -> null, one -> the value, several -> null
                    out[d.id][p.name] = results[0] if len(results) == 1 else None
            return out

        return self._call(session_id, go)
