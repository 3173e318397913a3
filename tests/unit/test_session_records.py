"""Issue 14: an interactive job's records, as the backends read them. desktop/state.json and
desktop/ended.json are written inside the sandbox by code running as the job's user: a
forged one (an odd host, another address than the backend's bind, a port out of range, a
huge file, a link, a FIFO, not JSON) never becomes a desktop the portal's proxy would
connect to; the reasons shown are bounded and printable. And what prepare() writes for an
interactive job (desktop.secret 0600, spec.json's desktop), and JobSpec.desktop from a
submission."""

import json
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ijpweb.batch import BatchState, DesktopInfo, JobSpec
from ijpweb.batch import session as supervisor
from ijpweb.batch.jobdirs import (
    DESKTOP_RECORD_BYTES,
    DesktopRecordError,
    desktop_info,
    desktop_state,
    prepare,
    valid_host,
    vnc_password,
)
from ijpweb.batch.runner import desktop_secret
from ijpweb.batch.submitter import job_spec
from ijpweb.models import Job, Submission
from ijpweb.settings import DesktopSettings
from ijpweb.states import JobStatus

RUNNING = BatchState(JobStatus.RUNNING)
GOOD = {"host": "127.0.0.1", "port": 5901, "display": 0, "ready_at": "2026-11-30T18:00:00+00:00",
        "ends_at": "2026-11-30T20:00:00+00:00", "geometry": "1280x800"}  # fmt: skip


def jobdir(tmp_path: Path, **records) -> Path:
    d = tmp_path / "7"
    (d / "desktop").mkdir(parents=True, exist_ok=True)
    for name, value in records.items():
        name = name.replace("_", ".")
        (d / "desktop" / name).write_text(value if isinstance(value, str) else json.dumps(value))
    return d


def test_a_good_record_is_the_desktop(tmp_path):
    state = desktop_state(jobdir(tmp_path, state_json=GOOD), RUNNING, "127.0.0.1")
    assert state.desktop == DesktopInfo(
        "127.0.0.1", 5901, datetime(2026, 11, 30, 18, tzinfo=UTC), datetime(2026, 11, 30, 20, tzinfo=UTC)
    )
    assert state.status == JobStatus.RUNNING and state.reason is None
    # not yet written: running, no desktop yet
    assert desktop_state(jobdir(tmp_path / "x"), RUNNING, "127.0.0.1") == RUNNING


@pytest.mark.parametrize(
    ("record", "why"),
    [
        ({**GOOD, "host": "evil host"}, "host"),
        ({**GOOD, "host": "a" * 256}, "host"),
        ({**GOOD, "host": ""}, "host"),
        ({**GOOD, "host": ["127.0.0.1"]}, "host"),
        ({**GOOD, "host": "10.0.0.5"}, "not 127.0.0.1"),  # not where this backend's servers listen
        ({**GOOD, "host": "localhost"}, "not 127.0.0.1"),
        ({**GOOD, "port": 0}, "port"),
        ({**GOOD, "port": 65536}, "port"),
        ({**GOOD, "port": "5901"}, "port"),
        ({**GOOD, "port": True}, "port"),
        ({**GOOD, "port": 5901.0}, "port"),
        ({**GOOD, "ready_at": "yesterday"}, "ready_at"),
        ({**GOOD, "ends_at": 12}, "ends_at"),
        ([GOOD], "not a JSON object"),
        ("{not json", "not JSON"),
        ("[" * 100000, "larger than any record"),
        (json.dumps({**GOOD, "pad": "x" * DESKTOP_RECORD_BYTES}), "larger than any record"),
    ],
)
def test_a_forged_record_is_no_desktop(tmp_path, record, why):
    state = desktop_state(jobdir(tmp_path, state_json=record), RUNNING, "127.0.0.1")
    assert state.status == JobStatus.RUNNING and state.desktop is None
    assert state.reason.startswith("its desktop's record cannot be used: ") and why in state.reason


def test_a_link_or_fifo_is_not_read(tmp_path):
    secret = tmp_path / "elsewhere.json"
    secret.write_text(json.dumps(GOOD))
    d = jobdir(tmp_path)
    (d / "desktop" / "state.json").symlink_to(secret)
    state = desktop_state(d, RUNNING, "127.0.0.1")
    assert state.desktop is None and "cannot be read" in state.reason
    (d / "desktop" / "state.json").unlink()
    os.mkfifo(d / "desktop" / "state.json")  # would hang a reader that waited for a writer
    state = desktop_state(d, RUNNING, "127.0.0.1")
    assert state.desktop is None and "not a regular file" in state.reason
    # the directory itself replaced by a link (an unsandboxed job can): not followed
    (d / "desktop" / "state.json").unlink()
    (d / "desktop").rmdir()
    other = tmp_path / "other"
    other.mkdir()
    (other / "state.json").write_text(json.dumps(GOOD))
    (d / "desktop").symlink_to(other)
    state = desktop_state(d, RUNNING, "127.0.0.1")
    assert state.desktop is None and "desktop/ cannot be opened" in state.reason


