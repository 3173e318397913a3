"""Comments on jobs (issue 13, point 9): the job's owner writes them; they go with the job."""

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from .jobs import utcnow
from .meta import Base

MAX_COMMENT_LENGTH = 10_000  # characters of one comment
MAX_COMMENTS_PER_JOB = 1_000  # comments one job may hold


class JobComment(Base):
    """One comment on one job, in the order written (id). A job deleted deletes its
    comments (the foreign key cascades)."""

    __tablename__ = "job_comment"
    __table_args__ = (
        sa.Index("ix_job_comment_job_id_id", "job_id", "id"),
        {"sqlite_autoincrement": True},  # a deleted comment's id never comes back
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(sa.ForeignKey("job.id", ondelete="CASCADE"))
    author: Mapped[str] = mapped_column(sa.String(255))
    body: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    edited_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
