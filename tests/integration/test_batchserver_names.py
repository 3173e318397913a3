"""Fix O (carol's finding 5) through the batch server's "outputs" extension: an output
file whose name is not UTF-8 is counted ("unnamed"), never listed nor zipped, on the
server's side and in the portal's remote backend; a link to another job's output
directory is counted as an other, never followed."""

import os
import time

import pytest

from ijpweb.batch import JobSpec
from ijpweb.states import JobStatus

from .test_batchserver import batch_server, call, login, portal_backend  # noqa: F401

pytestmark = pytest.mark.once

_ids = iter(range(80_000, 90_000))


def _until_ended(remote, job, timeout=30):
    deadline = time.monotonic() + timeout
    while (state := remote.states([job])[job]).status.live:
        assert time.monotonic() < deadline, state
        time.sleep(0.2)
    return state


def test_names_that_are_not_utf8_through_the_batch_server(batch_server, tmp_path_factory):  # noqa: F811
    base, icat, engine = batch_server
    remote = portal_backend(base, icat)
    # (the batch server's test configuration knows bob; his second job stands for carol's)
    other = remote.submit(JobSpec(next(_ids), "db/bob", "scan_summary.py", ("--points", "5")))
    carol = remote.submit(JobSpec(next(_ids), "db/bob", "scan_summary.py", ("--points", "5")))
    for job in (other, carol):
        assert _until_ended(remote, job).status == JobStatus.COMPLETED
    before = remote.output_files(carol)

    # the server's job directories are named by its own job ids; other tests' batch servers
    # (each in a batchserver* directory of the session) have jobs of the same numbers: this
    # server's is the newest of each number
    def output_dir(job: str) -> str:
        found = tmp_path_factory.getbasetemp().glob(f"batchserver*/jobs/{int(job)}/output/report.txt")
        return os.fspath(max(found, key=lambda p: p.stat().st_mtime_ns).parent)

    other_out, carol_out = output_dir(other), output_dir(carol)
    with open(os.path.join(os.fsencode(carol_out), b"caf\xe9.txt"), "wb") as fh:
        fh.write(b"x")
    os.mkdir(os.path.join(os.fsencode(carol_out), b"d\xff"))
    os.symlink(other_out, os.path.join(carol_out, "other"))
    found = remote.output_files(carol)
    assert [f.name for f in found.files] == [f.name for f in before.files]
    assert found.unnamed == 2 and found.others == 1 and found.total == before.total
    zipped = [name for name, opener in remote.output_zip_entries(carol) if opener().close() is None]
    assert zipped == [f.name for f in before.files]
    status, body = call(base, "GET", f"outputs/{carol}", login(engine, "bob"), icat)
    assert status == 200 and body["unnamed"] == 2 and body["others"] == 1
    assert all(f["name"].isprintable() for f in body["files"])
