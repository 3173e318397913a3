"""The jobs database: one Job per batch job, grouped by the Submission (one click)."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..states import JobStatus
from .meta import Base


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(dt: datetime) -> datetime:
    """SQLite gives timestamps back without a zone; they were stored as UTC."""
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


_status_type = sa.Enum(
    JobStatus,
    name="job_status",
    native_enum=False,
    length=16,
    values_callable=lambda e: [m.value for m in e],
    validate_strings=True,
    create_constraint=True,
)


class Submission(Base):
    """The jobs one click created."""

    __tablename__ = "submission"
    # ids are never reused (SQLite would give a deleted last row's id to the next one)
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    owner: Mapped[str] = mapped_column(sa.String(255), index=True)
    job_type: Mapped[str] = mapped_column(sa.String(255))
    mode: Mapped[str] = mapped_column(sa.String(8))  # single | each
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    # What the background submitter needs, fixed at the click (job types may reload).
    executable: Mapped[str] = mapped_column(sa.String(1024), default="", server_default="")
    interactive: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    family: Mapped[str | None] = mapped_column(sa.String(255))
    # what a cluster should allocate for each job (the job type's <resources>)
    resources: Mapped[dict] = mapped_column(sa.JSON, default=dict, server_default="{}")
    # The user's catalog session for the jobs' environment: a credential, kept here
    # (server-side) only until every job of the submission has been submitted.
    catalog_session: Mapped[str | None] = mapped_column(sa.String(255))
    jobs: Mapped[list[Job]] = relationship(back_populates="submission", order_by="Job.id")


class Job(Base):
    __tablename__ = "job"
    __table_args__ = (
        sa.Index("ix_job_owner_id", "owner", "id"),
        # a user's list by each filter the faces offer, newest first, read from an index
        # (ijpweb.jobs.actions.job_select; tests/functional/test_query_plans_jobs.py)
        sa.Index("ix_job_owner_status_id", "owner", "status", "id"),
        sa.Index("ix_job_owner_job_type_id", "owner", "job_type", "id"),
        sa.Index("ix_job_owner_submission_id", "owner", "submission_id", "id"),
        # the job list's groups: a submission's jobs counted by status from the index alone
        # (ijpweb.jobs.actions.submission_counts; the owner is the submission's)
        sa.Index("ix_job_submission_status", "submission_id", "status"),
        sa.Index("ix_job_owner_submitted_at_id", "owner", "submitted_at", "id"),
        sa.Index("ix_job_backend_status", "backend", "status"),
        # the console's list of every user's jobs, newest first, by status, job type or
        # date (ijpweb.console): a page is read from an index whatever the filter
        sa.Index("ix_job_status_id", "status", "id"),
        sa.Index("ix_job_job_type_id", "job_type", "id"),
        sa.Index("ix_job_backend_id", "backend", "id"),
        # (a list filtered by date is in (submitted_at, id) order: ijpweb.jobs.actions.job_keyset)
        sa.Index("ix_job_submitted_at_id", "submitted_at", "id"),
        # the console's backends: the jobs that failed in the last hour (ijpweb.health)
        sa.Index("ix_job_status_finished_at", "status", "finished_at"),
        # ids are never reused: a job's id names its directory and output on the backends
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    submission_id: Mapped[int] = mapped_column(sa.ForeignKey("submission.id"), index=True)
    owner: Mapped[str] = mapped_column(sa.String(255))
    job_type: Mapped[str] = mapped_column(sa.String(255))
    dataset_ids: Mapped[list[int]] = mapped_column(sa.JSON, default=list)
    datafile_ids: Mapped[list[int]] = mapped_column(sa.JSON, default=list)
    options: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    # the inputs' names as the catalog showed them to the owner at submission, so that the
    # job list names them without asking the catalog: {"datasets": [[id, name], ...],
    # "datafiles": [[id, name, dataset name], ...]}; None for jobs from before (ids only)
    input_names: Mapped[dict | None] = mapped_column(sa.JSON)
    argv: Mapped[list[str]] = mapped_column(sa.JSON, default=list)
    backend: Mapped[str] = mapped_column(sa.String(64))
    backend_job_id: Mapped[str | None] = mapped_column(sa.String(255))
    status: Mapped[JobStatus] = mapped_column(_status_type, default=JobStatus.SUBMITTING)
    exit_code: Mapped[int | None]
    reason: Mapped[str | None] = mapped_column(sa.Text)
    submitted_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # the ICAT Job that records this job's provenance (the job reports it), if any
    provenance_id: Mapped[int | None] = mapped_column(sa.BigInteger)
    # where it ran, once the backend says: node count, cores allocated, host names
    nodes: Mapped[int | None]
    cores: Mapped[int | None]
    hosts: Mapped[str | None] = mapped_column(sa.String(1024))
    # what the program wrote to JOB_OUTPUT_VARS, captured when it ended (ijpweb.outputs.OutputVars.as_json)
    output_vars: Mapped[dict | None] = mapped_column(sa.JSON)

    submission: Mapped[Submission] = relationship(back_populates="jobs")
    tag_rows: Mapped[list[JobTag]] = relationship(
        cascade="all, delete-orphan", order_by="JobTag.tag", lazy="selectin"
    )

    @property
    def tags(self) -> list[str]:
        return [t.tag for t in self.tag_rows]

    @tags.setter
    def tags(self, names) -> None:
        keep = {t.tag: t for t in self.tag_rows}
        self.tag_rows = [keep.get(n) or JobTag(tag=n, owner=self.owner) for n in sorted(set(names))]

    @property
    def live(self) -> bool:
        return self.status.live

    @property
    def named_datasets(self) -> list[tuple[int, str]]:
        """(id, name) of each input dataset; the name is "" when not recorded (older jobs)."""
        return named_datasets(self.dataset_ids, self.input_names)

    @property
    def named_datafiles(self) -> list[tuple[int, str, str]]:
        """(id, name, dataset name) of each input datafile; "" where not recorded."""
        return named_datafiles(self.datafile_ids, self.input_names)


def named_datasets(dataset_ids, input_names: dict | None) -> list[tuple[int, str]]:
    """(id, name) of each of a job's datasets by its ``input_names`` ("" where none)."""
    names = {int(i): str(n) for i, n, *_ in (input_names or {}).get("datasets", [])}
    return [(i, names.get(i, "")) for i in dataset_ids]


