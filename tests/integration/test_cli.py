"""Issue 5, point 3: the ``ijp`` command, run as a user runs it (the installed console
script, in its own process) against the portal served by waitress on a free port."""

import json
import os
import shutil
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

IJP = shutil.which("ijp", path=str(Path(sys.executable).parent))

pytestmark = [
    pytest.mark.once,  # the portal under test has its own SQLite database
    pytest.mark.skipif(IJP is None, reason="the ijp console script is not installed (pip install -e .)"),
]


@pytest.fixture
def ijp(live_server, tmp_path):
    """Run ``ijp ARGS``: its own config directory, no terminal (a password '-' is read
    from standard input)."""
    url, _engine = live_server
    env = {k: v for k, v in os.environ.items() if not k.startswith("IJP_")}
    env["IJP_CONFIG_DIR"] = str(tmp_path / "cfg")

    def run(*args, stdin="", expect=0, **extra_env):
        proc = subprocess.run(
            [IJP, *args], input=stdin, capture_output=True, text=True, timeout=120,
            env=env | extra_env, start_new_session=True,
        )  # fmt: skip
        assert proc.returncode == expect, (args, proc.returncode, proc.stdout, proc.stderr)
        return proc

    run.url = url
    run.config = tmp_path / "cfg"
    return run


def _json(proc):
    return json.loads(proc.stdout)


def test_a_session_from_login_to_logout(ijp):
    assert (
        ijp("session", expect=2).stderr == "ijp: no portal URL yet: ijp login --url https://your.portal ...\n"
    )
    assert "not logged in" in ijp("session", expect=3, IJP_URL=ijp.url).stderr
    wrong = ijp("login", "--url", ijp.url, "db", "username", "bob", "password", "-", stdin="nope\n", expect=3)
    assert wrong.stderr.count("\n") == 1 and "user name or password is not correct" in wrong.stderr
    out = ijp("login", "db", "username", "bob", "password", "-", stdin="bob-demo\n").stdout
    assert out.startswith(f"Logged in to {ijp.url} as db/bob until ")
    token = ijp.config / "token"
    assert stat.S_IMODE(token.stat().st_mode) == 0o600
    assert "bob-demo" not in token.read_text() and "bob-demo" not in (ijp.config / "config").read_text()
    me = _json(ijp("session", "--json"))
    assert me["user"] == "db/bob" and me["url"] == ijp.url
    ijp("logout")
    assert not token.exists()
    assert "not logged in" in ijp("status", expect=3).stderr
    dead = ijp("login", "db", "username", "bob", "password", "x", expect=6, IJP_URL="http://127.0.0.1:9")
    assert dead.stderr.startswith("ijp: cannot reach the portal at http://127.0.0.1:9: ")


def test_find_submit_follow_tag_resubmit_and_clean_up(ijp):
    ijp("login", "--url", ijp.url, "db", "username", "bob", "password", "-", stdin="bob-demo\n")
    assert "Test Options" in ijp("jobtype").stdout
    jt = _json(ijp("jobtype", "Test Options", "--json"))
    assert "Index" in [o["name"] for o in jt["jobOptions"]]
    assert "--option 'Index': integer" in ijp("jobtype", "Test Options").stdout
    assert ijp("jobtype", "Nope", expect=4).stderr == "ijp: there is no job type called 'Nope'\n"
    copy = ijp("jobtype", "Copy datafile").stdout.splitlines()
    assert copy[1].startswith("  Copies one datafile into one dataset")
    assert copy[2] == "  each job needs exactly 1 dataset and 1 datafile"
    found = _json(ijp("datasets", "--type", "confocal", "--per-page", "2", "--json"))
    ds = [str(d["id"]) for d in found["datasets"]]
    assert len(ds) == 2 and found["total"] > 2
    table = ijp("datasets", "--type", "confocal", "--per-page", "2")
    assert table.stdout.splitlines()[0].split() == ["ID", "NAME", "TYPE", "INVESTIGATION", "FILES"]
    assert table.stderr.startswith(f"{found['total']} dataset(s), page 1.\n")
    again = table.stderr.splitlines()[1]  # how to ask for the next page: the same search's cursor
    assert again.startswith("next page: ijp datasets --type confocal --cursor ")
    second = _json(ijp(*again.removeprefix("next page: ijp ").split(), "--per-page", "2", "--json"))
    assert second["page"] == 2 and not {d["id"] for d in second["datasets"]} & {int(i) for i in ds}
    assert "cursor" in ijp("datasets", "--type", "widefield", "--cursor", found["next"], expect=1).stderr
    files = ijp("datafiles", ds[0], "--per-page", "3", "--all")
    names = [line.split()[1] for line in files.stdout.splitlines() if line and not line.startswith("ID")]
    count = next(d["datafile_count"] for d in found["datasets"] if str(d["id"]) == ds[0])
    assert len(names) == count and files.stderr.startswith(f"{count} datafile(s), page ")
    tifs = _json(ijp("datafiles", ds[0], "--name", ".tif", "--json"))
    assert tifs["datafiles"] and all(f["name"].endswith(".tif") for f in tifs["datafiles"])
    picks = [a for d in ds for a in ("--dataset", d)]

    # refusals: one line, nothing submitted, an exit status by kind
    tag = f"t{uuid.uuid4().hex[:8]}"
    assert "choose --single" in ijp("submit", "Test Options", *picks, expect=2).stderr
    bad = ijp("submit", "Test Options", *picks, "--each", "--option", "Index=99", "--tag", tag, expect=1)
    assert bad.stderr.splitlines()[-1] == "ijp: some option values are not valid (Index: must be at most 10)"
    assert "Colour: no such option" in ijp("submit", "Date", "--option", "Colour=red", expect=1).stderr
    assert "--option 'Index': write NAME=VALUE" in ijp("submit", "Date", "--option", "Index", expect=2).stderr
    assert _json(ijp("status", "--tag", tag, "--json")) == []

    # one job per dataset, tagged; the command waits until both are with the batch system
    sub = ijp("submit", "Test Options", *picks, "--each", "--option", "Index=3", "--option", "Title=a b; $(id)",
              "--tag", tag)  # fmt: skip
    assert "Submitting 2 'Test Options' jobs" in sub.stderr
    assert sub.stdout.startswith("Submitted 2 jobs (submission ")
    ids = sub.stdout.split(":")[1].split()
    for i in ids:
        assert "Completed" in ijp("status", i, "--watch", "--interval", "0.2").stdout
    listed = _json(ijp("status", "--tag", tag, "--json"))
    assert sorted(str(j["id"]) for j in listed) == sorted(ids) and {j["status"] for j in listed} == {
        "Completed"
    }
    detail = ijp("status", ids[0]).stdout
    assert "Exit code:   0" in detail and f"Tags:        {tag}" in detail and "Ran on:" in detail
    out = ijp("output", ids[0]).stdout
    assert "'--index'" in out and "'a b; $(id)'" in out  # the program got it as one argument
    ijp("output", "-e", ids[0])

    # tags: add one, then filter by it
    assert ijp("tag", ids[0], "--add", "best").stdout.split() == sorted([tag, "best"])
    assert [str(j["id"]) for j in _json(ijp("status", "--tag", "best", "--json"))] == [ids[0]]

    # resubmit like the first, with one value changed
    again = ijp("submit", "--like", ids[0], "--option", "Index=4").stdout
    new = _json(ijp("status", again.split(":")[1].split()[0], "--json"))
    old = _json(ijp("status", ids[0], "--json"))
    assert new["dataset_ids"] == old["dataset_ids"] and new["options"] == old["options"] | {"Index": "4"}

    # cancel an ended job: a conflict; delete it: gone
    assert ijp("cancel", ids[0], expect=5).stderr == f"ijp: job {ids[0]} has already ended (Completed)\n"
    ijp("delete", ids[0])
    ijp("status", ids[0], expect=4)


