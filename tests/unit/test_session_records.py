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
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ijpweb.batch import BatchState, DesktopInfo, JobSpec
from ijpweb.batch import session as supervisor
from ijpweb.batch.jobdirs import (
    DESKTOP_RECORD_BYTES,
    DesktopRecordError,
    Place,
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
        ({**GOOD, "port": 5432 - 5000}, "port"),
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
    assert state.desktop is None and "json cannot be read (Not a directory)" in state.reason


def test_localhost_is_the_loopback_address(tmp_path):
    assert desktop_state(jobdir(tmp_path, state_json=GOOD), RUNNING, "localhost").desktop.host == "127.0.0.1"
    forged = {**GOOD, "host": "10.0.0.5"}
    assert desktop_state(jobdir(tmp_path, state_json=forged), RUNNING, "localhost").desktop is None


# carol's F5 (/work/notes/i14/carol/test_carol_ssrf.py): with a host name or 0.0.0.0 as the
# bind, the job's own state.json chose where the portal's proxy connects (the portal host's
# PostgreSQL on its loopback, any internal address). Now the portal decides.
FORGED = [
    {"host": "127.0.0.1", "port": 5432},  # the portal host's PostgreSQL, seen from the proxy
    {"host": "192.0.2.10", "port": 2222},  # anywhere else (TEST-NET-1)
    {"host": "db.internal.example", "port": 5432},
]


@pytest.mark.parametrize("bind", ["localhost", "node.cluster.example", "0.0.0.0", "::"])  # noqa: S104
@pytest.mark.parametrize("record", FORGED, ids=lambda r: f"{r['host']}:{r['port']}")
def test_a_forged_state_json_cannot_send_the_proxy_elsewhere(tmp_path, bind, record):
    forged = {**GOOD, **record}
    if bind == "localhost" and record["host"] == "127.0.0.1":
        # what 'localhost' resolves to: the bind's one address, so taken (the proxy and the
        # job are on one host, which the job's network reaches anyway)
        assert desktop_info(forged, bind).host == "127.0.0.1"
        return
    with pytest.raises(DesktopRecordError, match="host"):
        info = desktop_info(forged, bind)
        pytest.fail(
            f"with desktop_bind = {bind}, the job's state.json sends the proxy to {info.host}:{info.port}"
        )
    state = desktop_state(jobdir(tmp_path, state_json=forged), RUNNING, bind)
    assert state.desktop is None and "its desktop's record cannot be used" in state.reason


def test_a_host_name_bind_takes_only_the_jobs_node(tmp_path, caplog):
    """A host name (or 0.0.0.0) as the bind: the host must be the node the backend says runs
    the job (its addresses as the portal resolves them; its name, as a supervisor bound to
    0.0.0.0 records it, means its address). Anything else is no desktop, logged."""
    node = Place(frozenset({"10.1.0.7"}), frozenset({"node-3"}))
    for bind in ("node-3.cluster.example", "0.0.0.0"):  # noqa: S104
        assert desktop_info({**GOOD, "host": "10.1.0.7"}, bind, node).host == "10.1.0.7"
        assert desktop_info({**GOOD, "host": "NODE-3"}, bind, node).host == "10.1.0.7"
        for host in ("10.1.0.8", "127.0.0.1", "node-4", "node-3.evil.example"):
            with pytest.raises(DesktopRecordError, match="not 10.1.0.7, node-3"):
                desktop_info({**GOOD, "host": host}, bind, node)
    # listening on every address of the node: reached at the node's, whatever host it names
    everywhere = Place(frozenset({"10.1.0.7"}), frozenset({"node-3"}), everywhere=True)
    assert desktop_info({**GOOD, "host": "127.0.0.1"}, "0.0.0.0", everywhere).host == "10.1.0.7"  # noqa: S104
    # a node that does not resolve: nowhere
    with pytest.raises(DesktopRecordError, match="no address known"):
        desktop_info({**GOOD, "host": "node-3"}, "0.0.0.0", Place(frozenset()))  # noqa: S104
    with caplog.at_level("WARNING", logger="ijpweb.batch.jobdirs"):
        state = desktop_state(
            jobdir(tmp_path, state_json={**GOOD, "host": "10.9.9.9"}), RUNNING, "x.example", node
        )
    assert state.desktop is None
    assert "7: its desktop's record cannot be used: state.json's host is not 10.1.0.7" in caplog.text
    assert "abcdEF12" not in caplog.text and "password" not in caplog.text


@pytest.mark.parametrize("port", [1, 22, 80, 443, 1023, 65536])
def test_a_vnc_server_is_on_an_unprivileged_port(port):
    with pytest.raises(DesktopRecordError, match="port is not one of 1024..65535"):
        desktop_info({**GOOD, "port": port}, "127.0.0.1")
    assert desktop_info({**GOOD, "port": 1024}, "127.0.0.1").port == 1024
    assert desktop_info({**GOOD, "port": 65535}, "127.0.0.1").port == 65535


def test_a_record_dated_in_the_future_is_forged():
    now = datetime(2026, 11, 30, 18, tzinfo=UTC)
    soon = {**GOOD, "ready_at": (now + timedelta(seconds=59)).isoformat()}
    assert desktop_info(soon, "127.0.0.1", now=now).ready_at == now + timedelta(
        seconds=59
    )  # clocks differ a little
    for later in (now + timedelta(seconds=61), datetime(2099, 1, 1, tzinfo=UTC)):
        with pytest.raises(DesktopRecordError, match="ready_at is in the future"):
            desktop_info({**GOOD, "ready_at": later.isoformat()}, "127.0.0.1", now=now)


def test_end_json_failed_is_a_failed_session(tmp_path):
    """The portal's own end of a desktop that never became ready: FAILED with its reason
    (end.json with "failed": true), whatever the job's own records say."""
    d = jobdir(tmp_path, ended_json={"reason": "ended by a signal (SIGTERM)"})
    (d / "end.json").write_text(
        json.dumps({"reason": "the desktop did not start within 60 s", "failed": True})
    )
    for state in (
        BatchState(JobStatus.FAILED, None, "killed by SIGTERM"),
        BatchState(JobStatus.COMPLETED, 0),
    ):
        ended = desktop_state(d, state)
        assert (ended.status, ended.reason) == (JobStatus.FAILED, "the desktop did not start within 60 s")
    (d / "end.json").write_text(json.dumps({"reason": "ended by the user", "failed": "yes"}))  # only true is
    assert desktop_state(d, BatchState(JobStatus.FAILED, None, "x")).status == JobStatus.COMPLETED


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
    assert info.host == "127.0.0.1" and type(info.port) is int and 1024 <= info.port < 65536


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
            "--password-fd",
            "5",
            "--",
            "/bin/sh",
            "-c",
            "x",
            "--dir",
        ]  # fmt: skip
    )
    assert opts == {"dir": "/j/desktop", "geometry": "800x600", "time_limit": "60", "ready_timeout": "30",
                    "bind": "127.0.0.1", "password_fd": "5"}  # fmt: skip
    assert command == ["/bin/sh", "-c", "x", "--dir"]  # after --: the program's, untouched
    for bad in (["--dir", "d", "/bin/sh"], ["--dir", "d", "--"], ["--what", "x", "--", "p"],
                ["--dir", "d", "--geometry", "big", "--time-limit", "1", "--ready-timeout", "1", "--bind", "a",
                 "--password-fd", "5", "--", "p"],
                ["--dir", "d", "--geometry", "8x6", "--time-limit", "1", "--ready-timeout", "1", "--bind", "a",
                 "--", "p"],
                ["--dir", "d", "--geometry", "8x6", "--time-limit", "1", "--ready-timeout", "1", "--bind", "a",
                 "--password-fd", "x", "--", "p"]):  # fmt: skip
        with pytest.raises(ValueError):
            supervisor.parse(bad)


def test_the_x_cookie_entry():
    cookie = bytes(range(16))
    entry = supervisor.xauth_entry(cookie)
    # FamilyWild, no address, no display number: any display of this session's server
    assert entry == b"\xff\xff\x00\x00\x00\x00\x00\x12MIT-MAGIC-COOKIE-1\x00\x10" + cookie
    assert supervisor.hms(7200) == "2:00:00" and supervisor.hms(3 * 3600 + 61) == "3:01:01"


def test_the_password_travels_on_a_pipe_read_once_and_closed():
    from ijpweb.batch.runner import password_pipe

    fd = password_pipe("abcd1234")
    assert supervisor.read_password(fd) == "abcd1234"
    assert supervisor.read_password(password_pipe("")) == ""  # none given: no password
    r, w = os.pipe()
    try:
        os.write(w, b"efgh5678")
        assert supervisor.read_password(r) == "efgh5678"
        with pytest.raises(BrokenPipeError):  # it closed its end: nothing there can read more
            os.write(w, b"x")
    finally:
        os.close(w)
