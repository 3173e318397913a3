"""What the dashboard shows a user (issue 13, point 2): their jobs counted by status, the
live ones, their recent submissions with how far each has got, and recent failures.

Every statement is bounded and read from an index that starts with the owner: a user with
a million jobs costs what one with ten thousand costs. The counts by status are one
statement that counts each status in (owner, status, id) up to paging.COUNT_CAP (10,000:
"10,000+"), reading at most that many index entries per status and no row of the table
(an unbounded GROUP BY read all 900,000 of a user's entries, 180 ms on SQLite: bench/
bench_dashboard.py). tests/functional/test_dashboard.py checks their plans. No Pyramid here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from ..models import Job, Submission
from ..paging import COUNT_CAP, Count, counted
from ..states import LIVE, JobStatus
from .desktops import desktop_states

LIVE_SHOWN = 10  # live jobs listed
SUBMISSIONS_SHOWN = 5  # recent submissions with their meters
FAILURES_SHOWN = 5  # recent failures
# the order statuses are shown in (live first, then how they ended)
ORDER = [
    JobStatus.RUNNING,
    JobStatus.QUEUED,
    JobStatus.SUBMITTING,
    JobStatus.HELD,
    JobStatus.UNKNOWN,
    JobStatus.COMPLETED,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
]


@dataclass
class SubmissionSummary:
    id: int
    job_type: str
    created_at: object
    total: int = 0
    done: int = 0  # Completed
    failed: int = 0  # Failed or Cancelled
    live: int = 0


@dataclass
class Dashboard:
    counts: dict[JobStatus, Count] = field(default_factory=dict)  # the statuses there are jobs in
    live: list[Job] = field(default_factory=list)
    submissions: list[SubmissionSummary] = field(default_factory=list)
    failures: list[Job] = field(default_factory=list)
    # the live interactive jobs' desktops among ``live``: starting, ready or ending, by job id
    desktops: dict[int, str] = field(default_factory=dict)

    @property
    def total(self) -> Count:
        return Count(sum(c.value for c in self.counts.values()), all(c.exact for c in self.counts.values()))

    @property
    def live_count(self) -> Count:
        live = [c for s, c in self.counts.items() if s in LIVE]
        return Count(sum(c.value for c in live), all(c.exact for c in live))

    @property
    def any_live(self) -> bool:
        return self.live_count.value > 0


def counts_select(owner: str, cap: int = COUNT_CAP) -> sa.Select:
    """The owner's jobs in each status, each counted up to ``cap`` + 1: one statement of
    a bounded count per status (a column each, in ORDER's order), each a range of
    (owner, status, id) that stops after ``cap`` + 1 entries."""

    def bounded(status: JobStatus):
        some = sa.select(Job.id).where(Job.owner == owner, Job.status == status).limit(cap + 1).subquery()
        return sa.select(sa.func.count()).select_from(some).scalar_subquery()

    return sa.select(*(bounded(s).label(f"n{i}") for i, s in enumerate(ORDER)))


def status_select(owner: str, status: JobStatus, limit: int) -> sa.Select:
    """The owner's newest jobs in one status, newest first: a range of (owner, status, id)
    read backwards, stopping after ``limit``."""
    return sa.select(Job).where(Job.owner == owner, Job.status == status).order_by(Job.id.desc()).limit(limit)


def recent_submissions_select(owner: str, limit: int = SUBMISSIONS_SHOWN) -> sa.Select:
    """The owner's newest submissions (that still have jobs), from (owner, submission_id,
    id) read backwards: no statement over the submission table's other owners."""
    return (
        sa.select(Job.submission_id)
        .where(Job.owner == owner)
        .group_by(Job.submission_id)
        .order_by(Job.submission_id.desc())
        .limit(limit)
    )


def submission_counts_select(owner: str, ids: list[int]) -> sa.Select:
    """How many of each of these submissions' jobs are in each status."""
    return (
        sa.select(Job.submission_id, Job.status, sa.func.count())
        .where(Job.owner == owner, Job.submission_id.in_(ids))
        .group_by(Job.submission_id, Job.status)
    )


def statements(owner: str) -> list[sa.Select]:
    """Every statement the dashboard may run, for the query-plan test."""
    return [
        counts_select(owner),
        *(status_select(owner, s, LIVE_SHOWN) for s in JobStatus),
        recent_submissions_select(owner),
        submission_counts_select(owner, [1, 2, 3]),
        sa.select(Submission).where(Submission.id.in_([1, 2, 3]), Submission.owner == owner),
    ]


def dashboard(db, owner: str) -> Dashboard:
    d = Dashboard()
    for status, n in zip(ORDER, db.execute(counts_select(owner)).one(), strict=True):
        if n:
            d.counts[status] = counted(n)
    # the newest live jobs: the newest few of each live status there are any of, merged
    live: list[Job] = []
    for status in ORDER:
        if status in LIVE and status in d.counts:
            live.extend(db.scalars(status_select(owner, status, LIVE_SHOWN)))
    d.live = sorted(live, key=lambda j: j.id, reverse=True)[:LIVE_SHOWN]
    if d.live:
        d.desktops = desktop_states(db, d.live)
    if JobStatus.FAILED in d.counts:
        d.failures = list(db.scalars(status_select(owner, JobStatus.FAILED, FAILURES_SHOWN)))
    ids = list(db.scalars(recent_submissions_select(owner)))
    if ids:
        subs = {
            s.id: s
            for s in db.scalars(
                sa.select(Submission).where(Submission.id.in_(ids), Submission.owner == owner)
            )
        }
        summaries = {i: SubmissionSummary(i, subs[i].job_type, subs[i].created_at) for i in ids if i in subs}
        for sub_id, status, n in db.execute(submission_counts_select(owner, ids)).all():
            s = summaries.get(sub_id)
            if s is None:
                continue
            status = JobStatus(status)
            s.total += n
            if status == JobStatus.COMPLETED:
                s.done += n
            elif status.live:
                s.live += n
            else:
                s.failed += n
        d.submissions = [summaries[i] for i in ids if i in summaries]
    return d
