"""What logins leave behind: failed attempts (login throttling, see ijpweb.throttle) and
catalog sessions whose user logged out while jobs still used them."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from .meta import Base


class LoginFailure(Base):
    """Failed logins for one user name (``user:<authenticator>/<name>``) or one client
    address (``addr:<ip>``) within the current window, and the lock they earned. Kept in
    the database, so every portal process sharing it counts together."""

    __tablename__ = "login_failure"

    key: Mapped[str] = mapped_column(sa.String(300), primary_key=True)
    failures: Mapped[int]
    first_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))  # the window's start
    last_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), index=True)
    locked_until: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class PendingLogout(Base):
    """A catalog session whose user logged out while jobs still used it: the jobs keep
    it (kept alive as ever), and it is logged out of the catalog once none of them is
    live any more (ijpweb.jobs.sessions.forget_sessions)."""

    __tablename__ = "pending_logout"

    catalog_session: Mapped[str] = mapped_column(sa.String(255), primary_key=True)
    requested_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
