"""ijpweb.outputs: output variables (parser), safe names, listings and zips of a job's
output directory. A job's program is hostile here: it makes links to /etc/passwd, to
another job's outputs, to the portal's database, FIFOs and odd names."""

import io
import os
import string
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ijpweb import outputs
from ijpweb.catalog.ids import zip_stream
from ijpweb.outputs import (
    MAX_VARS,
    MAX_VARS_BYTES,
    BadName,
    OutputError,
    OutputVars,
    check_name,
    list_outputs,
    open_output,
    parse_vars,
    read_vars,
    zip_entries,
)

# --- output variables ----------------------------------------------------------------------


def test_vars_parsed_in_order_with_bad_lines_counted():
    got = parse_vars(
        b"OUT_ENERGY=12.4 keV\n# a comment\n\nOUT_B=<b>bold</b>\nnot a var\nout_lower=1\n"
        b"OUT_EMPTY=\nOUT_ENERGY=13 keV\r\nOUT_EQ=a=b=c\nOUT-DASH=1\n"
    )
    assert got.values == (
        ("OUT_ENERGY", "13 keV"),
        ("OUT_B", "<b>bold</b>"),
        ("OUT_EMPTY", ""),
        ("OUT_EQ", "a=b=c"),
    )
    assert got.skipped == 3 and got.left_out == 0 and not got.cut


def test_vars_bounded():
    many = "".join(f"OUT_V{i}={i}\n" for i in range(MAX_VARS + 50)).encode()
    got = parse_vars(many)
    assert len(got.values) == MAX_VARS and got.left_out == 50
    huge = b"OUT_A=1\n" + b"OUT_BIG=" + b"x" * (2 * MAX_VARS_BYTES) + b"\n"
    got = parse_vars(huge)
    assert got.cut and got.values == (("OUT_A", "1"),)  # the cut line is left out, not half kept
    assert parse_vars(b"OUT_A=\x00\xff").values == (("OUT_A", "\ufffd\ufffd"),)  # storable anywhere


def test_vars_round_trip_json():
    got = parse_vars(b"OUT_A=1\nOUT_B=2\nbad\n")
    assert OutputVars.from_json(got.as_json()) == got
    assert OutputVars.from_json(None) is None


_name = st.from_regex(r"OUT_[A-Z0-9_]{1,20}", fullmatch=True)
_value = st.text(
    alphabet=st.characters(blacklist_characters="\r\n\x00", blacklist_categories=("Cs",)), max_size=50
)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(_name, _value), max_size=30))
def test_vars_written_are_read_back(pairs):
    text = "".join(f"{n}={v}\n" for n, v in pairs)
    got = parse_vars(text.encode())
    assert dict(got.values) == dict(pairs)
    assert got.skipped == 0
    assert [n for n, _ in got.values] == list(dict.fromkeys(n for n, _ in pairs))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=4000))
def test_any_bytes_parse_without_error(data):
    got = parse_vars(data)
    assert len(got.values) <= MAX_VARS
    for n, v in got.values:
        assert n.startswith("OUT_") and set(n[4:]) <= set(string.ascii_uppercase + string.digits + "_")
        assert "\n" not in v and "\x00" not in v


def test_read_vars_refuses_a_link(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("OUT_STOLEN=yes\n")
    (tmp_path / "vars").symlink_to(secret)
    assert read_vars(tmp_path / "vars") is None
    assert read_vars(tmp_path / "absent") is None
    os.mkfifo(tmp_path / "fifo")
    assert read_vars(tmp_path / "fifo") is None  # and did not hang


# --- names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["", "/etc/passwd", "../x", "a/../../x", "a//b", "./a", "a/.", "a\x00b", "x" * 300, "a/" * 3000 + "b"],
)
def test_bad_names_refused(name):
    with pytest.raises(BadName):
        check_name(name)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_name_is_a_file_below_or_refused(tmp_path_factory, name):
    root = tmp_path_factory.mktemp("out")
    try:
        parts = check_name(name)
    except BadName:
        return
    assert all(p not in ("", ".", "..") for p in parts) and not name.startswith("/")
    with pytest.raises(OutputError):
        open_output(root, name)  # nothing there


