"""Interactive jobs' desktops (issue 14): one Desktop per interactive job, written by the
harvester from what the job's launcher records (where its VNC server listens, and when it
answered), by the desktop proxy (viewers), and read by pages and the API; one DesktopToken
per opening of a desktop by its owner's login (the websocket's credential)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from .jobs import utcnow
from .meta import Base

# a desktop's state, as /api/v1 names it: starting (the job is queued or its VNC server has
# not answered yet), ready (it answers: the desktop can be opened), ended (the job ended)
DESKTOP_STATES = ("starting", "ready", "ended")


class Desktop(Base):
    __tablename__ = "desktop"
    # the harvest's and the idle check's "ready desktops": from an index, not every row
    __table_args__ = (sa.Index("ix_desktop_state_viewer_seen_at", "state", "viewer_seen_at"),)

    job_id: Mapped[int] = mapped_column(sa.ForeignKey("job.id", ondelete="CASCADE"), primary_key=True)
    state: Mapped[str] = mapped_column(sa.String(16), default="starting", server_default="starting")
    # where the job's VNC server listens (the node's loopback or cluster address): for the
    # proxy only, never shown to a user
    host: Mapped[str | None] = mapped_column(sa.String(255))
    port: Mapped[int | None]
    ready_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # when the session's time limit ends it (known once it started)
    ends_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # viewers connected through the proxy now, and the last time one was (the idle timeout
    # counts from it, or from ready_at when none ever was)
    viewers: Mapped[int] = mapped_column(default=0, server_default="0")
    viewer_seen_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # why it ended, as the user reads it ("ended by the user", "no viewer for 30 minutes")
    ended_reason: Mapped[str | None] = mapped_column(sa.Text)


class DesktopToken(Base):
    """The websocket's credential for one job's desktop and one login: the token itself
    travels only in an HttpOnly cookie scoped to the job's websocket path; only its SHA-256
    is stored. Gone when the job ends, the login ends, or at ``expires_at``."""

    __tablename__ = "desktop_token"

    token_hash: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    job_id: Mapped[int] = mapped_column(sa.ForeignKey("job.id", ondelete="CASCADE"), index=True)
    web_session_id: Mapped[str] = mapped_column(
        sa.ForeignKey("web_session.id", ondelete="CASCADE"), index=True
    )
    owner: Mapped[str] = mapped_column(sa.String(255))
    # the origin (scheme://host[:port]) of the viewer page that minted it, as the portal saw
    # the request (through a trusted proxy's X-Forwarded-*): the websocket's Origin must be
    # exactly this one; a page on another port of the host is another site
    origin: Mapped[str] = mapped_column(sa.String(300))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
