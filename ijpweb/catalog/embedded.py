"""The embedded catalog: ICAT's entities in the portal's own database (catalog/icatdb.py),
read as the logged-in user under ICAT's rules (catalog/authz.py).

Authenticators, as ICAT names them: ``db`` (user name and password, stored hashed) and,
when enabled, ``anon``. User names carry the authenticator's mnemonic, as a typical ICAT
is configured and as python-icat's dumps have them: ``db/alice``.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError

from ..models import CatalogSession, DbCredential, as_utc, utcnow
from . import (
    AuthenticationError,
    CatalogLogin,
    DatafileView,
    DatasetQuery,
    DatasetView,
    Page,
    ParameterView,
    SessionError,
    authz,
)
from .icatdb import TABLES
from .jpql import QueryError, compile_query

_hasher = PasswordHasher()
# Verifying against this keeps the time of "no such user" equal to "wrong password".
_DUMMY_HASH = _hasher.hash("not a password")
T = TABLES


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class EmbeddedCatalog:
    def __init__(self, dbsession, session_minutes: int = 120, anon: bool = False, root_users=frozenset()):
        self.db = dbsession
        self.session_minutes = session_minutes
        self.anon = anon
        self.root_users = frozenset(root_users)
        self._rules: dict[tuple[str, str], list[str]] = {}  # (user, C|R|U|D) -> rules, per request
        self._sessions: dict[str, CatalogSession] = {}  # this request's, read once

    # --- sessions ------------------------------------------------------------------------

    def authenticators(self) -> list[str]:
        return ["db", "anon"] if self.anon else ["db"]

    def login(self, authenticator: str, credentials: dict[str, str]) -> CatalogLogin:
        if authenticator == "anon" and self.anon:
            name = "anon/anon"
        elif authenticator == "db":
            username = credentials.get("username", "")
            cred = self.db.get(DbCredential, username) if username else None
            try:
                _hasher.verify(cred.password_hash if cred else _DUMMY_HASH, credentials.get("password", ""))
            except (VerifyMismatchError, InvalidHashError):
                cred = None
            if cred is None:
                raise AuthenticationError("the user name or password is not correct")
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

    def create(self, session_id: str, entity: str, values: dict[str, Any]) -> int:
        """Create an object as the user: it must be one a C rule selects, as in ICAT."""
        user = self.user_name(session_id)
        conn = self.db.connection()
        now = utcnow()
        stamp = {"createId": user, "createTime": now, "modId": user, "modTime": now}
        new_id = conn.execute(T[entity].insert().values(**values, **stamp)).inserted_primary_key[0]
        if not self.allowed(session_id, entity, new_id, "C"):
            # (not a SAVEPOINT: SQLite's driver does not keep them reliably)
            conn.execute(T[entity].delete().where(T[entity].c.id == new_id))
            raise PermissionError(f"{user} may not create this {entity}")
        return new_id

    def delete(self, session_id: str, entity: str, object_id: int) -> None:
        if not self.allowed(session_id, entity, object_id, "D"):
            raise PermissionError(f"{self.user_name(session_id)} may not delete {entity} {object_id}")
        self.db.connection().execute(T[entity].delete().where(T[entity].c.id == object_id))

    def restrict(self, session_id: str, select, entity: str, id_column, flag: str = "R"):
        """``select`` limited to the objects of ``entity`` the user may read (or C/U/D)."""
        return authz.restrict(select, entity, id_column, self._readable(session_id, entity, flag))

    def run(self, select, params=None):
        return self.db.connection().execute(select, params or {})

    # --- datasets ------------------------------------------------------------------------

    def _datasets_select(self, session_id: str):
        ds, dt, inv, df = T["Dataset"], T["DatasetType"], T["Investigation"], T["Datafile"]
        readable_files = self._readable(session_id, "Datafile")
        count = sa.select(sa.func.count(df.c.id)).where(df.c.dataset_id == ds.c.id)
        count = authz.restrict(count, "Datafile", df.c.id, readable_files).correlate(ds).scalar_subquery()
        q = (
            sa.select(
                ds.c.id,
                ds.c.name,
                ds.c.description,
                ds.c.complete,
                ds.c.createTime,
                dt.c.name.label("type_name"),
                inv.c.name.label("inv_name"),
                inv.c.title.label("inv_title"),
                count.label("n_files"),
            )  # fmt: skip
            .outerjoin(dt, ds.c.type_id == dt.c.id)
            .outerjoin(inv, ds.c.investigation_id == inv.c.id)
        )
        return self.restrict(session_id, q, "Dataset", ds.c.id)

    @staticmethod
    def _dataset_view(r) -> DatasetView:
        return DatasetView(
            id=r.id,
            name=r.name,
            type_name=r.type_name or "",
            investigation=r.inv_name or "",
            investigation_title=r.inv_title or "",
            description=r.description or "",
            complete=bool(r.complete),
            datafile_count=r.n_files or 0,
            create_time=r.createTime,
        )

    def search_datasets(self, session_id: str, query: DatasetQuery) -> Page[DatasetView]:
        ds, dt, inv = T["Dataset"], T["DatasetType"], T["Investigation"]
        q = self._datasets_select(session_id)
        if query.type_name:
            q = q.where(dt.c.name == query.type_name)
        if query.investigation:
            q = q.where(inv.c.name == query.investigation)
        if query.name:
            q = q.where(ds.c.name.ilike(_like(query.name), escape="\\"))
        total = self.run(sa.select(sa.func.count()).select_from(q.subquery())).scalar()
        per_page = max(1, min(query.per_page, 200))
        page = max(1, query.page)
        rows = self.run(q.order_by(inv.c.name, ds.c.name).offset((page - 1) * per_page).limit(per_page)).all()
        types = self.restrict(session_id, sa.select(dt.c.name).distinct(), "DatasetType", dt.c.id)
        invs = self.restrict(session_id, sa.select(inv.c.name).distinct(), "Investigation", inv.c.id)
        facets = {
            "types": sorted(self.run(types).scalars()),
            "investigations": sorted(self.run(invs).scalars()),
        }
        return Page([self._dataset_view(r) for r in rows], total, page, per_page, facets)

    def datasets(self, session_id: str, ids: Sequence[int]) -> list[DatasetView]:
        if not ids:
            return []
        rows = self.run(self._datasets_select(session_id).where(T["Dataset"].c.id.in_(list(ids)))).all()
        by_id = {r.id: self._dataset_view(r) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    # --- datafiles -----------------------------------------------------------------------

    def _datafiles_select(self, session_id: str):
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
        return self.restrict(session_id, q, "Datafile", df.c.id)

    @staticmethod
    def _datafile_view(r) -> DatafileView:
        return DatafileView(r.id, r.name, r.fileSize or 0, r.fmt or "", r.dataset_id, r.ds_name or "")

    def datafiles(self, session_id: str, ids: Sequence[int]) -> list[DatafileView]:
        if not ids:
            return []
        rows = self.run(self._datafiles_select(session_id).where(T["Datafile"].c.id.in_(list(ids)))).all()
        by_id = {r.id: self._datafile_view(r) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def dataset_datafiles(self, session_id: str, dataset_id: int) -> list[DatafileView]:
        df = T["Datafile"]
        q = self._datafiles_select(session_id).where(df.c.dataset_id == dataset_id).order_by(df.c.name)
        return [self._datafile_view(r) for r in self.run(q)]

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
        for name, units, num, text, when in self.run(q):
            value = num if num is not None else (text if text is not None else when)
            out.append(ParameterView(name, value, units or ""))
        return out

    # --- queries and dataset-type parameters ------------------------------------------

    def run_query(self, session_id: str, text: str, params: dict[str, Any] | None = None):
        """Compile a JPQL or concise query and run it as the user: (compiled, rows)."""
        compiled = compile_query(text, {**(params or {}), "user": self.user_name(session_id)})
        select = self.restrict(session_id, compiled.select, compiled.entity, compiled.root.c.id)
        return compiled, self.run(select).all()

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
        user = self.user_name(session_id)
        by_def: dict[Any, list[int]] = {}
        for d in datasets:
            for p in definitions(d.type_name):
                by_def.setdefault(p, []).append(d.id)
        for p, ids in by_def.items():
            try:
                compiled = compile_query(p.query, {"user": user}, batch="datasetId")
            except QueryError as e:
                raise QueryError(f"{p.source}: parameter {p.name!r}: {e}") from None
            select = self.restrict(session_id, compiled.select, compiled.entity, compiled.root.c.id)
            values: dict[int, list[Any]] = {}
            for dsid, value in self.run(select, {"batch_values": ids}):
                values.setdefault(dsid, []).append(value)
            for i in ids:
                found = values.get(i, [])
                if not found and compiled.aggregate:  # ICAT answers an aggregate with one row
                    found = [0 if compiled.aggregate == "COUNT" else None]
                # no result -> null, one -> the value, several -> null (the original's rule)
                out[i][p.name] = found[0] if len(found) == 1 else None
        return out