def test_follow_the_output_of_a_running_job_and_watch_a_cancel(ijp):
    ijp("login", "--url", ijp.url, "db", "username", "bob", "password", "-", stdin="bob-demo\n")
    sub = _json(ijp("submit", "Sleepcount", "--option", "Count=5", "--option", "Sleep Time=1", "--json"))
    job = str(sub["jobs"][0]["id"])
    out = ijp("output", job, "--follow", "--interval", "0.2").stdout
    assert [line for line in out.splitlines() if line.startswith("Count ")] == [
        f"Count {n}: sleeping for 1 seconds" for n in range(1, 6)
    ]
    assert out.rstrip().endswith("Finished")
    slow = _json(ijp("submit", "Sleepcount", "--option", "Sleep Time=60", "--json", "--no-wait"))
    slow_id = str(slow["jobs"][0]["id"])
    ijp("cancel", slow_id)
    watched = ijp("status", slow_id, "--watch", "--interval", "0.2", expect=7)
    assert "Cancelled" in watched.stdout


def test_status_follows_every_page_of_a_long_list(ijp, live_server):
    """``ijp status`` lists every job, page after page (200 a page, following each page's
    next cursor): 450 jobs of carol's, each once, newest first."""
    import sqlalchemy as sa

    from ijpweb.models import Job, Submission
    from ijpweb.states import JobStatus

    _url, engine = live_server
    with engine.begin() as c:
        # (the session's portal is shared: earlier tests may have left jobs of carol's, older than these)
        before = c.scalar(sa.select(sa.func.count()).select_from(Job).where(Job.owner == "db/carol"))
        sub = c.execute(
            sa.insert(Submission).values(owner="db/carol", job_type="Date", mode="each")
        ).inserted_primary_key[0]
        c.execute(sa.insert(Job), [{"submission_id": sub, "owner": "db/carol", "job_type": "Date", "backend": "local",
                                     "status": JobStatus.COMPLETED, "dataset_ids": [], "datafile_ids": [], "options": {},
                                     "argv": []} for _ in range(450)])  # fmt: skip
        ids = list(c.scalars(sa.select(Job.id).where(Job.submission_id == sub).order_by(Job.id.desc())))
    try:
        ijp("login", "--url", ijp.url, "db", "username", "carol", "password", "-", stdin="carol-demo\n")
        listed = [j["id"] for j in _json(ijp("status", "--json"))]
        assert listed[:450] == ids and len(listed) == 450 + before
        table = ijp("status").stdout.splitlines()
        assert (
            len(table) == 451 + before
            and table[1].split()[0] == str(ids[0])
            and table[450].split()[0] == str(ids[-1])
        )
    finally:
        with engine.begin() as c:
            c.execute(sa.delete(Job).where(Job.submission_id == sub))
            c.execute(sa.delete(Submission).where(Submission.id == sub))
