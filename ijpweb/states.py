"""A job's states, without the ORM: the batch seam, the launcher's side and the faces
share them, and ``ijpweb.batch`` loads without SQLAlchemy.

Submitting → Queued → Running → Completed | Failed | Cancelled, plus Held and Unknown
(the backend unreachable or the job not found). The original IJP's status words are
a mapping of these (ijpweb.ijpwords)."""

from __future__ import annotations

import enum


class JobStatus(enum.StrEnum):
    SUBMITTING = "Submitting"
    QUEUED = "Queued"
    RUNNING = "Running"
    HELD = "Held"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    UNKNOWN = "Unknown"

    @property
    def live(self) -> bool:
        return self not in TERMINAL


TERMINAL = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})
LIVE = frozenset(JobStatus) - TERMINAL
