"""What the harvester saw of each backend, and whether staff paused it: one row per
backend, in the database because several portal processes serve the console while one
of them harvests (ijpweb.health writes and reads it)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from .meta import Base


class BackendHealth(Base):
    __tablename__ = "backend_health"

    name: Mapped[str] = mapped_column(sa.String(64), primary_key=True)  # ijp.batch.<name>
    # the last harvest of it: whether it answered (None: never asked yet), when, how long it took
    reachable: Mapped[bool | None]
    checked_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    duration: Mapped[float | None] = mapped_column(sa.Float)  # seconds spent asking it in that harvest
    # the last error (short, fit for staff to read; never a secret), when it came, and
    # since when it has not answered (None while it answers)
    last_error: Mapped[str | None] = mapped_column(sa.String(300))
    last_error_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    error_since: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    errors: Mapped[int] = mapped_column(default=0, server_default="0")  # harvests that failed, ever
    # a SLURM backend's nodes as sinfo listed them at checked_at (ijpweb.batch.slurm.Node)
    nodes: Mapped[list | None] = mapped_column(sa.JSON)
    # paused by staff: no new submission goes to it (ijpweb.health.pause)
    paused: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    paused_by: Mapped[str | None] = mapped_column(sa.String(255))
    paused_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
