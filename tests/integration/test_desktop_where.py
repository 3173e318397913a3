"""Issue 14, carol's F5 on the local backend, with the real programs: the portal decides
where a desktop's VNC server is (the backend's bind, resolved once when the backend
starts), the job only reports its port. A session whose program rewrites its own
desktop/state.json with another host, a system port or a ready_at in the future gets no
desktop (the proxy is never sent there). 0.0.0.0 as the local backend's bind is refused
when the backend starts, naming the setting. And end_sessions(failed=True): the portal's
end of a desktop that never became ready, FAILED with the portal's reason, nothing left."""

import contextlib
import socket

import pytest

from ijpweb.batch import BatchError
from ijpweb.batch.local import from_settings
from ijpweb.states import JobStatus

from .test_desktop_local import (  # noqa: F401 (pytestmark: bwrap, Xvfb, x11vnc installed)
    ENDED,
    desktop_job,
    ended,
    gone,
    make_backend,
    pytestmark,
    ready,
    session_processes,
    wait,
)


@pytest.fixture
def backend(tmp_path):
    b = make_backend(tmp_path / "jobs")
    yield b
    for d in b.root.glob("[0-9]*"):
        with contextlib.suppress(BatchError):
            b.cancel(d.name)


# the program rewrites its desktop's record once the supervisor has written it, then stays
FORGE = (
    'while [ ! -e "$D/state.json" ]; do sleep 0.05; done; '
    'printf \'%s\' "$R" > "$D/.f" && mv "$D/.f" "$D/state.json"; exec sleep 600'
)
FORGED = {
    "another host": '{"host": "192.0.2.10", "port": 5901}',
    "the portal host's PostgreSQL": '{"host": "127.0.0.1", "port": 5432}',  # (5432 >= 1024, but see below)
    "a system port": '{"host": "127.0.0.1", "port": 22}',
    "a host name": '{"host": "db.internal.example", "port": 5901}',
    "ready in 2099": '{"host": "127.0.0.1", "port": 5901, "ready_at": "2099-01-01T00:00:00+00:00"}',
}


@pytest.mark.parametrize("what", ["another host", "a system port", "a host name", "ready in 2099"])
def test_a_session_that_rewrites_its_record_gets_no_desktop(backend, what, caplog):
    job = 60 + list(FORGED).index(what)
    d = backend.root / str(job) / "desktop"
    backend.submit(desktop_job(job, f"D={d}; R='{FORGED[what]}'; " + FORGE))
    try:
        state = wait(
            backend, str(job), lambda s: (s.reason or "").startswith("its desktop") or s.status in ENDED
        )
        assert state.status == JobStatus.RUNNING and state.desktop is None, state
        assert state.reason.startswith("its desktop's record cannot be used: state.json's ")
        assert f"{backend.root / str(job)}: its desktop's record cannot be used" in caplog.text
        password = (backend.root / str(job) / "desktop.secret").read_text()
        assert password not in caplog.text and "password" not in caplog.text
    finally:
        assert backend.end_sessions([str(job)], "ended by the user") == {str(job): None}


def test_the_loopback_is_where_a_local_session_is_and_no_port_is_refused_there(backend):
    """With the default bind the job and the proxy share this host (and the job has its
    network): the host must be 127.0.0.1, any unprivileged port is its own to name."""
    d = backend.root / "66" / "desktop"
    record = FORGED["the portal host's PostgreSQL"]
    backend.submit(desktop_job(66, f"D={d}; R='{record}'; " + FORGE))
    try:
        state = wait(backend, "66", lambda s: (s.desktop and s.desktop.port == 5432) or s.status in ENDED)
        assert (state.desktop.host, state.desktop.port) == ("127.0.0.1", 5432)
    finally:
        backend.end_sessions(["66"], "ended by the user")


def test_the_local_bind_is_decided_when_the_backend_starts(tmp_path):
    for bind in ("0.0.0.0", "::"):  # noqa: S104
        with pytest.raises(ValueError, match=rf"ijp\.batch\.local\.desktop_bind = {bind}: .* one address"):
            from_settings("local", {"dir": str(tmp_path / "a"), "desktop_bind": bind}, "ijp.batch.local.")
    with pytest.raises(
        ValueError, match=r"ijp\.batch\.local\.desktop_bind = no-such-host\.invalid: cannot be"
    ):
        from_settings("local", {"dir": str(tmp_path / "b"), "desktop_bind": "no-such-host.invalid"}, None)
    assert make_backend(tmp_path / "c", desktop_bind="localhost").desktop_bind == "127.0.0.1"
    name = socket.gethostname()
    address = socket.getaddrinfo(name, 0, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    b = make_backend(tmp_path / "d", desktop_bind=name)
    assert b.desktop_bind == address  # resolved once: the supervisor is given the address
    assert b.desktop_place.addresses == {address}


def test_a_session_ended_as_failed_is_failed_with_the_portals_reason(backend):
    """helper W2's backstop: a desktop not ready within ready_seconds is ended failed."""
    backend.submit(desktop_job(70))
    ready(backend, "70")
    processes = session_processes(backend.root / "70", "70")
    assert processes
    why = "the desktop did not start within 60 s"
    assert backend.end_sessions(["70"], why, failed=True) == {"70": None}
    state = ended(backend, "70")
    assert (state.status, state.reason) == (JobStatus.FAILED, why)
    assert gone(processes) == {}
    # a second end (End session after it) changes nothing
    backend.end_sessions(["70"], "ended by the user")
    assert backend.states(["70"])["70"].reason == why
    # a normal end stays Completed
    backend.submit(desktop_job(71))
    ready(backend, "71")
    backend.end_sessions(["71"], "ended by the user")
    assert (ended(backend, "71").status, ended(backend, "71").reason) == (
        JobStatus.COMPLETED,
        "ended by the user",
    )