def test_localhost_is_the_loopback_address(tmp_path):
    assert desktop_state(jobdir(tmp_path, state_json=GOOD), RUNNING, "localhost").desktop.host == "127.0.0.1"
    forged = {**GOOD, "host": "10.0.0.5"}
    assert desktop_state(jobdir(tmp_path, state_json=forged), RUNNING, "localhost").desktop is None


def test_a_host_name_bind_accepts_a_host_name(tmp_path):
    record = {**GOOD, "host": "node-3.cluster.example"}
    state = desktop_state(jobdir(tmp_path, state_json=record), RUNNING, "node-3.cluster.example")
    assert state.desktop.host == "node-3.cluster.example"
    # any address where the servers listen on all of them
    assert desktop_state(jobdir(tmp_path, state_json=record), RUNNING, "0.0.0.0").desktop is not None  # noqa: S104


def test_how_a_session_ended(tmp_path):
    completed = BatchState(JobStatus.COMPLETED, 0)
    failed = BatchState(JobStatus.FAILED, 3, "exit code 3")
    d = jobdir(tmp_path, ended_json={"reason": "the program exited (exit code 2)", "at": "x"})
    assert desktop_state(d, failed).reason == "the program exited (exit code 2)"
    assert desktop_state(d, failed).status == JobStatus.COMPLETED  # any exit of the program: a normal end
    # the portal's end.json (End session, idle) comes first
    (d / "end.json").write_text(json.dumps({"reason": "no viewer for 30 minutes", "at": "x"}))
    assert (desktop_state(d, completed).status, desktop_state(d, completed).reason) == (
        JobStatus.COMPLETED, "no viewer for 30 minutes",
    )  # fmt: skip
    # a cancel stays a cancel
    cancelled = BatchState(JobStatus.CANCELLED, None, "cancelled")
    assert desktop_state(d, cancelled) == cancelled
    # never up: failed, with why
    d = jobdir(
        tmp_path / "f", ended_json={"failed": "the VNC server did not answer within 60 s: x11vnc: oops"}
    )
    state = desktop_state(d, failed)
    assert (state.status, state.reason) == (
        JobStatus.FAILED, "the desktop did not start: the VNC server did not answer within 60 s: x11vnc: oops",
    )  # fmt: skip
    (d / "desktop" / "state.json").write_text(json.dumps(GOOD))
    assert desktop_state(d, failed).reason.startswith("the desktop failed: ")
    # no ended.json (the supervisor was killed): the launcher's own record stands
    assert desktop_state(jobdir(tmp_path / "n"), failed) == failed


def test_a_reason_is_bounded_and_printable(tmp_path):
    failed = BatchState(JobStatus.FAILED, 3)
    d = jobdir(tmp_path, ended_json={"reason": "bye\x1b[31m\nred\u202e" + "x" * 2000})
    reason = desktop_state(d, failed).reason
    assert len(reason) <= 300 and reason.isprintable() and reason.startswith("bye")
    for odd in ({"reason": 5}, {"reason": ""}, {}, {"failed": ["x"]}):
        d = jobdir(tmp_path / str(len(str(odd))), ended_json=odd)
        assert desktop_state(d, failed) == failed


@given(st.dictionaries(st.sampled_from(["host", "port", "ready_at", "ends_at", "x"]),
                       st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=300),
                                 st.lists(st.integers(), max_size=3))))  # fmt: skip
@settings(max_examples=300)
def test_desktop_info_takes_a_good_record_or_says_why(record):
    try:
        info = desktop_info(record, "127.0.0.1")
    except DesktopRecordError:
        return
    assert info.host == "127.0.0.1" and type(info.port) is int and 0 < info.port < 65536


@given(st.text(max_size=300))
def test_valid_host_is_an_address_or_a_host_name(text):
    if valid_host(text):
        assert 0 < len(text) <= 255 and text.isascii()
        assert not any(c in text for c in " /\\@?#\0\n")


def test_a_vnc_password_is_fresh_and_fits_des():
    passwords = {vnc_password() for _ in range(200)}
    assert len(passwords) == 200
    assert all(len(p) == 8 and p.isascii() and p.isalnum() for p in passwords)


