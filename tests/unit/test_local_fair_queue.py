"""The local backend's queue is fair among owners (issue 12, carol's finding), with real
launchers and processes: a free slot goes to the owner with the fewest jobs running, then
to the one served least recently, and to that owner's oldest job. One FIFO for everyone
let carol's thousand queued jobs all start before bob's one."""

import json
import os
import sys
from datetime import datetime

from ijpweb.batch import JobSpec
from ijpweb.batch.local import owner_key
from ijpweb.batch.runner import QUEUE, STARTED, dispatch, queued
from ijpweb.states import JobStatus

from .test_local_backend import _until, wait

GATED = "while [ ! -e gate ]; do sleep 0.05; done"


def job(job_id, owner, script):
    return JobSpec(job_id, owner, "/bin/sh", ("-c", script), {})


def _started(b, ids):
    return [i for i in ids if (b.root / str(i) / "started.json").exists()]


def _start_order(b, ids):
    at = {
        i: datetime.fromisoformat(json.loads((b.root / str(i) / "started.json").read_text())["at"])
        for i in ids
    }
    return sorted(ids, key=at.__getitem__)


def test_carols_full_queue_does_not_hold_back_bobs_job(local):
    """max_running 1: carol holds the slot and has queued three more; bob queues one.
    When carol's running job ends, the slot goes to bob (none running, never served),
    not to carol's next job."""
    b = local(max_running=1)
    b.submit(job(1, "db/carol", GATED))
    for i in (2, 3, 4):
        b.submit(job(i, "db/carol", GATED))
    b.submit(job(5, "db/bob", GATED))  # (gated: it holds the slot while the test looks)
    wait(b, "1", {JobStatus.RUNNING})
    (b.root / "1" / "work" / "gate").touch()
    wait(b, "1", {JobStatus.COMPLETED})
    _until(lambda: _started(b, (2, 3, 4, 5)), timeout=20)
    assert _started(b, (2, 3, 4, 5)) == [5], "after carol's first job the slot went to carol's next job"
    (b.root / "5" / "work" / "gate").touch()
    assert wait(b, "5", {JobStatus.COMPLETED}).exit_code == 0
    _until(lambda: _started(b, (2, 3, 4)) == [2], timeout=20)  # then carol's, oldest first


def test_owners_take_turns(local):
    """Three owners, one slot: after carol's running job, bob's and dave's (never served;
    the older job first), then round and round, each owner's jobs oldest first. The queue
    drains by itself (each launcher starts the next)."""
    b = local(max_running=1)
    b.submit(job(1, "db/carol", GATED))
    wait(b, "1", {JobStatus.RUNNING})
    owners = {2: "db/carol", 3: "db/carol", 4: "db/carol", 5: "db/bob", 6: "db/bob", 7: "db/dave"}
    for i, owner in owners.items():
        b.submit(job(i, owner, "true"))
    (b.root / "1" / "work" / "gate").touch()
    ids = [1, *owners]
    _until(lambda: all((b.root / str(i) / "exit.json").exists() for i in ids), timeout=60)
    assert _start_order(b, ids) == [1, 5, 7, 2, 6, 3, 4]


def test_fewest_running_first(local):
    """max_running 3: carol runs two, bob one; when bob's ends, his next job (bob: 0 running)
    starts before carol's older waiting one (carol: 2 running)."""
    b = local(max_running=3)
    b.submit(job(1, "db/carol", GATED))
    b.submit(job(2, "db/carol", GATED))
    b.submit(job(3, "db/bob", GATED))
    for i in (1, 2, 3):
        wait(b, str(i), {JobStatus.RUNNING})
    b.submit(job(4, "db/carol", "true"))
    b.submit(job(5, "db/bob", "true"))
    (b.root / "3" / "work" / "gate").touch()
    wait(b, "3", {JobStatus.COMPLETED})
    _until(lambda: all((b.root / str(i) / "exit.json").exists() for i in (4, 5)), timeout=20)
    assert _start_order(b, [4, 5]) == [5, 4]
    # and carol's waited for the slot bob's left (three ran all along)
    ended = datetime.fromisoformat(json.loads((b.root / "5" / "exit.json").read_text())["at"])
    assert datetime.fromisoformat(json.loads((b.root / "4" / "started.json").read_text())["at"]) >= ended


def test_the_queue_markers_name_the_owner_and_a_cancel_removes_its_own(local):
    b = local(max_running=1)
    b.submit(job(1, "db/carol", GATED))
    b.submit(job(2, "db/carol", "true"))
    b.submit(job(3, "db/bob", "true"))
    key = {"db/carol": owner_key("db/carol"), "db/bob": owner_key("db/bob")}
    assert key["db/carol"] != key["db/bob"] and key["db/bob"].isalnum()
    assert sorted(os.listdir(b.root / QUEUE)) == [f"2.{key['db/carol']}", f"3.{key['db/bob']}"]
    assert (b.root / STARTED / "1").read_text() == key["db/carol"]  # a running job's owner
    assert b.estimate(job(4, "db/dave", "true")) == 3.0
    b.cancel("2")
    assert os.listdir(b.root / QUEUE) == [f"3.{key['db/bob']}"]
    assert b.states(["2"])["2"].status == JobStatus.CANCELLED


def test_an_older_versions_markers_still_work(local):
    """Markers without an owner (queue/<id>, an empty running/<id>) are one owner of their
    own: they count against max_running and their jobs start."""
    b = local(max_running=1)
    b.submit(job(1, "db/carol", GATED))
    b.submit(job(2, "db/carol", "echo two"))
    wait(b, "1", {JobStatus.RUNNING})
    (b.root / STARTED / "1").write_text("")  # as an older version wrote it
    (marker,) = os.listdir(b.root / QUEUE)
    os.rename(b.root / QUEUE / marker, b.root / QUEUE / "2")
    assert queued(b.root / QUEUE) == [("2", "", "2")]
    assert dispatch(b.root, 1, sys.executable) == []  # the old running marker holds the slot
    assert b.states(["2"])["2"].status == JobStatus.QUEUED
    (b.root / "1" / "work" / "gate").touch()
    assert wait(b, "2", {JobStatus.COMPLETED}).exit_code == 0
    assert b.read("2", "stdout") == b"two\n"
    assert os.listdir(b.root / QUEUE) == []


def test_odd_queue_entries_are_passed_over(local):
    """Names in queue/ that are not markers (not a job id, an owner key that is not one)
    stop nothing: the claim passes over them."""
    b = local(max_running=1)
    for odd in ("²", "12345678901234567890123", "x.y", "9.not-a-key", ".tmp"):
        (b.root / QUEUE / odd).touch()
    b.submit(job(1, "db/bob", "true"))
    assert wait(b, "1", {JobStatus.COMPLETED}).exit_code == 0
