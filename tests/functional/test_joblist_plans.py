"""The job list's new statements read indexes, never the whole job table (issue 13,
point 3, with issue 12's rule): the counts of the page's submissions for their groups
(through (submission_id, status), the submissions' owner by their key), the bulk actions' ownership check (by primary key
with the owner in the same WHERE) and each keyset page of an export, on this pass's
database (SQLite here, PostgreSQL in its pass: the job table grown as in
test_query_plans_jobs). test_the_check_fails_without_the_indexes shows it can fail."""

from __future__ import annotations

import sqlalchemy as sa

from ijpweb.jobs.actions import EXPORT_PAGE, OLDER, JobQuery, page_select, submission_counts_select
from ijpweb.models import Job
from ijpweb.models.meta import Base
from tests.queryplans import full_scans, plan_text

from .test_query_plans_jobs import DATES, conn  # noqa: F401 - the fixture


def _owned_select(ids):
    # ijpweb.jobs.actions.owned_jobs's statement
    return sa.select(Job).where(Job.owner == "db/bob", Job.id.in_(ids))


def test_groups_bulk_and_export_pages_read_indexes(conn):  # noqa: F811
    statements = [submission_counts_select("db/bob", [7, 8, 9]), _owned_select(list(range(1, 201)))]
    for since, until in DATES:  # an export's pages after the first (page_select, as export_pages)
        for status, tag, submission in (
            ("", "", None),
            ("Failed", "", None),
            ("", "calib", None),
            ("", "", 7),
        ):
            q = JobQuery("db/bob", status=status, tag=tag, submission=submission, since=since, until=until)
            statements.append(page_select(q, OLDER, 5000, EXPORT_PAGE))
    for statement in statements:
        assert not full_scans(conn, statement), plan_text(conn, statement)


def test_the_check_fails_without_the_indexes():
    engine = sa.create_engine("sqlite://", connect_args={"cached_statements": 0})
    with engine.connect() as c:
        Base.metadata.create_all(c)
        counts = submission_counts_select("db/bob", [7, 8, 9])
        assert not full_scans(c, counts)
        for index in Job.__table__.indexes:  # every index that could find a submission's jobs
            if index.columns.keys()[0] == "submission_id":
                c.execute(sa.text(f"DROP INDEX {index.name}"))
        assert full_scans(c, counts), plan_text(c, counts)
    engine.dispose()
