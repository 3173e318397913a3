"""The Catalog for a facility's real ICAT (4.x–6.x) and IDS, through python-icat.

Every call runs with the user's own ICAT session, so ICAT's rules decide what they see.
ICAT applies the rules of every entity named in a query's SELECT clause (icat.server's
parser/FromClause: each path there becomes an ``IN (rule's SELECT)`` condition), also
inside aggregates: ``COUNT(df)`` counts only the datafiles the user may read, whereas a
Dataset's stored ``fileCount``/``fileSize`` (ICAT 5+) count all of them, so those are
never shown. A name search is literal as in the embedded catalog: ``%``, ``_`` and the
escape character are escaped, with ``ESCAPE '!'`` (ICAT's WHERE clause passes ESCAPE and
string literals through to JPQL since ICAT 4.6, icat.server#146; '!' rather than a
backslash, which MySQL reads inside a literal; an older ICAT refuses the query, a clear
"ICAT refused" rather than a pattern). Counts stop at :data:`paging.COUNT_CAP` as on the embedded catalog.
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
from decimal import Decimal
from typing import Any

from ..paging import COUNT_CAP, MAX_PER_PAGE, Count
from . import (
    AuthenticationError,
    CatalogError,
    CatalogLogin,
    DatafileQuery,
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


LIKE_ESCAPE = "!"


def jpql_contains(path: str, text: str) -> str:
    """JPQL for "``path`` contains ``text``" taken literally: the LIKE wildcards ``%`` and
    ``_`` and the escape character itself are escaped, so what a user types is never a
    pattern ICAT's database has to match (``a_b`` does not find ``axb``)."""
    escaped = "".join(LIKE_ESCAPE + ch if ch in "%_" + LIKE_ESCAPE else ch for ch in str(text))
    return f"{path} LIKE {jpql_string('%' + escaped + '%')} ESCAPE '{LIKE_ESCAPE}'"


def _bounded_count(c, base: str, alias: str) -> Count:
    """The rows of ``SELECT alias <base>`` counted up to COUNT_CAP, as the embedded
    catalog's paging.bounded_count: first whether a row lies beyond the cap (one id at
    offset COUNT_CAP, no ORDER BY, so the database stops after COUNT_CAP + 1 rows; an id
    query, not entities, so ICAT's maxEntities is not reached), and only if none, the
    exact COUNT of at most COUNT_CAP rows."""
    if list(c.search(f"SELECT {alias}.id {base} LIMIT {COUNT_CAP}, 1")):
        return Count(COUNT_CAP, False)
    found = list(c.search(f"SELECT COUNT({alias}) {base}"))
    return Count(_int(found[0]) if found else 0, True)


def _int(value) -> int:
    """An ICAT number (int, or Decimal/text from Oracle through SOAP; None: 0)."""
    return 0 if value is None else int(Decimal(str(value)))


