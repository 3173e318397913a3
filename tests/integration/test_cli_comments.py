"""Issue 13, point 9 in the CLI: ``ijp comment`` and ``ijp comments``, run as a user runs
them (the installed console script, its own process) against the portal on waitress;
carol's attempts on bob's job are refused as "not found", with the CLI's exit status 4."""

import json

from .test_cli import ijp  # noqa: F401  (the fixture: run the ijp command)


def _login(ijp, user):  # noqa: F811
    ijp("login", "--url", ijp.url, "db", "username", user, "password", "-", stdin=f"{user}-demo\n")


def test_comment_list_edit_delete(ijp):  # noqa: F811
    _login(ijp, "bob")
    sub = ijp("submit", "Date")
    job = sub.stdout.split(":")[1].split()[0]
    assert ijp("comments", job).stdout == f"Job {job} has no comments.\n"
    added = ijp("comment", job, "first run\nwith the new calibration").stdout
    assert added.startswith("Comment ") and added.endswith(f" on job {job} added.\n")
    cid = added.split()[1]
    from_stdin = json.loads(ijp("comment", job, "-", "--json", stdin="<b>from a file</b>\n").stdout)
    assert from_stdin["text"] == "<b>from a file</b>" and from_stdin["author"] == "db/bob"
    shown = ijp("comments", job).stdout.splitlines()
    assert shown[0].startswith(f"#{cid} db/bob 20") and shown[1:3] == [
        "    first run",
        "    with the new calibration",
    ]
    assert (
        ijp("comment", job, "--edit", cid, "second thoughts").stdout
        == f"Comment {cid} on job {job} changed.\n"
    )
    listed = json.loads(ijp("comments", job, "--json").stdout)["comments"]
    assert [c["text"] for c in listed] == ["second thoughts", "<b>from a file</b>"] and listed[0]["edited"]
    assert ", edited 20" in ijp("comments", job).stdout
    too_long = ijp("comment", job, "x" * 10_001, expect=1)
    assert "10,000" in too_long.stderr and too_long.stderr.startswith("ijp: ")
    assert (
        "give --edit or --delete" in ijp("comment", job, "--edit", cid, "--delete", cid, "x", expect=2).stderr
    )
    assert ijp("comment", job, "--delete", cid).stdout == f"Comment {cid} on job {job} deleted.\n"
    ijp("comment", job, "--delete", cid, expect=4)  # gone
    # carol: bob's job and bob's comment are not found, whatever she tries
    other = str(from_stdin["id"])
    _login(ijp, "carol")
    for args in (("comments", job), ("comment", job, "mine"), ("comment", job, "--edit", other, "mine"),
                 ("comment", job, "--delete", other)):  # fmt: skip
        refused = ijp(*args, expect=4)
        assert "from a file" not in refused.stdout + refused.stderr
    _login(ijp, "bob")
    assert [c["text"] for c in json.loads(ijp("comments", job, "--json").stdout)["comments"]] == [
        "<b>from a file</b>"
    ]
