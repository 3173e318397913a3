"""Every job list reads an index, never the whole job table (issue 12, point 1): the plans
of the statements the code itself builds (ijpweb.jobs.actions for a user's pages,
/api/v1/jobs and the CLI; ijpweb.console for the staff console and /api/v1/admin/jobs), for
every filter combination the faces offer, first, older and newer pages and the bounded
count, read with tests/queryplans.full_scans on this pass's database (SQLite here, and
PostgreSQL in its pass). test_an_index_dropped_is_seen shows the check can fail."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from ijpweb import console
from ijpweb.jobs.actions import NEWER, OLDER, JobQuery, count_select, page_select
from ijpweb.models.meta import Base
from tests.queryplans import full_scans, plan_text, sqlite_plan

SINCE, UNTIL = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC)
DATES = [(None, None), (SINCE, None), (None, UNTIL), (SINCE, UNTIL)]
DIRECTIONS = [(None, None), (OLDER, 1000), (NEWER, 1000)]


def user_queries():
    """Every JobQuery the pages (status, job type, tag) and /api/v1/jobs (also submission,
    since, until) can ask for: each filter absent or present, in every combination."""
    for status, job_type, tag, submission, (since, until) in itertools.product(
        ["", "live", "Failed"], ["", "Date"], ["", "calib"], [None, 7], DATES
    ):
        yield JobQuery("db/bob", status, job_type, tag, submission, since, until)


def console_filters():
    """Every console.JobFilter the console's form and /api/v1/admin/jobs can ask for."""
    for user, status, job_type, backend, (since, until) in itertools.product(
        ["", "db/bob"], ["", "live", "Failed"], ["", "Date"], ["", "local"], DATES
    ):
        yield console.JobFilter(user, status, job_type, backend, since, until)


def _grow(c, jobs: int = 20_000) -> None:
    """Jobs none of which the filters above select (another user, job type and backend,
    ended, submitted a year before SINCE), ANALYZEd: PostgreSQL plans by its statistics,
    which then say that every filter value asked for is rare, as a facility's values are
    among a million jobs, so a list that has an index for its filter must use it. (With the
    rows other tests happened to leave, mostly live jobs, it walked pk_job for status=live:
    a plan of that table's statistics, not of the code.)"""
    from ijpweb.models import Job, Submission
    from ijpweb.states import JobStatus

    sub = c.execute(sa.insert(Submission).values(owner="db/other", job_type="Other", mode="each",
                                                  executable="date")).inserted_primary_key[0]  # fmt: skip
    c.execute(sa.insert(Job), [
        {"submission_id": sub, "owner": f"db/user{i % 100}", "job_type": "Other", "backend": "slurm",
         "status": JobStatus.COMPLETED, "submitted_at": SINCE - timedelta(days=365, minutes=i),
         "dataset_ids": [], "datafile_ids": [], "options": {}, "argv": []}
        for i in range(jobs)
    ])  # fmt: skip
    c.exec_driver_sql("ANALYZE job")


@pytest.fixture
def conn(dbengine):
    """A connection to read plans on; on PostgreSQL with the job table grown by _grow, in a
    transaction rolled back at the end (ANALYZE's statistics with it)."""
    with dbengine.connect() as c:
        if c.dialect.name != "postgresql":
            yield c
            return
        with c.begin() as tx:
            _grow(c)
            yield c
            tx.rollback()


def _sqlite_ordered_walk(conn, statement) -> bool:
    """SQLite's "SCAN job" of a page with no condition that walks the table in the page's
    order and stops at its LIMIT (no sort of everything first): the console's newest page
    of every job, and its count of every job (which stops after paging.COUNT_CAP + 1).
    (PostgreSQL's pass allows the same through ordered_walk.)"""
    plan = sqlite_plan(conn, statement)
    return _limited(statement) and not any("TEMP B-TREE" in line for line in plan)


