"""What staff did in the operator's console: one row per action, written in the same
transaction as the action itself (ijpweb.console), so an action is never without its row
and a row never without its action."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from .jobs import utcnow
from .meta import Base


class AuditEntry(Base):
    __tablename__ = "audit_entry"
    # ids are never reused: the audit is read newest first by id, and a cursor into it
    # must never point at a later entry
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    actor: Mapped[str] = mapped_column(sa.String(255))  # the staff member's user name
    action: Mapped[str] = mapped_column(sa.String(64))  # e.g. job.cancel, login.revoke
    target: Mapped[str] = mapped_column(sa.String(300))  # e.g. job 42, db/bob
    detail: Mapped[str] = mapped_column(sa.String(1000), default="", server_default="")