def _file_counts(c, ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    """(count, sizes' sum) of the datafiles the user may read, for the datasets ``ids``
    (a page's): one grouped query, which ICAT restricts by the user's Datafile rules
    before it groups. ICAT before 4.11.1 cannot send several values per row (no SOAP
    fieldSet): there, a COUNT and a SUM per dataset, bounded by the page's size."""
    if not ids:
        return {}
    if c._has_wsdl_type("fieldSet"):
        rows = c.search(
            "SELECT df.dataset.id, COUNT(df), SUM(df.fileSize) FROM Datafile df "
            f"WHERE df.dataset.id IN ({_id_list(ids)}) GROUP BY df.dataset.id"
        )
        return {_int(r[0]): (_int(r[1]), _int(r[2])) for r in rows}
    out = {}
    for i in ids:
        base = f"FROM Datafile df WHERE df.dataset.id = {int(i)}"
        n = _int(next(iter(c.search(f"SELECT COUNT(df) {base}")), 0))
        out[int(i)] = (n, _int(next(iter(c.search(f"SELECT SUM(df.fileSize) {base}")), 0)) if n else 0)
    return out


def _id_list(ids: Sequence[int]) -> str:
    return ", ".join(str(int(i)) for i in ids)


def _literal(value) -> str:
    return str(int(value)) if isinstance(value, int) else jpql_string(value)


def _after(columns: Sequence[str], position: Sequence, op: str) -> str:
    """JPQL for "after (``op`` '>') or before ('<') ``position``" in the order of ``columns``
    (ICAT's JPQL has no row values): a > x OR (a = x AND (b > y OR ...))."""
    first, value = columns[0], _literal(position[0])
    if len(columns) == 1:
        return f"{first} {op} {value}"
    return f"({first} {op} {value} OR ({first} = {value} AND {_after(columns[1:], position[1:], op)}))"


def _and(base: str, extra: str) -> str:
    if not extra:
        return base
    return f"{base} AND {extra}" if " WHERE " in base else f"{base} WHERE {extra}"


def _per_page(query) -> int:
    return max(1, min(query.per_page, MAX_PER_PAGE))


def _keyset_page(search, columns, query, position):
    """One keyset page through ``search(condition, order_by, how_many)``: (items, the
    position of the page after, of the page before)."""
    n = _per_page(query)
    if query.before is not None:
        got = list(search(_after(columns, query.before, "<"), ", ".join(f"{c} DESC" for c in columns), n + 1))
        items = got[:n][::-1]
        return items, (position(items[-1]) if items else None), (position(items[0]) if len(got) > n else None)
    extra = _after(columns, query.after, ">") if query.after is not None else ""
    got = list(search(extra, ", ".join(columns), n + 1))
    items = got[:n]
    nxt = position(items[-1]) if len(got) > n else None
    return items, nxt, (position(items[0]) if items and query.after is not None else None)


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
    def _dataset_view(ds, files: tuple[int, int] = (0, 0)) -> DatasetView:
        """``files``: (count, size) of the datafiles the user may read (_file_counts), never
        the Dataset's fileCount/fileSize, which count the datafiles of every user."""
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
            datafile_count=files[0],
            create_time=getattr(ds, "createTime", None),
            datafile_size=files[1],
            investigation_id=getattr(inv, "id", 0) or 0,
        )

    def search_datasets(self, session_id: str, query: DatasetQuery) -> Page[DatasetView]:
        """A keyset page, as on the embedded catalog: ordered by investigation id, name and
        id, the page after (or before) a position, read with ICAT's LIMIT 0, n+1 (never an
        offset that ICAT would walk)."""
        where = []
        if query.type_name:
            where.append(f"t.name = {jpql_string(query.type_name)}")
        if query.investigation:
            where.append(f"i.name = {jpql_string(query.investigation)}")
        if query.name:
            where.append(jpql_contains("ds.name", query.name))
        cond = (" WHERE " + " AND ".join(where)) if where else ""
        base = "FROM Dataset ds JOIN ds.type t JOIN ds.investigation i" + cond
        order = ("i.id", "ds.name", "ds.id")

        def go(c):
            total = _bounded_count(c, base, "ds") if query.count else Count(0, False)
            items, nxt, previous = _keyset_page(
                lambda extra, order_by, n: c.search(
                    f"SELECT ds {_and(base, extra)} ORDER BY {order_by} LIMIT 0, {n} INCLUDE ds.type, ds.investigation"
                ),
                order,
                query,
                lambda d: (d.investigation.id, d.name, d.id),
            )
            facets = {}
            if query.facets:
                facets = {
                    "types": sorted({str(n) for n in c.search("SELECT t.name FROM DatasetType t")}),
                    "investigations": sorted(
                        {str(n) for n in c.search("SELECT i.name FROM Investigation i")}
                    ),
                }
            files = _file_counts(c, [d.id for d in items])
            views = [self._dataset_view(d, files.get(d.id, (0, 0))) for d in items]
            return Page(views, total.value, _per_page(query), total.exact, nxt, previous, facets)

        return self._call(session_id, go)

    def datasets(self, session_id: str, ids: Sequence[int]) -> list[DatasetView]:
        if not ids:
            return []

        def go(c):
            found = c.search(
                f"SELECT ds FROM Dataset ds WHERE ds.id IN ({_id_list(ids)}) INCLUDE ds.type, ds.investigation"
            )
            files = _file_counts(c, [d.id for d in found])
            return {d.id: self._dataset_view(d, files.get(d.id, (0, 0))) for d in found}

        by_id = self._call(session_id, go)
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

    def dataset_datafiles(
        self,
        session_id: str,
        dataset_id: int,
        query: DatafileQuery = DatafileQuery(),  # noqa: B008
    ) -> Page[DatafileView]:
        base = f"FROM Datafile df WHERE df.dataset.id = {int(dataset_id)}"
        if query.name:
            base += " AND " + jpql_contains("df.name", query.name)

        def go(c):
            total = _bounded_count(c, base, "df") if query.count else Count(0, False)
            items, nxt, previous = _keyset_page(
                lambda extra, order_by, n: c.search(
                    f"SELECT df {_and(base, extra)} ORDER BY {order_by} LIMIT 0, {n} "
                    "INCLUDE df.datafileFormat, df.dataset"
                ),
                ("df.name", "df.id"),
                query,
                lambda d: (d.name, d.id),
            )
            views = [self._datafile_view(d) for d in items]
            return Page(views, total.value, _per_page(query), total.exact, nxt, previous)

        return self._call(session_id, go)

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
        """As the original IJP did: one ICAT query per dataset and parameter. The
        definitions are the dataset types' own queries, in ICAT's old concise syntax with
        the dataset's id put in (``[id=${datasetId}]``), which has no GROUP BY to answer
        for many datasets at once."""
        out: dict[int, dict[str, Any]] = {d.id: {} for d in datasets}

        def go(c):
            for d in datasets:
                for p in definitions(d.type_name):
                    results = list(c.search(p.query.replace(DATASET_ID, str(int(d.id)))))
                    # no result -> null, one -> the value, several -> null
                    out[d.id][p.name] = results[0] if len(results) == 1 else None
            return out

        return self._call(session_id, go)