def _limited(statement) -> bool:
    """A statement with a LIMIT, or a count of a subquery with one (paging.bounded_count_select)."""
    if statement._limit_clause is not None:
        return True
    froms = statement.get_final_froms()
    return len(froms) == 1 and getattr(getattr(froms[0], "element", None), "_limit_clause", None) is not None


def _scans(conn, statement, *, ordered_walk=False):
    found = full_scans(conn, statement, ordered_walk=ordered_walk)
    if ordered_walk and conn.dialect.name == "sqlite" and _sqlite_ordered_walk(conn, statement):
        found = [line for line in found if line.split()[:2] != ["SCAN", "job"]]
    return found


def test_every_page_and_count_of_a_users_jobs_reads_an_index(conn):
    checked = 0
    for q in user_queries():
        for direction, position in DIRECTIONS:
            statement = page_select(q, direction, position, 25)
            assert not _scans(conn, statement), f"{q} {direction}:\n{plan_text(conn, statement)}"
            checked += 1
        statement = count_select(q)
        assert not _scans(conn, statement), f"count of {q}:\n{plan_text(conn, statement)}"
    assert checked == 3 * 2 * 2 * 2 * 4 * 3


def test_every_page_and_count_of_the_consoles_jobs_reads_an_index(conn):
    checked = 0
    for f in console_filters():
        filtered = any([f.user, f.status, f.job_type, f.backend, f.since, f.until])
        for direction, position in DIRECTIONS:
            statement = console.jobs_page_select(f, direction, position, 50)
            # only the newest page of every job, unfiltered, may walk the table (in id order,
            # stopping after the page): any condition must come from an index
            found = _scans(conn, statement, ordered_walk=not filtered and direction is None)
            assert not found, f"{f} {direction} {position}: {found}\n{plan_text(conn, statement)}"
            checked += 1
        # the bounded count: every job's, unfiltered, may walk the table up to the cap (it
        # stops there); with a filter, it reads its index
        statement = console.jobs_count_select(f)
        found = _scans(conn, statement, ordered_walk=not filtered)
        assert not found, f"count of {f}: {found}\n{plan_text(conn, statement)}"
    assert checked == 2 * 3 * 2 * 2 * 4 * 3


@pytest.fixture
def scratch(conn):
    """A connection whose schema a test may change: PostgreSQL's in a savepoint rolled
    back at the end; for SQLite (whose DDL the driver does not put in a transaction) a
    database of its own in memory with the models' schema (test_migrations checks that it
    is the migrated one)."""
    if conn.dialect.name == "sqlite":
        # (no statement cache: a cached EXPLAIN would show the plan from before a DROP INDEX)
        engine = sa.create_engine("sqlite://", connect_args={"cached_statements": 0})
        with engine.connect() as c:
            Base.metadata.create_all(c)
            yield c
        engine.dispose()
        return
    with conn.begin_nested() as savepoint:  # (conn is in _grow's transaction)
        yield conn
        savepoint.rollback()


def test_an_index_dropped_is_seen(scratch):
    """The check fails where the indexes a list needs are missing: a console list by job
    type without the two that lead to job_type; a user's list without those that start
    with the owner."""
    f = console.JobFilter(job_type="Date")
    by_type = console.jobs_page_select(f, None, None, 50)
    mine = page_select(JobQuery("db/bob"), None, None, 25)
    assert not _scans(scratch, by_type) and not _scans(scratch, mine)
    for name in ("ix_job_job_type_id", "ix_job_owner_job_type_id"):
        scratch.execute(sa.text(f"DROP INDEX {name}"))
    assert _scans(scratch, by_type), plan_text(scratch, by_type)
    for name in ("ix_job_owner_id", "ix_job_owner_status_id", "ix_job_owner_submission_id",
                 "ix_job_owner_submitted_at_id"):  # fmt: skip
        scratch.execute(sa.text(f"DROP INDEX {name}"))
    assert _scans(scratch, mine), plan_text(scratch, mine)