def spec(job_id, interactive=True, desktop=None):
    return JobSpec(job_id, "db/bob", "/bin/true", (), {"IJP_SESSION_ID": "s-1"}, interactive=interactive,
                   desktop=desktop)  # fmt: skip


def test_prepare_writes_the_desktop_records_of_an_interactive_job_only(tmp_path):
    d, _ = prepare(tmp_path, spec(1, desktop={"time_limit": 7200, "geometry": "1024x768", "ready_timeout": 30}),
                   [], False, desktop_bind="10.1.2.3")  # fmt: skip
    assert stat.S_IMODE((d / "desktop.secret").stat().st_mode) == 0o600
    assert stat.S_IMODE((d / "desktop").stat().st_mode) == 0o700
    password = json.loads((d / "desktop.secret").read_text())["password"]
    assert desktop_secret(d) == password
    record = json.loads((d / "spec.json").read_text())
    assert record["desktop"] == {
        "time_limit": 7200,
        "geometry": "1024x768",
        "ready_timeout": 30,
        "bind": "10.1.2.3",
    }
    assert password not in (d / "spec.json").read_text()
    # without a desktop of its own: the defaults
    d2, _ = prepare(tmp_path, spec(2), [], False)
    assert json.loads((d2 / "spec.json").read_text())["desktop"] == {
        "time_limit": 8 * 3600, "geometry": "1280x800", "ready_timeout": 60, "bind": "127.0.0.1",
    }  # fmt: skip
    assert desktop_secret(d2) != password
    # a batch job: none of it
    d3, _ = prepare(tmp_path, spec(3, interactive=False), [], False)
    assert "desktop" not in json.loads((d3 / "spec.json").read_text())
    assert not (d3 / "desktop.secret").exists() and not (d3 / "desktop").exists()
    assert desktop_secret(d3) == ""
    # a secret that is not one: none
    (d3 / "desktop.secret").write_text(json.dumps({"password": "a b;c\n"}))
    assert desktop_secret(d3) == ""


def test_job_spec_builds_the_desktop_from_the_submission():
    def job(resources, interactive=True):
        sub = Submission(executable="/bin/true", interactive=interactive, family=None, resources=resources,
                         catalog_session="s-1")  # fmt: skip
        return Job(id=5, owner="db/bob", argv=[], submission=sub)

    limits = DesktopSettings(time_limit=3600, ready_seconds=45)
    assert job_spec(job({"time": "2:00:00", "geometry": "1600x900"}), limits).desktop == {
        "time_limit": 7200, "geometry": "1600x900", "ready_timeout": 45,
    }  # fmt: skip
    assert job_spec(job({"geometry": "99999x3"}), limits).desktop == {
        "time_limit": 3600, "geometry": "3840x480", "ready_timeout": 45,
    }  # fmt: skip
    assert job_spec(job({})).desktop == {"time_limit": 8 * 3600, "geometry": "1280x800", "ready_timeout": 60}
    assert job_spec(job({}, interactive=False), limits).desktop is None


def test_the_supervisors_arguments():
    opts, command = supervisor.parse(
        [
            "--dir",
            "/j/desktop",
            "--geometry",
            "800x600",
            "--time-limit",
            "60",
            "--ready-timeout",
            "30",
            "--bind",
            "127.0.0.1",
            "--",
            "/bin/sh",
            "-c",
            "x",
            "--dir",
        ]  # fmt: skip
    )
    assert opts == {"dir": "/j/desktop", "geometry": "800x600", "time_limit": "60", "ready_timeout": "30",
                    "bind": "127.0.0.1"}  # fmt: skip
    assert command == ["/bin/sh", "-c", "x", "--dir"]  # after --: the program's, untouched
    for bad in (["--dir", "d", "/bin/sh"], ["--dir", "d", "--"], ["--what", "x", "--", "p"],
                ["--dir", "d", "--geometry", "big", "--time-limit", "1", "--ready-timeout", "1", "--bind", "a",
                 "--", "p"]):  # fmt: skip
        with pytest.raises(ValueError):
            supervisor.parse(bad)


def test_the_x_cookie_entry():
    cookie = bytes(range(16))
    entry = supervisor.xauth_entry(cookie)
    # FamilyWild, no address, no display number: any display of this session's server
    assert entry == b"\xff\xff\x00\x00\x00\x00\x00\x12MIT-MAGIC-COOKIE-1\x00\x10" + cookie
    assert supervisor.hms(7200) == "2:00:00" and supervisor.hms(3 * 3600 + 61) == "3:01:01"