def _selection(ids: dict):
    """python-icat's DataSelection of ids ({"datasetIds": [...], "datafileIds": [...]})."""
    from icat.ids import DataSelection

    return DataSelection(ids)


class _Response:
    """An IDS response (python-icat's getData) as a WSGI body: chunks, then closed."""

    def __init__(self, response, chunk: int = 1 << 16):
        self.response, self.chunk = response, chunk

    def __iter__(self):
        while data := self.response.read(self.chunk):
            yield data

    def close(self) -> None:
        self.response.close()


class IcatData:
    """catalog.DataAccess for a facility's IDS, through python-icat's IDS client with the
    user's own session: IDS and ICAT's rules decide what may be read and written, and the
    portal never reads a file the user could not get from IDS themselves."""

    def __init__(self, catalog: IcatServerCatalog):
        self.catalog = catalog
        self._created: list[tuple[str, int]] = []  # this request's puts: (session, datafile id)

    def _ids(self, session_id: str):
        client = self.catalog._client(session_id)
        if not getattr(client, "ids", None):
            raise CatalogError("no IDS is configured (ijp.ids_url): data cannot be downloaded or uploaded")
        return client

    def _ids_call(self, session_id: str, fn, unseen_as=None):
        from icat.exception import (
            IDSBadRequestError,
            IDSError,
            IDSInsufficientPrivilegesError,
            IDSNotFoundError,
        )

        from .ids import DataError

        client = self._ids(session_id)
        try:
            return fn(client)
        except (IDSNotFoundError, IDSInsufficientPrivilegesError) as e:
            if unseen_as is not None:
                raise unseen_as from None
            raise DataError(f"IDS refused: {getattr(e, 'message', e)}", 403, "forbidden") from None
        except IDSBadRequestError as e:
            raise DataError(f"IDS refused: {getattr(e, 'message', e)}") from None
        except IDSError as e:
            raise CatalogError(f"IDS refused: {getattr(e, 'message', e)}") from None
        except OSError as e:
            raise CatalogError(f"IDS at {self.catalog.ids_url} did not answer: {e}") from None

    def datafile(self, session_id: str, datafile_id: int):
        from .ids import Download, unseen

        found = self.catalog.datafiles(session_id, [datafile_id])
        if not found:
            raise unseen("datafile", datafile_id)
        selection = {"datafileIds": [int(datafile_id)]}
        response = self._ids_call(
            session_id, lambda c: c.ids.getData(_selection(selection)), unseen("datafile", datafile_id)
        )
        length = response.headers.get("Content-Length") if hasattr(response, "headers") else None
        return Download(
            found[0].name, "application/octet-stream", _Response(response), int(length) if length else None
        )

    def zip(self, session_id: str, dataset_ids, datafile_ids, name: str):
        from .ids import DataError, Download, unseen

        dataset_ids, datafile_ids = list(dict.fromkeys(dataset_ids)), list(dict.fromkeys(datafile_ids))
        if not dataset_ids and not datafile_ids:
            raise DataError("nothing to download: no datasets or datafiles named", field="ids")
        seen = {d.id for d in self.catalog.datasets(session_id, dataset_ids)}
        for i in dataset_ids:
            if i not in seen:
                raise unseen("dataset", i)
        seen = {f.id for f in self.catalog.datafiles(session_id, datafile_ids)}
        for i in datafile_ids:
            if i not in seen:
                raise unseen("datafile", i)
        selection = {"datasetIds": dataset_ids, "datafileIds": datafile_ids}
        response = self._ids_call(
            session_id,
            lambda c: c.ids.getData(_selection(selection), zipFlag=True),
            DataError("IDS refused the download: one of the datafiles may not be read", 404, "not_found"),
        )
        return Download(name, "application/zip", _Response(response))

    def _formats(self, session_id: str) -> dict[str, int]:
        found = self.catalog._call(
            session_id, lambda c: c.search("SELECT f FROM DatafileFormat f LIMIT 0, 500")
        )
        return {str(f.name): int(f.id) for f in found}

    def put(self, session_id: str, dataset_id: int, name: str, stream) -> int:
        from .ids import DataError, check_file_name, format_for, unseen

        check_file_name(name)
        if not self.catalog.datasets(session_id, [dataset_id]):
            raise unseen("dataset", dataset_id)
        formats = self._formats(session_id)
        format_id = format_for(name, formats)
        if format_id is None:  # IDS wants one: the facility's catch-all, else the first
            fallback = {k.lower(): v for k, v in formats.items()}
            format_id = next((fallback[n] for n in ("other", "unknown", "binary") if n in fallback), None)
            if format_id is None and formats:
                format_id = formats[sorted(formats)[0]]
        if format_id is None:
            raise DataError(
                "the facility's ICAT has no datafile formats: IDS cannot take a file", 503, "catalog"
            )
        exists = self.catalog._call(
            session_id,
            lambda c: c.search(
                f"SELECT df.id FROM Datafile df WHERE df.dataset.id = {int(dataset_id)} "
                f"AND df.name = {jpql_string(name)}"
            ),
        )
        if exists:
            raise DataError(
                f"dataset {dataset_id} already has a datafile named {name!r}: rename the file "
                "or delete the old one first",
                409,
                "exists",
                "name",
            )
        new_id = int(
            self._ids_call(session_id, lambda c: c.ids.put(stream, name, int(dataset_id), format_id))
        )
        self._created.append((session_id, new_id))
        return new_id

    def undo(self) -> None:
        """Take back this request's puts (an upload of several files is all or nothing):
        IDS deletes what it stored, as the user."""
        created, self._created = self._created, []
        for session_id, new_id in created:
            with contextlib.suppress(CatalogError, PermissionError):
                self._ids_call(session_id, lambda c, i=new_id: c.ids.delete(_selection({"datafileIds": [i]})))

    def discard(self) -> None:
        """(IDS keeps the contents with the catalog rows it wrote: nothing else to remove.)"""

    def new_dataset(
        self, session_id: str, investigation_id: int, name: str, type_name: str, description: str = ""
    ) -> int:
        from icat.exception import ICATObjectExistsError

        from .ids import DataError, check_dataset_name, unseen

        name = check_dataset_name(name)
        invs = self.catalog._call(
            session_id,
            lambda c: c.search(f"SELECT i FROM Investigation i WHERE i.id = {int(investigation_id)}"),
        )
        if not invs:
            raise unseen("investigation", investigation_id)
        types = self.catalog._call(
            session_id,
            lambda c: c.search(f"SELECT t FROM DatasetType t WHERE t.name = {jpql_string(type_name)}"),
        )
        if not types:
            choices = ", ".join(self.dataset_types(session_id)) or "(none)"
            raise DataError(f"type must be one of the facility's dataset types: {choices}", field="type")

        def go(c):
            ds = c.new("Dataset", name=name, investigation=invs[0], type=types[0], complete=False)
            if description:
                ds.description = description
            try:
                return int(c.create(ds))
            except ICATObjectExistsError:
                raise DataError.dataset_exists(name) from None

        try:
            return self.catalog._call(session_id, go)
        except PermissionError:
            raise DataError.no_new_dataset(investigation_id) from None

    def dataset_types(self, session_id: str) -> list[str]:
        found = self.catalog._call(
            session_id, lambda c: c.search("SELECT t.name FROM DatasetType t ORDER BY t.name LIMIT 0, 500")
        )
        return [str(n) for n in found]

    def investigations(self, session_id: str):
        from . import InvestigationView

        found = self.catalog._call(
            session_id, lambda c: c.search("SELECT i FROM Investigation i ORDER BY i.name LIMIT 0, 500")
        )
        return [InvestigationView(int(i.id), str(i.name), str(getattr(i, "title", "") or "")) for i in found]

    def may_write(self, session_id: str, dataset_id: int) -> bool:
        def go(c):
            probe = c.new("Datafile", name="probe", dataset=c.new("Dataset", id=int(dataset_id)))
            return bool(c.isAccessAllowed(probe, "CREATE"))

        try:
            return self.catalog._call(session_id, go)
        except (CatalogError, PermissionError):
            return False