@pytest.fixture
def jobs(tmp_path):
    """Two jobs' output directories, carol's (hostile) and bob's, and a database file."""
    bob = tmp_path / "jobs" / "1" / "output"
    carol = tmp_path / "jobs" / "2" / "output"
    for d in (bob, carol):
        d.mkdir(parents=True)
    (bob / "result.txt").write_text("bob's secret result")
    db = tmp_path / "portal.sqlite"
    db.write_bytes(b"SQLite format 3\x00")
    (carol / "ok.txt").write_text("hello")
    (carol / "sub" / "deeper").mkdir(parents=True)
    (carol / "sub" / "deeper" / "data.csv").write_text("a,b\n1,2\n")
    (carol / "passwd").symlink_to("/etc/passwd")
    (carol / "bob").symlink_to(bob)
    (carol / "bobs.txt").symlink_to(bob / "result.txt")
    (carol / "db").symlink_to(db)
    (carol / "sub" / "up").symlink_to("../../../1/output")
    os.mkfifo(carol / "pipe")
    (carol / "<img src=x onerror=alert(1)>.html").write_text("<script>alert(1)</script>")
    (carol / "new\nline.txt").write_text("x")
    return carol, bob


@pytest.mark.parametrize(
    "name", ["passwd", "bob/result.txt", "bobs.txt", "db", "sub/up/result.txt", "pipe", "sub", "sub/deeper"]
)
def test_links_and_special_files_are_never_followed(jobs, name):
    carol, _ = jobs
    with pytest.raises(OutputError) as e:
        open_output(carol, name)
    assert e.value.status == 404


def test_regular_files_open(jobs):
    carol, _ = jobs
    with open_output(carol, "sub/deeper/data.csv") as fh:
        assert fh.read() == b"a,b\n1,2\n"
    with open_output(carol, "new\nline.txt") as fh:
        assert fh.read() == b"x"


def test_the_output_directory_itself_a_link(tmp_path, jobs):
    _, bob = jobs
    (tmp_path / "3").mkdir()
    (tmp_path / "3" / "output").symlink_to(bob)
    with pytest.raises(OutputError):
        open_output(tmp_path / "3" / "output", "result.txt")
    assert list_outputs(tmp_path / "3" / "output").total == 0


def test_listing_shows_regular_files_as_paths(jobs):
    carol, _ = jobs
    found = list_outputs(carol)
    names = [f.name for f in found.files]
    assert set(names) == {
        "<img src=x onerror=alert(1)>.html",
        "new\nline.txt",
        "ok.txt",
        "sub/deeper/data.csv",
    }
    assert found.total == 4 and found.others == 6  # 5 links and a FIFO: neither listed nor served
    assert found.total_size == sum(f.size for f in found.files)


def test_listing_is_bounded(tmp_path):
    for i in range(30):
        (tmp_path / f"f{i:03}").write_text("x")
    found = list_outputs(tmp_path, limit=10)
    assert len(found.files) == 10 and found.total == 30 and found.hidden == 20
    assert [f.name for f in found.files] == [f"f{i:03}" for i in range(10)]
    capped = list_outputs(tmp_path, limit=10, budget=15)
    assert capped.more and capped.total <= 15


def test_zip_of_outputs_leaves_links_out(jobs):
    carol, _ = jobs
    data = b"".join(zip_stream(zip_entries(carol)))
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert sorted(z.namelist()) == sorted(
            ["<img src=x onerror=alert(1)>.html", "new\nline.txt", "ok.txt", "sub/deeper/data.csv"]
        )
        assert z.read("sub/deeper/data.csv") == b"a,b\n1,2\n"
        assert b"bob" not in b"".join(z.read(n) for n in z.namelist())


def test_content_disposition_of_odd_names():
    header = outputs.content_disposition('sub/a "b"\n<script>;.html')
    assert "\n" not in header and header.startswith('attachment; filename="a _b__<script>_.html"')
    assert "filename*=UTF-8''a%20%22b%22%0A%3Cscript%3E%3B.html" in header


def test_job_env_names_the_vars_file(tmp_path):
    from ijpweb.batch import JobSpec
    from ijpweb.batch.jobdirs import job_env

    env = job_env(JobSpec(7, "bob", "date", ()), [], Path("/jobs/7"))
    assert env["JOB_OUTPUT_DIR"] == "/jobs/7/output" and env["JOB_WORK_DIR"] == "/jobs/7/work"
    assert env["JOB_OUTPUT_VARS"] == "/jobs/7/work/output-vars"
