"""Issue 13, point 4.1: every job gets its own output and work directories
(JOB_OUTPUT_DIR, JOB_WORK_DIR) and JOB_OUTPUT_VARS, and in its bubblewrap sandbox only
those are writable: carol's job cannot write into bob's output by any path it makes up
(absolute, through '..', through a link it makes), while her own output and variables
are kept."""

import contextlib
import os
import sys
import time
from pathlib import Path

import pytest

from ijpweb.batch import BatchError, JobSpec
from ijpweb.batch.local import LocalBackend
from ijpweb.batch.runner import BWRAP
from ijpweb.states import JobStatus

pytestmark = [
    pytest.mark.once,
    pytest.mark.skipif(not os.access(BWRAP, os.X_OK), reason=f"bubblewrap is not installed ({BWRAP})"),
]


@pytest.fixture
def backend(tmp_path):
    b = LocalBackend("local", tmp_path / "jobs", max_running=2, path=[str(Path(sys.executable).parent)])
    assert b.sandbox["type"] == "bwrap"
    yield b
    for d in b.root.glob("[0-9]*"):
        with contextlib.suppress(BatchError):
            b.cancel(d.name)


def wait(backend, job_id, timeout=60):
    deadline = time.monotonic() + timeout
    while (state := backend.states([job_id])[job_id]).status.live:
        assert time.monotonic() < deadline, state
        time.sleep(0.05)
    return state


CAROL = r"""
bob="$1"
try() { if sh -c "$2" 2>/dev/null; then echo "$1: WROTE"; else echo "$1: refused"; fi; }
try absolute "echo x > '$bob/output/planted.txt'"
try dotdot "echo x > \"\$JOB_OUTPUT_DIR/../../$(basename "$(dirname "$bob")")/$(basename "$bob")/output/planted2.txt\""
ln -s "$bob/output" "$JOB_OUTPUT_DIR/bob" && try link "echo x > '$JOB_OUTPUT_DIR/bob/planted3.txt'"
try jobroot "echo x > '$(dirname "$JOB_OUTPUT_DIR")/planted4.txt'"
echo mine > "$JOB_OUTPUT_DIR/mine.txt"
echo scratch > "$JOB_WORK_DIR/scratch.txt"
echo "OUT_WHERE=$JOB_OUTPUT_DIR" > "$JOB_OUTPUT_VARS"
"""


def test_a_job_writes_only_its_own_output(backend):
    bob = backend.submit(
        JobSpec(1, "db/bob", "/bin/sh", ("-c", 'echo result > "$JOB_OUTPUT_DIR/result.txt"'))
    )
    assert wait(backend, bob).status == JobStatus.COMPLETED
    bob_dir = backend.root / bob
    carol = backend.submit(JobSpec(2, "db/carol", "/bin/sh", ("-c", CAROL, "job", str(bob_dir))))
    assert wait(backend, carol).status == JobStatus.COMPLETED, backend.read(carol, "stderr")
    said = backend.read(carol, "stdout").decode()
    for attempt in ("absolute", "dotdot", "link", "jobroot"):
        assert f"{attempt}: refused" in said, said
    assert sorted(p.name for p in (bob_dir / "output").iterdir()) == ["result.txt"]
    assert not list(backend.root.glob("*/planted4.txt"))
    # carol's own: her file and her variables, listed and read by the portal; the link
    # she made neither listed nor followed
    found = backend.output_files(carol)
    assert [f.name for f in found.files] == ["mine.txt"] and found.others == 1
    with backend.open_output(carol, "mine.txt") as fh:
        assert fh.read() == b"mine\n"
    assert dict(backend.output_vars(carol).values) == {"OUT_WHERE": str(backend.root / carol / "output")}
    assert (backend.root / carol / "work" / "scratch.txt").read_text() == "scratch\n"
