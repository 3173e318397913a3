"""The embedded catalog: the part of ICAT's schema the portal and its jobs need.

Names and relations follow ICAT (Investigation, Dataset, DatasetType, Datafile,
DatafileFormat, ParameterType, DatasetParameter, InvestigationUser, User), so that
catalog queries read the same against the embedded catalog and a real ICAT.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .jobs import utcnow
from .meta import Base


class CatalogUser(Base):
    __tablename__ = "catalog_user"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(255), unique=True)
    full_name: Mapped[str] = mapped_column(sa.String(255), default="")
    password_hash: Mapped[str | None] = mapped_column(sa.String(255))


class Investigation(Base):
    __tablename__ = "investigation"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(255), unique=True)
    title: Mapped[str] = mapped_column(sa.String(255), default="")
    users: Mapped[list[InvestigationUser]] = relationship(back_populates="investigation")


class InvestigationUser(Base):
    __tablename__ = "investigation_user"
    __table_args__ = (sa.UniqueConstraint("investigation_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    investigation_id: Mapped[int] = mapped_column(sa.ForeignKey("investigation.id"))
    user_id: Mapped[int] = mapped_column(sa.ForeignKey("catalog_user.id"), index=True)
    role: Mapped[str] = mapped_column(sa.String(64), default="member")
    investigation: Mapped[Investigation] = relationship(back_populates="users")
    user: Mapped[CatalogUser] = relationship()


class DatasetType(Base):
    __tablename__ = "dataset_type"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(255), unique=True)
    description: Mapped[str] = mapped_column(sa.String(255), default="")


class Dataset(Base):
    __tablename__ = "dataset"
    __table_args__ = (sa.UniqueConstraint("investigation_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(255), index=True)
    description: Mapped[str] = mapped_column(sa.String(255), default="")
    complete: Mapped[bool] = mapped_column(default=False)
    investigation_id: Mapped[int] = mapped_column(sa.ForeignKey("investigation.id"), index=True)
    type_id: Mapped[int] = mapped_column(sa.ForeignKey("dataset_type.id"), index=True)
    create_time: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)

    investigation: Mapped[Investigation] = relationship()
    type: Mapped[DatasetType] = relationship()
    datafiles: Mapped[list[Datafile]] = relationship(back_populates="dataset", order_by="Datafile.name")
    parameters: Mapped[list[DatasetParameter]] = relationship(back_populates="dataset")


class DatafileFormat(Base):
    __tablename__ = "datafile_format"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(255), unique=True)
    version: Mapped[str] = mapped_column(sa.String(64), default="1")


class Datafile(Base):
    __tablename__ = "datafile"
    __table_args__ = (sa.UniqueConstraint("dataset_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(255))
    file_size: Mapped[int] = mapped_column(sa.BigInteger, default=0)
    dataset_id: Mapped[int] = mapped_column(sa.ForeignKey("dataset.id"), index=True)
    datafile_format_id: Mapped[int | None] = mapped_column(sa.ForeignKey("datafile_format.id"))

    dataset: Mapped[Dataset] = relationship(back_populates="datafiles")
    datafileFormat: Mapped[DatafileFormat | None] = relationship()  # noqa: N815 (ICAT's name)


class ParameterType(Base):
    __tablename__ = "parameter_type"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(sa.String(255), unique=True)
    units: Mapped[str] = mapped_column(sa.String(64), default="")
    value_type: Mapped[str] = mapped_column(sa.String(16))  # NUMERIC | STRING


class DatasetParameter(Base):
    __tablename__ = "dataset_parameter"
    __table_args__ = (sa.UniqueConstraint("dataset_id", "type_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    dataset_id: Mapped[int] = mapped_column(sa.ForeignKey("dataset.id"), index=True)
    type_id: Mapped[int] = mapped_column(sa.ForeignKey("parameter_type.id"))
    numericValue: Mapped[float | None]  # noqa: N815 (ICAT's names)
    stringValue: Mapped[str | None] = mapped_column(sa.String(4000))  # noqa: N815

    dataset: Mapped[Dataset] = relationship(back_populates="parameters")
    type: Mapped[ParameterType] = relationship()


class CatalogSession(Base):
    __tablename__ = "catalog_session"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    user_name: Mapped[str] = mapped_column(sa.String(255))
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), index=True)