def named_datafiles(datafile_ids, input_names: dict | None) -> list[tuple[int, str, str]]:
    """(id, name, dataset name) of each of a job's datafiles ("" where none)."""
    names = {int(r[0]): (str(r[1]), str(r[2])) for r in (input_names or {}).get("datafiles", [])}
    return [(i, *names.get(i, ("", ""))) for i in datafile_ids]


class JobTag(Base):
    """A user's label on a job (given at submission, editable later); jobs are listed by tag."""

    __tablename__ = "job_tag"
    # the owner's tags, and the owner's jobs with a tag newest first (a keyset on job_id),
    # from the index alone
    __table_args__ = (sa.Index("ix_job_tag_owner_tag_job", "owner", "tag", "job_id"),)

    job_id: Mapped[int] = mapped_column(sa.ForeignKey("job.id", ondelete="CASCADE"), primary_key=True)
    tag: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(sa.String(255))  # the job's, so that lists need no join


MAX_USER_TAGS = 1000  # tags offered in the job list's filter


def _user_tags_select() -> sa.Select:
    owner = sa.bindparam("owner", type_=sa.String)
    tag = JobTag.tag
    first = sa.select(sa.func.min(tag).label("tag")).where(JobTag.owner == owner).cte("tags", recursive=True)
    after = sa.select(sa.func.min(tag)).where(JobTag.owner == owner, tag > first.c.tag).scalar_subquery()
    tags = first.union_all(sa.select(after).where(first.c.tag.is_not(None)))
    return sa.select(tags.c.tag).where(tags.c.tag.is_not(None)).limit(sa.bindparam("most", type_=sa.Integer))


# built once (the owner and the count are parameters): building it took more of each job
# list page's CPU than running it
_USER_TAGS = _user_tags_select()


def user_tags(db, owner: str, most: int = MAX_USER_TAGS) -> list[str]:
    """The tags on the owner's jobs (the first ``most``, in order): one index seek per tag
    (a recursive "next tag after this one"), not a DISTINCT over every tagged job."""
    return list(db.scalars(_USER_TAGS, {"owner": owner, "most": most}))


class WebSession(Base):
    """A browser login. The cookie carries only ``id``; the catalog session id (a
    credential) stays here, server-side."""

    __tablename__ = "web_session"

    id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    user_name: Mapped[str] = mapped_column(sa.String(255), index=True)  # (a user's logins, revoked at once)
    catalog_session: Mapped[str] = mapped_column(sa.String(255))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    selection: Mapped[dict] = mapped_column(sa.JSON, default=dict)
    # web: a browser login (``id`` is in the signed cookie); api: an API token (``id`` is
    # the SHA-256 of the bearer token, which is never stored)
    kind: Mapped[str] = mapped_column(sa.String(8), default="web", server_default="web")
