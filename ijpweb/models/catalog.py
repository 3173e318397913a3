"""What the embedded catalog keeps beside ICAT's own entities (see catalog/icatdb.py):
the ``db`` authenticator's password store, catalog sessions, and IDS's prepared ids."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from .meta import Base


class DbCredential(Base):
    """The ``db`` authenticator's users (ICAT keeps these in its authn.db plugin, apart
    from the catalog's User entity)."""

    __tablename__ = "auth_db_credential"

    username: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    password_hash: Mapped[str] = mapped_column(sa.String(255))


class CatalogSession(Base):
    __tablename__ = "catalog_session"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    user_name: Mapped[str] = mapped_column(sa.String(255))
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), index=True)


class PreparedData(Base):
    """An IDS ``prepareData``: the selection and the catalog session it runs as, found by
    the SHA-256 of its preparedId (a bearer credential, never stored itself). Kept in the
    database, so that every portal process answers ``getData`` for an id another gave;
    the purge forgets it after a day, or once its catalog session has gone."""

    __tablename__ = "ids_prepared"

    key: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    catalog_session: Mapped[str] = mapped_column(sa.String(255))
    selection: Mapped[dict] = mapped_column(sa.JSON)
    zip: Mapped[bool]
    compress: Mapped[bool]
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), index=True)
