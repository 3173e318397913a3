"""A lost lead is fenced (issue 11, part X round 2, finding R2-4): the scheduler checks the
lead once, before a run; a leader whose lock connection drops in the middle of a run must
not see a new leader run the same task beside it. Each led run's transaction takes the
task's fence (pg_try_advisory_xact_lock in a key space of its own) and skips when it is
held. Real PostgreSQL (tests/run.sh's second run); on SQLite nothing changes."""

import threading
import time

import pytest
import sqlalchemy as sa

from ijpweb.leaders import Leaders, claim_class, fence_keys, lock_key
from ijpweb.scheduler import LED, Scheduler


def _rival(scheduler, engine):
    """Another portal process's scheduler on the same database (its own lock connection)."""
    s = scheduler
    return Scheduler(s.session_factory, s.backends, s.catalog_for, s.settings, engine)


def _terminate(engine, name):
    with engine.connect() as c:
        c.execute(
            sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :n"),
            {"n": name[:63]},
        )


@pytest.mark.postgresql
def test_a_task_running_when_its_lead_is_lost_does_not_run_beside_the_new_leaders(app, dbengine):
    """The tester's reproduction: inside a running harvest the lead's connection is
    terminated, and another process takes the lead; its harvest is skipped while the first
    one's transaction lasts, and runs once it has ended."""
    scheduler = app.registry["ijp.scheduler"]
    rival = _rival(scheduler, dbengine)
    assert isinstance(rival.leaders, Leaders)
    seen = {"rival_led": False, "rival_ran_during": [], "first_ran": False}

    def long_harvest(db):
        db.execute(sa.text("SELECT 1"))  # the task's transaction, open
        seen["first_ran"] = True
        _terminate(dbengine, scheduler.leaders.name)  # the lead's connection drops
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not seen["rival_led"]:
            seen["rival_led"] = rival.leaders.campaign()["harvest"]
            time.sleep(0.05)
        # the new leader's run, while this one still runs: skipped, its work never called
        for _ in range(3):
            got = rival.run("harvest", lambda db: seen["rival_ran_during"].append("ran") or 1)
            assert got is None
        return 1

    try:
        scheduler.leaders.close()
        scheduler.campaign()
        assert scheduler.leaders.holds("harvest")
        assert scheduler.run("harvest", long_harvest) == 1
        assert seen["first_ran"]
        assert seen["rival_led"], "the rival never took the lead: the reproduction did not happen"
        assert seen["rival_ran_during"] == [], "the new leader's harvest ran beside the old one's"
        # the old run's transaction has ended: the new leader runs the task now
        assert rival.run("harvest", lambda db: "after") == "after"
        # and the old leader knows it lost the lead
        assert not scheduler.leaders.campaign()["harvest"]
    finally:
        rival.leaders.close()
        scheduler.leaders.close()


@pytest.mark.postgresql
def test_two_processes_run_a_led_task_one_at_a_time_in_threads(app, dbengine):
    """Without any lost lead: a run holding the fence makes a concurrent run of the same
    task (another scheduler on its own connection) skip, and leaves other tasks alone."""
    scheduler = app.registry["ijp.scheduler"]
    other = _rival(scheduler, dbengine)
    # both "lead" as two processes do in the moment a lead changes hands
    for s in (scheduler, other):
        s.leaders._held.update(LED)
    inside, release = threading.Event(), threading.Event()
    results = {}

    def slow(db):
        inside.set()
        release.wait(10)
        return "first"

    t = threading.Thread(target=lambda: results.setdefault("first", scheduler.run("purge", slow)))
    t.start()
    try:
        assert inside.wait(10)
        assert other.run("purge", lambda db: "second") is None
        assert other.run("keepalive", lambda db: "keepalive") == "keepalive"  # another task's fence
    finally:
        release.set()
        t.join(10)
        other.leaders.close()
        scheduler.leaders.close()
    assert results["first"] == "first"


@pytest.mark.sqlite
def test_a_led_task_runs_on_sqlite_as_before(app, dbengine):
    scheduler = app.registry["ijp.scheduler"]
    assert scheduler.run("harvest", lambda db: "ran") == "ran"


def test_the_fence_keys_are_a_key_space_of_their_own():
    """Not the leaders' 64-bit session locks (the leader holds its task's while the task
    runs), not the jobs' claims (class, job id), one per task and namespace."""
    keys = {t: fence_keys("ijpweb", t) for t in LED}
    assert len(set(keys.values())) == len(LED)
    classes = {cls for cls, _ in keys.values()}
    assert len(classes) == 1 and classes != {claim_class("ijpweb")}
    assert all(-(2**31) <= k < 2**31 for pair in keys.values() for k in pair)
    assert fence_keys("other", "harvest") != keys["harvest"]
    assert lock_key("ijpweb", "harvest") not in keys["harvest"]
