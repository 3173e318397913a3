"""The embedded catalog: ICAT's entities in the portal's own database.

A user sees the datasets of the investigations they are a member of
(InvestigationUser). Sessions are random ids with ICAT's lifetime.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerifyMismatchError
from sqlalchemy.orm import aliased

from ..models import (
    CatalogSession,
    CatalogUser,
    Datafile,
    DatafileFormat,
    Dataset,
    DatasetParameter,
    DatasetType,
    Investigation,
    InvestigationUser,
    ParameterType,
    utcnow,
)
from . import (
    AuthenticationError,
    CatalogLogin,
    DatafileView,
    DatasetQuery,
    DatasetView,
    Page,
    ParameterView,
    SessionError,
)
from .concise import DATASET_ID_PARAM, BoolOp, Cmp, ConciseError, ConciseQuery, Param, parse_query

_hasher = PasswordHasher()
# Verifying against this keeps the time of "no such user" equal to "wrong password".
_DUMMY_HASH = _hasher.hash("not a password")


def hash_password(password: str) -> str:
    return _hasher.hash(password)


# ICAT entity and attribute names -> the embedded models.
ENTITIES = {
    "Dataset": Dataset,
    "Datafile": Datafile,
    "DatasetParameter": DatasetParameter,
    "DatafileFormat": DatafileFormat,
    "DatasetType": DatasetType,
    "ParameterType": ParameterType,
    "Investigation": Investigation,
}
ATTRIBUTES = {"fileSize": "file_size", "createTime": "create_time", "valueType": "value_type"}
# How each selectable entity reaches the Dataset it belongs to.
TO_DATASET = {"Dataset": (), "Datafile": ("dataset",), "DatasetParameter": ("dataset",)}


class EmbeddedCatalog:
    def __init__(self, dbsession, session_minutes: int = 120):
        self.db = dbsession
        self.session_minutes = session_minutes

    # --- sessions ------------------------------------------------------------------------

    def authenticators(self) -> list[str]:
        return ["db"]

    def login(self, authenticator: str, credentials: dict[str, str]) -> CatalogLogin:
        if authenticator != "db":
            raise AuthenticationError(f"authenticator {authenticator!r} is not available")
        name = credentials.get("username", "")
        password = credentials.get("password", "")
        user = self.db.scalar(sa.select(CatalogUser).where(CatalogUser.name == name))
        try:
            _hasher.verify(user.password_hash if user and user.password_hash else _DUMMY_HASH, password)
            ok = user is not None and user.password_hash is not None
        except (VerifyMismatchError, InvalidHashError):
            ok = False
        if not ok:
            raise AuthenticationError("the user name or password is not correct")
        session = CatalogSession(
            id=secrets.token_urlsafe(32),
            user_name=user.name,
            expires_at=utcnow() + timedelta(minutes=self.session_minutes),
        )
        self.db.add(session)
        self.db.flush()
        return CatalogLogin(session.id, user.name, session.expires_at)

    def _session(self, session_id: str) -> CatalogSession:
        s = self.db.get(CatalogSession, session_id) if session_id else None
        if s is None or _aware(s.expires_at) < utcnow():
            raise SessionError("the catalog session has expired; log in again")
        return s

    def logout(self, session_id: str) -> None:
        s = self.db.get(CatalogSession, session_id) if session_id else None
        if s is not None:
            self.db.delete(s)
            self.db.flush()

    def user_name(self, session_id: str) -> str:
        return self._session(session_id).user_name

    # --- visibility ----------------------------------------------------------------------

    def _visible_investigations(self, session_id: str):
        user = self.user_name(session_id)
        return (
            sa.select(InvestigationUser.investigation_id)
            .join(CatalogUser, CatalogUser.id == InvestigationUser.user_id)
            .where(CatalogUser.name == user)
        )

    def _datasets_query(self, session_id: str):
        count = (
            sa.select(sa.func.count(Datafile.id))
            .where(Datafile.dataset_id == Dataset.id)
            .correlate(Dataset)
            .scalar_subquery()
        )
        return (
            sa.select(Dataset, DatasetType.name, Investigation.name, Investigation.title, count)
            .join(DatasetType, Dataset.type_id == DatasetType.id)
            .join(Investigation, Dataset.investigation_id == Investigation.id)
            .where(Dataset.investigation_id.in_(self._visible_investigations(session_id)))
        )

    @staticmethod
    def _dataset_view(row) -> DatasetView:
        ds, type_name, inv, title, n = row
        return DatasetView(
            id=ds.id,
            name=ds.name,
            type_name=type_name,
            investigation=inv,
            investigation_title=title,
            description=ds.description,
            complete=ds.complete,
            datafile_count=n,
            create_time=ds.create_time,
        )

    # --- reading -------------------------------------------------------------------------

    def search_datasets(self, session_id: str, query: DatasetQuery) -> Page[DatasetView]:
        q = self._datasets_query(session_id)
        if query.type_name:
            q = q.where(DatasetType.name == query.type_name)
        if query.investigation:
            q = q.where(Investigation.name == query.investigation)
        if query.name:
            pattern = "%" + query.name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            q = q.where(Dataset.name.ilike(pattern, escape="\\"))
        total = self.db.scalar(sa.select(sa.func.count()).select_from(q.subquery()))
        per_page = max(1, min(query.per_page, 200))
        page = max(1, query.page)
        rows = self.db.execute(
            q.order_by(Investigation.name, Dataset.name).offset((page - 1) * per_page).limit(per_page)
        ).all()
        visible = self._visible_investigations(session_id)
        facets = {
            "types": list(self.db.scalars(sa.select(DatasetType.name).order_by(DatasetType.name))),
            "investigations": list(
                self.db.scalars(
                    sa.select(Investigation.name)
                    .where(Investigation.id.in_(visible))
                    .order_by(Investigation.name)
                )
            ),
        }
        return Page([self._dataset_view(r) for r in rows], total, page, per_page, facets)

    def datasets(self, session_id: str, ids: Sequence[int]) -> list[DatasetView]:
        if not ids:
            return []
        rows = self.db.execute(self._datasets_query(session_id).where(Dataset.id.in_(list(ids)))).all()
        by_id = {r[0].id: self._dataset_view(r) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def _datafiles_query(self, session_id: str):
        return (
            sa.select(Datafile, DatafileFormat.name, Dataset.name)
            .join(Dataset, Datafile.dataset_id == Dataset.id)
            .outerjoin(DatafileFormat, Datafile.datafile_format_id == DatafileFormat.id)
            .where(Dataset.investigation_id.in_(self._visible_investigations(session_id)))
        )

    @staticmethod
    def _datafile_view(row) -> DatafileView:
        df, fmt, ds_name = row
        return DatafileView(df.id, df.name, df.file_size, fmt or "", df.dataset_id, ds_name)

    def datafiles(self, session_id: str, ids: Sequence[int]) -> list[DatafileView]:
        if not ids:
            return []
        rows = self.db.execute(self._datafiles_query(session_id).where(Datafile.id.in_(list(ids)))).all()
        by_id = {r[0].id: self._datafile_view(r) for r in rows}
        return [by_id[i] for i in ids if i in by_id]

    def dataset_datafiles(self, session_id: str, dataset_id: int) -> list[DatafileView]:
        rows = self.db.execute(
            self._datafiles_query(session_id).where(Datafile.dataset_id == dataset_id).order_by(Datafile.name)
        ).all()
        return [self._datafile_view(r) for r in rows]

    def dataset_parameters(self, session_id: str, dataset_id: int) -> list[ParameterView]:
        if not self.datasets(session_id, [dataset_id]):
            return []
        rows = self.db.execute(
            sa.select(
                ParameterType.name,
                ParameterType.units,
                DatasetParameter.numericValue,
                DatasetParameter.stringValue,
            )
            .join(ParameterType, DatasetParameter.type_id == ParameterType.id)
            .where(DatasetParameter.dataset_id == dataset_id)
            .order_by(ParameterType.name)
        ).all()
        return [ParameterView(n, num if num is not None else s, u) for n, u, num, s in rows]

    # --- dataset-type parameters ------------------------------------------------------

    def job_parameters(
        self, session_id: str, datasets: Sequence[DatasetView], definitions
    ) -> dict[int, dict[str, Any]]:
        """One query per distinct parameter definition for all the datasets it applies
        to (M queries for N datasets and M parameters, never N×M)."""
        out: dict[int, dict[str, Any]] = {d.id: {} for d in datasets}
        visible = {d.id for d in self.datasets(session_id, [d.id for d in datasets])}
        by_def: dict[Any, list[int]] = {}
        for d in datasets:
            if d.id not in visible:
                continue
            for p in definitions(d.type_name):
                by_def.setdefault(p, []).append(d.id)
        for p, ids in by_def.items():
            try:
                values = self._evaluate(parse_query(p.query), ids)
            except (ConciseError, KeyError, AttributeError, sa.exc.SQLAlchemyError) as e:
                raise ConciseError(f"{p.source}: parameter {p.name!r}: {e}") from None
            for i in ids:
                out[i][p.name] = values.get(i)
        return out

    def _evaluate(self, q: ConciseQuery, dataset_ids: list[int]) -> dict[int, Any]:
        if q.entity not in TO_DATASET:
            raise ConciseError(f"cannot select {q.entity} per dataset")
        root = aliased(ENTITIES[q.entity])
        ds = root
        for _rel in TO_DATASET[q.entity]:
            ds = aliased(Dataset)
        joins: list = []
        if ds is not root:
            joins.append((ds, root.dataset_id == ds.id))
        aliases = {q.entity: root, "Dataset": ds}
        conds = []
        bound_to_dataset = False
        for term in q.terms:
            if term.entity not in aliases:
                raise ConciseError(f"{term.entity} cannot be related to {q.entity} here")
            if term.condition is not None:
                cond, uses = self._condition(aliases[term.entity], term.condition, joins)
                conds.append(cond)
                bound_to_dataset |= uses and term.entity == "Dataset"
        if not bound_to_dataset:
            raise ConciseError("the query must select one dataset with [id=${datasetId}]")
        if q.aggregate == "COUNT":
            select = sa.select(ds.id, sa.func.count(root.id)).group_by(ds.id)
        else:
            select = sa.select(ds.id, self._column(root, q.attribute or "id", joins))
        select = select.select_from(root)
        for target, on in joins:
            select = select.join(target, on)
        select = select.where(ds.id.in_(dataset_ids), *conds)
        values: dict[int, list[Any]] = {}
        for dsid, value in self.db.execute(select):
            values.setdefault(dsid, []).append(value)
        if q.aggregate == "COUNT":  # ICAT answers a COUNT with one row, 0 when nothing matches
            return {i: values.get(i, [0])[0] for i in dataset_ids}
        # 0 results -> null, 1 -> the value, several -> null (the original's rule)
        return {i: (v[0] if len(v) == 1 else None) for i, v in values.items()}

    def _column(self, alias, path: str, joins: list):
        parts = path.split(".")
        current = alias
        for part in parts[:-1]:
            rel = getattr(current, ATTRIBUTES.get(part, part))
            target = aliased(rel.property.mapper.class_)
            joins.append((target, rel.of_type(target)))
            current = target
        return getattr(current, ATTRIBUTES.get(parts[-1], parts[-1]))

    def _condition(self, alias, node, joins: list) -> tuple[Any, bool]:
        if isinstance(node, BoolOp):
            parts = [self._condition(alias, a, joins) for a in node.args]
            uses = any(u for _, u in parts)
            if node.op == "NOT":
                return sa.not_(parts[0][0]), uses
            fn = sa.and_ if node.op == "AND" else sa.or_
            return fn(*[c for c, _ in parts]), uses
        assert isinstance(node, Cmp)
        col = self._column(alias, node.path, joins)
        uses = False

        def val(v):
            nonlocal uses
            if isinstance(v, Param):
                if v.name != DATASET_ID_PARAM:
                    raise ConciseError(f"unknown parameter ${{{v.name}}}")
                uses = True
                return None
            return v

        if node.op in ("NULL", "NOTNULL"):
            return (col.is_(None) if node.op == "NULL" else col.is_not(None)), False
        if node.op == "IN":
            vals = [val(v) for v in node.value]
            return col.in_([v for v in vals if v is not None]), uses
        v = val(node.value)
        if uses:
            if node.op != "=" or node.path != "id":
                raise ConciseError("${datasetId} may only be used as id=${datasetId}")
            return sa.true(), True
        ops = {
            "=": col.__eq__,
            "!=": col.__ne__,
            "<": col.__lt__,
            ">": col.__gt__,
            "<=": col.__le__,
            ">=": col.__ge__,
            "LIKE": col.like,
        }
        return ops[node.op](v), False


def _aware(dt):
    from datetime import UTC

    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)
