"""The embedded catalog: ICAT's entities in the portal's own database (catalog/icatdb.py),
read as the logged-in user under ICAT's rules (catalog/authz.py).

Authenticators, as ICAT names them: ``db`` (user name and password, stored hashed) and,
when enabled, ``anon``. User names carry the authenticator's mnemonic, as a typical ICAT
is configured and as python-icat's dumps have them: ``db/alice``.

Every read is bounded (:class:`CatalogLimits`): each statement runs within a time limit
(on SQLite a progress handler on the connection interrupts it; on PostgreSQL a
``statement_timeout`` set inside a savepoint), and a query that would return more than
``max_entities`` objects is refused as ICAT refuses it, after fetching at most one more.
A create is bounded too: at most ``max_writes`` entities, all written within the same time
limit (on PostgreSQL also checked between the entities), with the rules checked once per
entity type for all of them. One user runs at most ``user_queries`` catalog statements at
once in a process (:class:`UserSlots`); more are refused at once, so that one user cannot
hold every server thread.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from .. import paging, passwords
from ..models import CatalogSession, DbCredential, as_utc, utcnow
from ..paging import MAX_PER_PAGE
from . import (
    DATAFILE_ORDER,
    DATASET_ORDER,
    AuthenticationError,
    CatalogLogin,
    DatafileQuery,
    DatafileView,
    DatasetQuery,
    DatasetView,
    Page,
    ParameterView,
    Position,
    QueryBusyError,
    QueryLimitError,
    SessionError,
    authz,
)
from .icatdb import TABLES
from .jpql import LIMITS, Limits, QueryError, compile_query

T = TABLES


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@dataclass(frozen=True)
class CatalogLimits:
    """What one query may cost (the ``ijp.catalog.*`` settings; see the README)."""

    max_entities: int = 10_000  # ICAT's maxEntities
    query_seconds: float = 5.0  # per statement; 0: no limit
    query: Limits = LIMITS  # length, nesting and joins of a JPQL or concise query
    restrict_joins: bool = False  # rules restrict every joined entity, not only the selected one
    max_writes: int = 1_000  # entities one create may hold
    user_queries: int = 2  # statements one user may run at once in this process; 0: no limit

    def too_many(self, most: int | None = None) -> QueryLimitError:
        return QueryLimitError(f"attempt to process more than {most or self.max_entities} entities")


# Compiled batch queries (dataset-type parameters), by everything their SQL depends on:
# the text, the user, whether root, the rules that apply to the user, the limits.
_COMPILED: collections.OrderedDict = collections.OrderedDict()
_COMPILED_LOCK = threading.Lock()

# How an entity's objects hang from a dataset: the column that holds the dataset's id.
_DATASET_LINK = {"Dataset": "id", "Datafile": "dataset_id", "DatasetParameter": "dataset_id"}

# How long a user's statement waits for one of their running ones to end before it is
# refused: long enough for a user's few short reads at once (a page and its fragments),
# short next to a query that holds its thread for seconds.
SLOT_WAIT = 0.25


class UserSlots:
    """How many catalog statements each user is running in this process. A thread that
    holds a slot for a user may run more statements for them (a create's checks, a
    request's several reads) without taking another."""

    def __init__(self):
        self._changed = threading.Condition()
        self._running: dict[str, int] = {}
        self._held = threading.local()

    def running(self, user: str) -> int:
        with self._changed:
            return self._running.get(user, 0)

    @contextmanager
    def hold(self, user: str, most: int, wait: float = SLOT_WAIT) -> Iterator[None]:
        held = self._held.__dict__.setdefault("users", set())
        if most <= 0 or user in held:
            yield
            return
        deadline = time.monotonic() + wait
        with self._changed:
            while self._running.get(user, 0) >= most:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise QueryBusyError(
                        f"too many catalog queries at once for {user} (ijp.catalog.user_queries = "
                        f"{most}); try again when one ends"
                    )
                self._changed.wait(left)
            self._running[user] = self._running.get(user, 0) + 1
        held.add(user)
        try:
            yield
        finally:
            held.discard(user)
            with self._changed:
                if self._running[user] <= 1:
                    del self._running[user]
                else:
                    self._running[user] -= 1
                self._changed.notify_all()


SLOTS = UserSlots()  # one per process: the limit is per process


# SQLite calls the progress handler every this many virtual machine instructions
# (about a millisecond's work): often enough to stop on time, rarely enough to cost nothing.
PROGRESS_STEPS = 20_000
QUERY_CANCELED = "57014"  # PostgreSQL's SQLSTATE for a statement_timeout
_SQLITE_LIMIT = "ijp.time_limit"  # conn.info: the (deadline, handler) of the limit in force


@contextmanager
def time_limit(conn, seconds: float) -> Iterator[None]:
    """Run the reads inside within ``seconds`` (0: no limit) on ``conn``, a SQLAlchemy
    Connection in a transaction, or raise QueryLimitError. The connection is left as it was
    found, and on PostgreSQL a statement that fails leaves the transaction usable."""
    message = f"the query took longer than {seconds:g} s (the limit is ijp.catalog.query_seconds)"
    if conn.dialect.name == "sqlite" and seconds > 0:
        raw = conn.connection.dbapi_connection
        # inside another limit (a create's reads): the earlier deadline holds, and the
        # outer handler is put back afterwards
        outer = conn.info.get(_SQLITE_LIMIT)
        deadline = time.monotonic() + seconds
        if outer is not None:
            deadline = min(deadline, outer[0])
        expired = []

        def check() -> int:
            if time.monotonic() < deadline:
                return 0
            expired.append(True)
            return 1  # SQLite interrupts the statement ("interrupted")

        conn.info[_SQLITE_LIMIT] = (deadline, check)
        raw.set_progress_handler(check, PROGRESS_STEPS)
        try:
            yield
        except sa.exc.OperationalError:
            if expired:
                raise QueryLimitError(message, 503) from None
            raise
        finally:
            if outer is None:
                conn.info.pop(_SQLITE_LIMIT, None)
                raw.set_progress_handler(None, 0)
            else:
                conn.info[_SQLITE_LIMIT] = outer
                raw.set_progress_handler(outer[1], PROGRESS_STEPS)
    elif conn.dialect.name == "postgresql":
        # The settings are local to a savepoint, which is rolled back afterwards (these are
        # reads): that undoes them, and a failed statement does not abort the request's
        # transaction. The savepoint and the settings are one round trip, the rollback and
        # release another (with no parameters psycopg sends several statements at once; the
        # values are the portal's own): SQLAlchemy's begin_nested and a SELECT set_config()
        # were three, with their Python, around every catalog read.
        # Each catalog read is planned for its own values (plan_cache_mode): psycopg prepares a
        # statement run five times, and PostgreSQL's generic plan of a keyset page, made
        # without the position, walked all 10,000 files of a dataset per page (over 5 s).
        conn.exec_driver_sql(_pg_limit_start(seconds))
        try:
            yield
        except sa.exc.OperationalError as e:
            if getattr(e.orig, "sqlstate", None) == QUERY_CANCELED:
                raise QueryLimitError(message, 503) from None
            raise
        finally:
            if not conn.invalidated:
                conn.exec_driver_sql(_PG_LIMIT_END)
    else:
        yield


_PG_SAVEPOINT = "ijp_time_limit"  # (a limit inside another makes a second of this name: the newest is meant)
_PG_LIMIT_END = f"ROLLBACK TO SAVEPOINT {_PG_SAVEPOINT}; RELEASE SAVEPOINT {_PG_SAVEPOINT}"


@functools.lru_cache(maxsize=16)
def _pg_limit_start(seconds: float) -> str:
    """The statements that open a catalog read's savepoint and set its limit (no user value
    in them: the milliseconds are an int of the portal's setting)."""
    start = f"SAVEPOINT {_PG_SAVEPOINT}; SET LOCAL plan_cache_mode = force_custom_plan"
    if seconds > 0:
        start += f"; SET LOCAL statement_timeout = {max(1, round(seconds * 1000))}"
    return start


@contextmanager
def write_time_limit(conn, seconds: float) -> Iterator[float]:
    """Run the writes inside within ``seconds`` in all (0: no limit) on ``conn``, in the
    request's transaction, or raise QueryLimitError; yields the deadline (monotonic), which
    the writer checks between statements. Unlike :func:`time_limit` nothing is rolled back
    here: on PostgreSQL the statement_timeout is set for the transaction and restored."""
    message = f"the create took longer than {seconds:g} s (the limit is ijp.catalog.query_seconds)"
    deadline = time.monotonic() + seconds if seconds > 0 else float("inf")
    if seconds <= 0:
        yield deadline
    elif conn.dialect.name == "sqlite":
        with time_limit(conn, seconds):
            try:
                yield deadline
            except QueryLimitError:
                raise QueryLimitError(message, 503) from None
    elif conn.dialect.name == "postgresql":
        before = conn.execute(sa.select(sa.func.current_setting("statement_timeout"))).scalar()
        ms = str(max(1, round(seconds * 1000)))
        conn.execute(sa.select(sa.func.set_config("statement_timeout", ms, True)))
        try:
            yield deadline
        except sa.exc.OperationalError as e:
            if getattr(e.orig, "sqlstate", None) == QUERY_CANCELED:
                raise QueryLimitError(message, 503) from None
            raise
        else:  # (after a failed statement the transaction is aborted, and is rolled back)
            conn.execute(sa.select(sa.func.set_config("statement_timeout", before, True)))
    else:
        yield deadline


@contextmanager
def _user_query() -> Iterator[None]:
    """Around a query compiled from a user's text: what the database refuses of it (on
    PostgreSQL, comparing a name with a number) is the query's error, not the portal's."""
    try:
        yield
    except (sa.exc.ProgrammingError, sa.exc.DataError) as e:
        reason = str(e.orig).strip().splitlines()[0] if e.orig is not None else "refused"
        raise QueryError(f"the catalog cannot run this query: {reason}") from None


class EmbeddedCatalog:
    def __init__(
        self,
        dbsession,
        session_minutes: int = 120,
        anon: bool = False,
        root_users=frozenset(),
        limits: CatalogLimits = CatalogLimits(),  # noqa: B008 - frozen, shared
    ):
        self.db = dbsession
        self.session_minutes = session_minutes
        self.anon = anon
        self.root_users = frozenset(root_users)
        self.limits = limits
        self._rules: dict[tuple[str, str], list[str]] = {}  # (user, C|R|U|D) -> rules, per request
        self._sessions: dict[str, CatalogSession] = {}  # this request's, read once
        self._write_deadline = float("inf")  # of the create running (monotonic)
        self._known: set[tuple[str, int]] = set()  # objects this request found readable

    # --- sessions ------------------------------------------------------------------------

    def authenticators(self) -> list[str]:
        return ["db", "anon"] if self.anon else ["db"]

    def login(self, authenticator: str, credentials: dict[str, str]) -> CatalogLogin:
        if authenticator == "anon" and self.anon:
            name = "anon/anon"
        elif authenticator == "db":
            username = credentials.get("username", "")
            cred = self.db.get(DbCredential, username) if username else None
            stored = cred.password_hash if cred else None
            ok, rehashed = passwords.verify(stored, credentials.get("password", ""))
            if not ok:
                raise AuthenticationError("the user name or password is not correct")
            if rehashed:  # made with other parameters than today's (ijpweb.passwords)
                cred.password_hash = rehashed
            name = f"db/{username}"
        else:
            raise AuthenticationError(f"authenticator {authenticator!r} is not available")
        self._ensure_user(name)
        session = CatalogSession(
            id=secrets.token_urlsafe(32),
            user_name=name,
            expires_at=utcnow() + timedelta(minutes=self.session_minutes),
        )
        self.db.add(session)
        self.db.flush()
        return CatalogLogin(session.id, name, session.expires_at)

    def _ensure_user(self, name: str) -> None:
        """ICAT creates a User the first time someone logs in."""
        conn = self.db.connection()
        if conn.execute(sa.select(T["User"].c.id).where(T["User"].c.name == name)).first() is None:
            conn.execute(T["User"].insert().values(name=name, createId=name, createTime=utcnow()))

    def _session(self, session_id: str) -> CatalogSession:
        s = self._sessions.get(session_id)
        if s is None and session_id:
            s = self.db.get(CatalogSession, session_id)
        if s is None or as_utc(s.expires_at) < utcnow():
            raise SessionError("the catalog session has expired; log in again")
        self._sessions[session_id] = s
        return s

    def logout(self, session_id: str) -> None:
        s = self.db.get(CatalogSession, session_id) if session_id else None
        if s is not None:
            self.db.delete(s)
            self.db.flush()
        self._sessions.pop(session_id, None)

    def user_name(self, session_id: str) -> str:
        return self._session(session_id).user_name

    def remaining_minutes(self, session_id: str) -> float:
        left = as_utc(self._session(session_id).expires_at) - utcnow()
        return max(0.0, left.total_seconds() / 60)

    def refresh(self, session_id: str) -> None:
        self._session(session_id).expires_at = utcnow() + timedelta(minutes=self.session_minutes)
        self.db.flush()

    # --- authorization -------------------------------------------------------------------

    def _readable(self, session_id: str, entity: str, flag: str = "R"):
        """ALL, or the ids of ``entity`` the user may C, R, U or D (see authz)."""
        user = self.user_name(session_id)
        conn = self.db.connection()
        if (user, flag) not in self._rules:
            self._rules[user, flag] = authz.applicable_rules(conn, user, flag)
        return authz.readable(conn, entity, user, self.root_users, self._rules[user, flag], flag)

    def allowed(self, session_id: str, entity: str, object_id: int, flag: str) -> bool:
        """Would ICAT let this user C, R, U or D this object (which must exist)?"""
        table = T[entity]
        select = self.restrict(
            session_id, sa.select(table.c.id).where(table.c.id == object_id), entity, table.c.id, flag
        )
        return self.run(select).first() is not None

    def readable_parent(self, session_id: str, entity: str, object_id: int) -> bool | None:
        """For a create's reference: None if the object does not exist, else whether the
        user may read it (asked once per request and object)."""
        if (entity, object_id) in self._known:
            return True
        table = T[entity]
        if self.run(sa.select(table.c.id).where(table.c.id == object_id)).first() is None:
            return None
        if not self.allowed(session_id, entity, object_id, "R"):
            return False
        self._known.add((entity, object_id))
        return True

    def create(self, session_id: str, entity: str, values: dict[str, Any], check: bool = True) -> int:
        """Create an object as the user: it must be one a C rule selects, as in ICAT
        (``check=False``: the caller checks all it created at once with :meth:`check_created`)."""
        user = self.user_name(session_id)
        conn = self.db.connection()
        if time.monotonic() > self._write_deadline:
            raise QueryLimitError(
                f"the create took longer than {self.limits.query_seconds:g} s "
                "(the limit is ijp.catalog.query_seconds)",
                503,
            )
        now = utcnow()
        stamp = {"createId": user, "createTime": now, "modId": user, "modTime": now}
        new_id = conn.execute(T[entity].insert().values(**values, **stamp)).inserted_primary_key[0]
        if check and not self.allowed(session_id, entity, new_id, "C"):
            # (not a SAVEPOINT: SQLite's driver does not keep them reliably)
            conn.execute(T[entity].delete().where(T[entity].c.id == new_id))
            raise PermissionError(f"{user} may not create this {entity}")
        return new_id

    def check_created(self, session_id: str, created: dict[str, list[int]]) -> None:
        """Raise PermissionError unless a C rule selects every object just created (by
        entity): one query per entity and chunk of ids, not one per object. The caller
        rolls the transaction back on the error."""
        for entity, ids in created.items():
            table = T[entity]
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                select = self.restrict(
                    session_id, sa.select(table.c.id).where(table.c.id.in_(chunk)), entity, table.c.id, "C"
                )
                missing = set(chunk) - set(self.run(select).scalars())
                if missing:
                    raise PermissionError(f"{self.user_name(session_id)} may not create this {entity}")

    @contextmanager
    def writing(self, session_id: str, entities: int) -> Iterator[None]:
        """Around a create of ``entities`` objects as the user: at most ``max_writes`` of
        them, in one of the user's query slots, within the time limit in all."""
        if entities > self.limits.max_writes:
            raise QueryLimitError(
                f"attempt to process more than {self.limits.max_writes} entities "
                "(ijp.catalog.max_writes, the most one create may hold)"
            )
        user = self.user_name(session_id)
        with (
            SLOTS.hold(user, self.limits.user_queries),
            write_time_limit(self.db.connection(), self.limits.query_seconds) as deadline,
        ):
            self._write_deadline = deadline
            try:
                yield
            finally:
                self._write_deadline = float("inf")

    def delete(self, session_id: str, entity: str, object_id: int) -> None:
        if not self.allowed(session_id, entity, object_id, "D"):
            raise PermissionError(f"{self.user_name(session_id)} may not delete {entity} {object_id}")
        self.db.connection().execute(T[entity].delete().where(T[entity].c.id == object_id))

    def restrict(self, session_id: str, select, entity: str, id_column, flag: str = "R"):
        """``select`` limited to the objects of ``entity`` the user may read (or C/U/D)."""
        return authz.restrict(select, entity, id_column, self._readable(session_id, entity, flag))

    def _rules_for(self, session_id: str, batch: bool = False):
        """The ``restrict`` of jpql.compile_query: what the user may read of an entity, as
        an IN of the readable set. For a batch query (dataset-type parameters: its rows are
        those of the datasets in ``:batch_values``), the readable set of an entity that
        hangs from a dataset is asked for those datasets' objects only (authz.narrow); any
        other entity is checked row by row (authz.probe): never the user's whole set."""

        def check(entity: str, id_column):
            readable = self._readable(session_id, entity)
            if not batch:
                return authz.condition(id_column, readable)
            if entity in _DATASET_LINK:
                values = sa.bindparam("batch_values", expanding=True)
                return authz.condition(id_column, authz.narrow(readable, _DATASET_LINK[entity], values))
            return authz.probe(id_column, readable)

        return check

    def run(self, statement, params=None):
        """Execute one statement. A read runs within the time limit and its rows are
        fetched before the limit ends (the result is buffered)."""
        conn = self.db.connection()
        if not getattr(statement, "is_select", False):
            return conn.execute(statement, params or {})
        with self._slot(), time_limit(conn, self.limits.query_seconds):
            return conn.execute(statement, params or {}).freeze()()

    def _slot(self):
        """One of the user's query slots (the user of this request's session; a statement
        run for no session, such as a login's, takes none)."""
        users = {s.user_name for s in self._sessions.values()}
        if len(users) != 1:
            return contextlib.nullcontext()
        return SLOTS.hold(users.pop(), self.limits.user_queries)

    def _bounded(self, select, params=None, number: int | None = None) -> list:
        """The rows of ``select``, refused as ICAT refuses them when there are more than
        maxEntities: at most maxEntities + 1 are fetched (``number``: the query's own
        LIMIT count, already on ``select``)."""
        most = self.limits.max_entities
        if number is None or number > most:
            select = select.limit(most + 1)
        rows = self.run(select, params).all()
        if len(rows) > most:
            raise self.limits.too_many()
        return rows

    def _few(self, ids: Sequence[int]) -> list[int]:
        if len(ids) > self.limits.max_entities:
            raise self.limits.too_many()
        return list(ids)

    # --- datasets ------------------------------------------------------------------------
    #
    # A restricted user's readable datasets are computed once per statement: the rules'
    # SELECTs, each giving the columns the search filters and orders by (id, investigation,
    # name, type), are one MATERIALIZED common table expression, itself index-driven (e.g.
    # user -> investigationUsers -> datasets). The filters, the name search (ILIKE '%x%',
    # which no btree serves), the keyset and the bounded count run over those rows only,
    # never over every Dataset; only the page's rows are then read from Dataset (with their
    # type and investigation). For a user whose rules read every Dataset (root), the
    # order's index (investigation_id, name, id) is walked from the keyset position and the
    # walk stops after the page.

    _SEARCHED = ("id", "investigation_id", "name", "type_id")  # what the search needs of a dataset

    def _searchable(self, session_id: str):
        """The datasets the user may read, as a FROM with the columns of _SEARCHED: the
        Dataset table itself (every dataset), or a CTE of the rules' SELECTs."""
        readable = self._readable(session_id, "Dataset")
        if readable is authz.ALL:
            return T["Dataset"]

        def columns(arm):
            table = arm.selected_columns[0].table
            return arm.with_only_columns(*[table.c[c] for c in self._SEARCHED])

        if isinstance(readable, sa.CompoundSelect):
            readable = sa.union(*[columns(arm) for arm in readable.selects])
        else:
            readable = columns(readable).distinct()  # (a rule's joins may meet a dataset twice)
        return readable.cte("readable_dataset").prefix_with("MATERIALIZED")

    def _datasets_select(self, session_id: str, ids: Sequence[int], checked: bool = False):
        """The columns of a DatasetView (without file counts) of the datasets ``ids`` that
        the user may read (the rules asked about these alone; ``checked``: the caller has
        just found them readable)."""
        ds, dt, inv = T["Dataset"], T["DatasetType"], T["Investigation"]
        q = (
            sa.select(
                ds.c.id,
                ds.c.name,
                ds.c.description,
                ds.c.complete,
                ds.c.createTime,
                ds.c.investigation_id,
                dt.c.name.label("type_name"),
                inv.c.name.label("inv_name"),
                inv.c.title.label("inv_title"),
            )  # fmt: skip
            .select_from(ds)
            .where(ds.c.id.in_(ids))
            .outerjoin(dt, ds.c.type_id == dt.c.id)
            .outerjoin(inv, ds.c.investigation_id == inv.c.id)
        )
        if checked:
            return q
        return authz.restrict(
            q, "Dataset", ds.c.id, authz.narrow(self._readable(session_id, "Dataset"), "id", ids)
        )

    def _file_totals(self, session_id: str, dataset_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
        """{dataset id: (number, total size)} of the datafiles the user may read in these
        datasets: one grouped statement, the rules asked about these datasets' files only."""
        if not dataset_ids:
            return {}
        df = T["Datafile"]
        ids = list(dataset_ids)
        readable = authz.narrow(self._readable(session_id, "Datafile"), "dataset_id", ids)
        q = (
            sa.select(
                df.c.dataset_id, sa.func.count(df.c.id), sa.func.coalesce(sa.func.sum(df.c.fileSize), 0)
            )
            .where(df.c.dataset_id.in_(ids))
            .group_by(df.c.dataset_id)
        )
        q = authz.restrict(q, "Datafile", df.c.id, readable)
        return {k: (int(n), int(size)) for k, n, size in self.run(q).all()}

    @staticmethod
    def _dataset_view(r, totals: dict[int, tuple[int, int]]) -> DatasetView:
        n, size = totals.get(r.id, (0, 0))
        return DatasetView(
            id=r.id,
            name=r.name,
            type_name=r.type_name or "",
            investigation=r.inv_name or "",
            investigation_title=r.inv_title or "",
            description=r.description or "",
            complete=bool(r.complete),
            datafile_count=n,
            create_time=r.createTime,
            datafile_size=size,
            investigation_id=r.investigation_id or 0,
        )

    def _counted_page(
        self, select, order, query
    ) -> tuple[list, Position | None, Position | None, paging.Count]:
        """:meth:`_keyset_page` and, when ``query.count``, the list's bounded count, read in
        the same statement (a scalar subquery beside the page's rows: the readable set, a
        MATERIALIZED CTE, is computed once for both)."""
        if not query.count:
            return (*self._keyset_page(select, order, query), paging.Count(0, False))
        cap = paging.COUNT_CAP
        counted = sa.select(sa.func.count()).select_from(select.order_by(None).limit(cap + 1).subquery())
        rows, nxt, previous = self._keyset_page(
            select, order, query, counted.scalar_subquery().label("n_total")
        )
        if rows:
            n = rows[0].n_total
        elif query.after is None and query.before is None:
            n = 0
        else:
            return rows, nxt, previous, paging.bounded_count(self.run, select)
        return rows, nxt, previous, paging.Count(cap, False) if n > cap else paging.Count(n, True)

    def _keyset_page(self, select, order, query, *extra) -> tuple[list, Position | None, Position | None]:
        """The rows of one page of ``select`` (with the columns ``extra``) in the order of
        the columns ``order`` (which identify a row): the page after ``query.after``, before
        ``query.before``, or the first; with the positions of the page after and before it
        (None: none)."""
        n = max(1, min(query.per_page, MAX_PER_PAGE))
        select = select.add_columns(*extra) if extra else select
        if query.before is not None:
            q = select.where(paging.keyset(order, query.before, descending=True))
            rows = self.run(q.order_by(*[c.desc() for c in order]).limit(n + 1)).all()
            more_before = len(rows) > n
            rows = rows[:n][::-1]
            nxt = self._position(rows[-1], order) if rows else None
            previous = self._position(rows[0], order) if more_before else None
            return rows, nxt, previous
        q = select if query.after is None else select.where(paging.keyset(order, query.after))
        rows = self.run(q.order_by(*order).limit(n + 1)).all()
        nxt = self._position(rows[n - 1], order) if len(rows) > n else None
        rows = rows[:n]
        previous = self._position(rows[0], order) if rows and query.after is not None else None
        return rows, nxt, previous

    @staticmethod
    def _position(row, order) -> Position | None:
        """The row's position; None for a row that cannot hold one (a dataset without an
        investigation, which ICAT does not allow and /icat refuses: the list ends there)."""
        position = tuple(getattr(row, c.name) for c in order)
        return None if None in position else position

    def search_datasets(self, session_id: str, query: DatasetQuery) -> Page[DatasetView]:
        dt, inv = T["DatasetType"], T["Investigation"]
        found = self._searchable(session_id)
        q = sa.select(found.c.id, found.c.investigation_id, found.c.name)
        if query.type_name:
            q = q.where(found.c.type_id.in_(sa.select(dt.c.id).where(dt.c.name == query.type_name)))
        if query.investigation:
            q = q.where(
                found.c.investigation_id.in_(sa.select(inv.c.id).where(inv.c.name == query.investigation))
            )
        if query.name:
            q = q.where(found.c.name.ilike(_like(query.name), escape="\\"))
        order = [found.c[c] for c in DATASET_ORDER]
        rows, nxt, previous, count = self._counted_page(q, order, query)
        ids = [r.id for r in rows]
        details = (
            {r.id: r for r in self.run(self._datasets_select(session_id, ids, checked=True)).all()}
            if ids
            else {}
        )
        totals = self._file_totals(session_id, ids)
        facets = {}
        if query.facets:
            # the choices of the menus: the first maxEntities names of the (small) type and
            # investigation tables the user may read
            most = self.limits.max_entities
            types = self.restrict(session_id, sa.select(dt.c.name).distinct(), "DatasetType", dt.c.id)
            invs = self.restrict(session_id, sa.select(inv.c.name).distinct(), "Investigation", inv.c.id)
            facets = {
                "types": list(self.run(types.order_by(dt.c.name).limit(most)).scalars()),
                "investigations": list(self.run(invs.order_by(inv.c.name).limit(most)).scalars()),
            }
        items = [self._dataset_view(details[i], totals) for i in ids if i in details]
        per_page = max(1, min(query.per_page, MAX_PER_PAGE))
        return Page(items, count.value, per_page, count.exact, nxt, previous, facets)

    def datasets(self, session_id: str, ids: Sequence[int]) -> list[DatasetView]:
        if not ids:
            return []
        rows = self.run(self._datasets_select(session_id, self._few(ids))).all()
        totals = self._file_totals(session_id, [r.id for r in rows])
        by_id = {r.id: self._dataset_view(r, totals) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    # --- datafiles -----------------------------------------------------------------------

    def _datafiles_select(self, session_id: str, readable=None):
        df, fmt, ds = T["Datafile"], T["DatafileFormat"], T["Dataset"]
        q = (
            sa.select(
                df.c.id,
                df.c.name,
                df.c.fileSize,
                df.c.dataset_id,
                fmt.c.name.label("fmt"),
                ds.c.name.label("ds_name"),
            )
            .outerjoin(fmt, df.c.datafileFormat_id == fmt.c.id)
            .outerjoin(ds, df.c.dataset_id == ds.c.id)
        )
        if readable is None:
            readable = self._readable(session_id, "Datafile")
        return authz.restrict(q, "Datafile", df.c.id, readable)

    @staticmethod
    def _datafile_view(r) -> DatafileView:
        return DatafileView(r.id, r.name, r.fileSize or 0, r.fmt or "", r.dataset_id, r.ds_name or "")

    def datafiles(self, session_id: str, ids: Sequence[int]) -> list[DatafileView]:
        if not ids:
            return []
        ids = self._few(ids)
        readable = authz.narrow(self._readable(session_id, "Datafile"), "id", ids)
        rows = self.run(self._datafiles_select(session_id, readable).where(T["Datafile"].c.id.in_(ids))).all()
        by_id = {r.id: self._datafile_view(r) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def dataset_datafiles(
        self,
        session_id: str,
        dataset_id: int,
        query: DatafileQuery = DatafileQuery(),  # noqa: B008
    ) -> Page[DatafileView]:
        """A page of the dataset's datafiles the user may read, by name (the unique index
        (dataset_id, name) serves the order and the keyset; the rules are asked about this
        dataset's files only). The page's rows are found first (ids and names), then only
        they are read with their format and dataset."""
        df = T["Datafile"]
        readable = authz.narrow(self._readable(session_id, "Datafile"), "dataset_id", [dataset_id])
        q = authz.restrict(
            sa.select(df.c.id, df.c.name).where(df.c.dataset_id == dataset_id), "Datafile", df.c.id, readable
        )
        if query.name:
            q = q.where(df.c.name.ilike(_like(query.name), escape="\\"))
        order = [df.c[c] for c in DATAFILE_ORDER]
        rows, nxt, previous, count = self._counted_page(q, order, query)
        ids = [r.id for r in rows]
        found = (
            self.run(self._datafiles_select(session_id, authz.ALL).where(df.c.id.in_(ids))).all()
            if ids
            else []
        )
        by_id = {r.id: self._datafile_view(r) for r in found}
        items = [by_id[i] for i in ids if i in by_id]
        return Page(items, count.value, max(1, min(query.per_page, MAX_PER_PAGE)), count.exact, nxt, previous)

    def dataset_parameters(self, session_id: str, dataset_id: int) -> list[ParameterView]:
        p, pt = T["DatasetParameter"], T["ParameterType"]
        q = (
            sa.select(pt.c.name, pt.c.units, p.c.numericValue, p.c.stringValue, p.c.dateTimeValue)
            .join(pt, p.c.type_id == pt.c.id)
            .where(p.c.dataset_id == dataset_id)
            .order_by(pt.c.name)
        )
        q = self.restrict(session_id, q, "DatasetParameter", p.c.id)
        out = []
        for name, units, num, text, when in self._bounded(q):
            value = num if num is not None else (text if text is not None else when)
            out.append(ParameterView(name, value, units or ""))
        return out

    # --- queries and dataset-type parameters ------------------------------------------

    def compile(self, session_id: str, text: str, params: dict[str, Any] | None = None, batch=None):
        """A JPQL or concise query, within the limits, restricted by the user's rules (for a
        ``batch`` query, asked about the batch's datasets only: see _rules_for). A batch
        query (a dataset type's parameter, the same few texts on every dataset page) is
        compiled once per user and set of rules that apply to them (_COMPILED)."""
        user = self.user_name(session_id)

        def build():
            return compile_query(
                text,
                {**(params or {}), "user": user},
                batch,
                limits=self.limits.query,
                restrict=self._rules_for(session_id, batch=batch is not None),
                restrict_joins=self.limits.restrict_joins,
            )

        if batch is None or params:
            return build()
        if (user, "R") not in self._rules:
            self._rules[user, "R"] = authz.applicable_rules(self.db.connection(), user, "R")
        key = (text, batch, user, user in self.root_users, tuple(self._rules[user, "R"]), self.limits.query,
               self.limits.restrict_joins)  # fmt: skip
        with _COMPILED_LOCK:
            compiled = _COMPILED.get(key)
            if compiled is not None:
                _COMPILED.move_to_end(key)
                return compiled
        compiled = build()
        with _COMPILED_LOCK:
            _COMPILED[key] = compiled
            while len(_COMPILED) > 2048:
                _COMPILED.popitem(last=False)
        return compiled

    def run_query(self, session_id: str, text: str, params: dict[str, Any] | None = None):
        """Compile a JPQL or concise query and run it as the user: (compiled, rows), at most
        maxEntities rows (more is refused, as ICAT refuses it)."""
        compiled = self.compile(session_id, text, params)
        with _user_query():
            return compiled, self._bounded(compiled.select, number=compiled.number)

    def query(self, session_id: str, text: str, params: dict[str, Any] | None = None) -> list:
        """Run a JPQL or concise query as the user: entities as dicts, or values."""
        compiled, rows = self.run_query(session_id, text, params)
        if compiled.kind == "entity":
            return [dict(r._mapping) for r in rows]
        return [r[0] for r in rows]

    def job_parameters(
        self, session_id: str, datasets: Sequence[DatasetView], definitions
    ) -> dict[int, dict[str, Any]]:
        """One query per parameter definition for all the datasets it applies to (M
        queries for N datasets and M parameters, never N×M), each run as the user."""
        out: dict[int, dict[str, Any]] = {d.id: {} for d in datasets}
        by_def: dict[Any, list[int]] = {}
        for d in datasets:
            for p in definitions(d.type_name):
                by_def.setdefault(p, []).append(d.id)
        for p, ids in by_def.items():
            try:
                compiled = self.compile(session_id, p.query, batch="datasetId")
            except QueryError as e:
                raise QueryError(f"{p.source}: parameter {p.name!r}: {e}") from None
            select = compiled.select
            if compiled.kind != "aggregate":
                # Per dataset, only whether there are 0, 1 or more results matters (and the
                # one): the database answers with one row per dataset, never all of them.
                inner = select.subquery()
                key, value = inner.c[0], inner.c[1]
                ranked = sa.select(
                    key.label("k"),
                    value.label("v"),
                    sa.func.count().over(partition_by=key).label("n"),
                    sa.func.row_number().over(partition_by=key).label("r"),
                ).subquery()
                select = sa.select(ranked.c.k, ranked.c.v, ranked.c.n).where(ranked.c.r == 1)
            else:
                select = select.add_columns(sa.literal_column("1"))
            with _user_query():
                rows = self.run(select, {"batch_values": self._few(ids)}).all()
            found = {k: (v, n) for k, v, n in rows}
            for i in ids:
                value, n = found.get(i, (None, 0))
                if not n and compiled.aggregate == "COUNT":  # ICAT answers an aggregate with one row
                    value, n = 0, 1
                # no result -> null, one -> the value, several -> null (the original's rule)
                out[i][p.name] = value if n == 1 else None
        return out
