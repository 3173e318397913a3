"""What the embedded catalog keeps beside ICAT's own entities (see catalog/icatdb.py):
the ``db`` authenticator's password store, and catalog sessions."""

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
