"""Fix O (carol's finding 4): what the portal reads of a job through paths, a sandboxed
job cannot redirect. Its ``work/`` and ``output/`` are bind mounts: renaming or
replacing them fails (EBUSY), and the job directory above them, with its records
(``stdout``, ``stderr``, ``started.json``, ``exit.json``), is not what the job sees at
that path (bwrap's own directory in the sandbox): whatever it does there never reaches
the portal's disk. Inside ``work/`` and ``output/`` it may make links: the portal
follows none (ijpweb.outputs, tests/functional/test_output_redirects.py)."""

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from ijpweb.batch import BatchError, JobSpec
from ijpweb.batch.local import LocalBackend
from ijpweb.batch.runner import BWRAP, SETPRIV, bwrap_argv, read_json
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
jobdir="$(dirname "$JOB_WORK_DIR")"
try() { if out=$(sh -c "$2" 2>&1); then echo "$1: DONE"; else echo "$1: refused ($out)"; fi; }
echo OUT_MINE=1 > "$JOB_OUTPUT_VARS"
echo mine > "$JOB_OUTPUT_DIR/mine.txt"
try mv-work "mv '$JOB_WORK_DIR' '$jobdir/work.old'"
try mv-output "mv '$JOB_OUTPUT_DIR' '$jobdir/output.old'"
try link-work "ln -sfn '$bob/work' '$JOB_WORK_DIR'; test -L '$JOB_WORK_DIR'"
try link-output "ln -sfn '$bob/output' '$JOB_OUTPUT_DIR'; test -L '$JOB_OUTPUT_DIR'"
# its job directory's records: not there to replace (what it makes there stays in the sandbox)
echo "seen: $(ls -A "$jobdir" | tr '\n' ' ')"
try fake-exit "printf '{\"code\": 0, \"signal\": null, \"at\": \"fake\"}' > '$jobdir/exit.json'"
try link-stdout "ln -sf '$bob/stdout' '$jobdir/stdout'"
echo "my own stdout"
exit 3
"""


def test_a_sandboxed_job_cannot_swap_its_directories_or_records(backend):
    bob = backend.submit(
        JobSpec(1, "db/bob", "/bin/sh", ("-c", 'echo OUT_BOB=secret > "$JOB_OUTPUT_VARS"; echo bob-stdout'))
    )
    assert wait(backend, bob).status == JobStatus.COMPLETED
    bob_dir = backend.root / bob
    carol = backend.submit(JobSpec(2, "db/carol", "/bin/sh", ("-c", CAROL, "job", str(bob_dir))))
    state = wait(backend, carol)
    said = backend.read(carol, "stdout").decode()
    for attempt in ("mv-work", "mv-output", "link-work", "link-output"):
        assert f"{attempt}: refused" in said, said
    # As root the launcher runs the job as nobody, who may not write the directory above
    # them (EACCES); otherwise they are mount points in the job's own namespace (EBUSY,
    # and test_unprivileged_bwrap_cannot_rename_its_mounts below)
    assert ("Permission denied" if os.geteuid() == 0 else "Device or resource busy") in said, said
    assert "seen: output work \n" in said, said  # none of the job directory's records
    d = backend.root / carol
    for sub in ("work", "output"):
        assert (d / sub).is_dir() and not (d / sub).is_symlink()
        assert not (d / f"{sub}.old").exists()
    assert not (d / "stdout").is_symlink() and "my own stdout" in said and "bob-stdout" not in said
    # the end is the launcher's record, not the job's "fake" one
    assert read_json(d / "exit.json")["at"] != "fake" and state.status == JobStatus.FAILED
    assert dict(backend.output_vars(carol).values) == {"OUT_MINE": "1"}
    assert [f.name for f in backend.output_files(carol).files] == ["mine.txt"]


def test_a_sandboxed_jobs_vars_file_made_a_link_is_not_read(backend):
    bob = backend.submit(JobSpec(1, "db/bob", "/bin/sh", ("-c", 'echo OUT_BOB=secret > "$JOB_OUTPUT_VARS"')))
    assert wait(backend, bob).status == JobStatus.COMPLETED
    vars_file = backend.root / bob / "work" / "output-vars"
    carol = backend.submit(
        JobSpec(2, "db/carol", "/bin/sh", ("-c", f'ln -s "{vars_file}" "$JOB_OUTPUT_VARS"'))
    )
    assert wait(backend, carol).status == JobStatus.COMPLETED, backend.read(carol, "stderr")
    assert (backend.root / carol / "work" / "output-vars").is_symlink()
    assert backend.output_vars(carol) is None


@pytest.mark.skipif(os.geteuid() != 0 or not os.access(SETPRIV, os.X_OK), reason="needs root (to be nobody)")
def test_unprivileged_bwrap_cannot_rename_its_mounts():
    """The sandbox as a launcher that is not root sets it up (bwrap in a user namespace,
    the job as the launcher's own account, which owns the directories bwrap makes above
    the mounts): renaming work/ or output/ is EBUSY, and what it makes beside them stays
    in the sandbox."""
    top = Path(tempfile.mkdtemp(prefix="ijp-fixo-"))  # (pytest's tmp_path: not nobody's to search)
    d = top / "jobs" / "5"
    for sub in ("work", "output"):
        (d / sub).mkdir(parents=True)
    for p in (top, top / "jobs", d, d / "work", d / "output"):
        os.chown(p, 65534, 65534)
    # the launcher's own account's sandbox (no "user" to change to: a user namespace)
    argv = bwrap_argv({}, [str(d / "work"), str(d / "output")], str(d / "work"))
    script = f"""mv {d}/work {d}/work.old; mv {d}/output {d}/output.old
ln -s /etc {d}/stdout && printf x > {d}/exit.json && echo made"""
    done = subprocess.run(
        [SETPRIV, "--reuid=65534", "--regid=65534", "--clear-groups", *argv, "/bin/sh", "-c", script],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    try:
        assert done.stderr.count("Device or resource busy") == 2, done.stderr
        assert "made" in done.stdout  # (in the sandbox's own directory, not the job directory)
        assert sorted(os.listdir(d)) == ["output", "work"]
    finally:
        shutil.rmtree(top)
