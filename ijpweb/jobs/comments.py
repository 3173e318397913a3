"""Comments on a job (issue 13, point 9): its owner adds, edits and deletes them.

Every face (the job page, /api/v1, the CLI through /api/v1) calls these with a job the
caller owns (found by :func:`ijpweb.jobs.actions.owned_job`); a comment is found only
among that job's own comments, so another job's comment id is simply not found, as
another user's job is. The text is stored as written (line breaks kept, ``\\r\\n`` made
``\\n``) and always shown escaped, never as HTML.

No Pyramid here.
"""

from __future__ import annotations

import re

import sqlalchemy as sa

from ..inputs import MAX_ID, InputError
from ..models import Job, utcnow
from ..models.comments import MAX_COMMENT_LENGTH, MAX_COMMENTS_PER_JOB, JobComment

FIELD = "text"
# NUL cannot be stored (PostgreSQL); a lone surrogate is not Unicode; the other C0
# controls (but tab and line breaks), DEL and the C1 controls are never what a person
# typed (the OpenAPI document's pattern for text says the same)
_NOT_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
# nothing but white space (as JSON Schema's \S sees it: Python's, and the BOM)
_BLANK = re.compile("[\\s\ufeff]*")


class CommentNotFound(LookupError):
    """No such comment on this job (or not a comment id at all)."""


class CommentLimit(Exception):
    """The job holds as many comments as it may."""


def clean_text(raw) -> str:
    """The comment's text as stored, or InputError naming the field ``text``."""
    if not isinstance(raw, str):
        raise InputError(FIELD, "must be text")
    if _BLANK.fullmatch(raw):
        raise InputError(FIELD, "must not be empty")
    if len(raw) > MAX_COMMENT_LENGTH:  # (as sent: the document's maxLength counts the same)
        raise InputError(
            FIELD, f"is {len(raw):,} characters long; a comment may have at most {MAX_COMMENT_LENGTH:,}"
        )
    text = raw.replace("\r\n", "\n").replace("\r", "\n")
    if _NOT_TEXT.search(text):
        raise InputError(FIELD, "must be plain text (no control characters other than tabs and line breaks)")
    return text.strip("\n")


def comment_id(raw) -> int:
    """A comment id from a URL or a body; anything else is no comment (CommentNotFound)."""
    text = str(raw).strip() if isinstance(raw, (str, int)) and not isinstance(raw, bool) else ""
    if not text.isascii() or not text.isdigit() or len(text) > 19:
        raise CommentNotFound()
    value = int(text)
    if not 1 <= value <= MAX_ID:
        raise CommentNotFound()
    return value


def comments_select(job_id: int) -> sa.Select:
    """A job's comments, oldest first (newest last), read through (job_id, id)."""
    return (
        sa.select(JobComment)
        .where(JobComment.job_id == job_id)
        .order_by(JobComment.id)
        .limit(MAX_COMMENTS_PER_JOB)
    )


def list_comments(db, job: Job) -> list[JobComment]:
    return list(db.scalars(comments_select(job.id)))


def count_comments(db, job: Job) -> int:
    return db.scalar(sa.select(sa.func.count()).select_from(JobComment).where(JobComment.job_id == job.id))


def get_comment(db, job: Job, raw_id) -> JobComment:
    """Comment ``raw_id`` of this job; a comment of any other job is not found."""
    found = db.scalar(
        sa.select(JobComment).where(JobComment.id == comment_id(raw_id), JobComment.job_id == job.id)
    )
    if found is None:
        raise CommentNotFound()
    return found


def add_comment(db, job: Job, author: str, raw_text) -> JobComment:
    text = clean_text(raw_text)
    if count_comments(db, job) >= MAX_COMMENTS_PER_JOB:
        raise CommentLimit(f"job {job.id} has {MAX_COMMENTS_PER_JOB:,} comments, as many as a job may have")
    comment = JobComment(job_id=job.id, author=author, body=text, created_at=utcnow())
    db.add(comment)
    db.flush()
    return comment


def edit_comment(db, job: Job, raw_id, raw_text) -> JobComment:
    comment = get_comment(db, job, raw_id)
    text = clean_text(raw_text)
    if text != comment.body:
        comment.body = text
        comment.edited_at = utcnow()
        db.flush()
    return comment


def delete_comment(db, job: Job, raw_id) -> None:
    comment = get_comment(db, job, raw_id)
    db.delete(comment)
    db.flush()
