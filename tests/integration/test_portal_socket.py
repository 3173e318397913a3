"""No job reaches the portal's Unix socket (issue 11, part X round 2, finding R2-1).

With ``ijp.trusted_proxies = unix`` a connection on the portal's socket is the trusted
proxy, and bubblewrap's read-only bind of a directory does not stop a job's connect() to a
socket in it. So the portal refuses to start where a backend's sandbox would show a job a
directory holding its socket (a [server:...] ``unix_socket`` of the ini it started from, or
``ijp.sockets``): a read_only or path directory, the portal's Python environment, the
system's directories; and a read_only/path directory holding any socket. Real bubblewrap,
as the tester did: the portal's own sandbox keeps the socket out of a job's reach."""

import socket
import sys
from pathlib import Path

import pytest

from ijpweb import main
from ijpweb.batch.runner import bwrap_argv
from ijpweb.batch.sandbox import Sandbox, describe, python_dirs
from ijpweb.settings import SettingError, parse_sockets, server_sockets

from ..conftest import NO_SANDBOX

needs_bwrap = pytest.mark.skipif(bool(NO_SANDBOX), reason=f"jobs cannot be sandboxed here: {NO_SANDBOX}")


@pytest.fixture
def portal_socket(tmp_path):
    """A listening Unix socket in a directory of its own, as ``unix_socket = ...`` makes it."""
    d = tmp_path / "run-elsewhere"
    d.mkdir()
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(d / "main.sock"))
    s.listen(4)
    s.settimeout(2)
    yield d, s
    s.close()


JOB = (
    "import socket,sys;c=socket.socket(socket.AF_UNIX)\n"
    "try:\n c.connect(sys.argv[1])\nexcept OSError as e:\n print('refused', e.errno); sys.exit(3)\n"
    "c.sendall(b'GET / HTTP/1.0\\r\\nX-Forwarded-For: 203.0.113.9\\r\\n\\r\\n')"
)


def run_job(described, sock: Path, server):
    """A job in ``described``'s sandbox, as the launcher builds it, connecting to ``sock``;
    what the server received (b'' when nothing came)."""
    import subprocess

    argv = [*bwrap_argv(described, [], "/"), sys.executable, "-c", JOB, str(sock)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode != 0:
        return b"", proc
    conn, _ = server.accept()
    with conn:
        return conn.recv(200), proc


@needs_bwrap
def test_a_read_only_directory_holding_a_socket_is_refused(portal_socket, tmp_path):
    d, _ = portal_socket
    root = tmp_path / "jobs"
    root.mkdir()
    for key, kwargs in (
        ("read_only", {"sandbox": Sandbox(read_only=(str(d),))}),
        ("path", {"path": [str(d)]}),
    ):
        with pytest.raises(
            ValueError, match=rf"ijp\.batch\.local\.{key}: .* holds the Unix socket .*main\.sock"
        ):
            describe(kwargs.get("sandbox", Sandbox()), kwargs.get("path", []), root, "ijp.batch.local.")


@needs_bwrap
def test_the_portals_sandbox_keeps_a_job_from_its_socket(portal_socket, tmp_path):
    """The job runs in the sandbox describe() accepts (another read-only directory beside
    the socket's): the socket's directory is not there, connect() fails, nothing arrives."""
    d, server = portal_socket
    d.chmod(0o755)  # (open to the job's user: only the sandbox keeps it out)
    (d / "main.sock").chmod(0o777)
    other = tmp_path / "reference-data"
    other.mkdir()
    root = tmp_path / "jobs"
    root.mkdir()
    described = describe(Sandbox(read_only=(str(other),)), [], root, "ijp.batch.local.")
    got, proc = run_job(described, d / "main.sock", server)
    assert got == b"" and "refused 2" in proc.stdout, (proc.stdout, proc.stderr)  # ENOENT: not there


@needs_bwrap
def test_the_mechanism_a_read_only_bind_does_not_stop_connect(portal_socket):
    """Why the refusals are needed (the tester's reproduction): a sandbox showing the
    socket's directory read-only, without the network, still lets the job in (where the
    job's user may open it: the portal's own account's when it is not root)."""
    d, server = portal_socket
    d.chmod(0o755)
    (d / "main.sock").chmod(0o777)
    described = {
        "type": "bwrap",
        "read_only": [*python_dirs(), str(d)],
        "network": False,
        "tmp_size": 1 << 20,
    }
    got, proc = run_job(described, d / "main.sock", server)
    assert b"X-Forwarded-For: 203.0.113.9" in got, (proc.stdout, proc.stderr)


def _ini(tmp_path, sock: str) -> str:
    ini = tmp_path / "portal.ini"
    ini.write_text(
        "[app:main]\nuse = egg:ijpweb\n\n"
        "[server:main]\nuse = egg:waitress#main\nunix_socket = /run/ijpweb/main.sock\n\n"
        f"[server:second]\nuse = egg:waitress#main\nunix_socket = {sock}\n"
    )
    return str(ini)


@needs_bwrap
@pytest.mark.parametrize("where", ["read_only", "path", "python"])
def test_the_portal_does_not_start_where_a_job_would_see_its_socket(app_settings, dbengine, tmp_path, where):
    """The socket need not exist yet (the server makes it after the app): its path, from
    any [server:...] section of the ini the portal started from, is enough."""
    shown = tmp_path / "shown"
    shown.mkdir()
    settings = dict(app_settings)
    if where == "read_only":
        settings["ijp.batch.local.read_only"] = str(shown)
        sock, named = str(shown / "sub" / "second.sock"), f"ijp.batch.local.read_only: {shown}"
    elif where == "path":
        settings["ijp.batch.local.path"] += f" {shown}"
        sock, named = str(shown / "second.sock"), f"ijp.batch.local.path: {shown}"
    else:
        sock, named = str(Path(sys.prefix) / "run" / "second.sock"), "the portal's Python environment"
    with pytest.raises(ValueError, match="holds the portal's Unix socket") as e:
        main({"__file__": _ini(tmp_path, sock)}, dbengine=dbengine, **settings)
    assert named in str(e.value) and sock in str(e.value), e.value
    # the same socket named in ijp.sockets (a server configured elsewhere) is refused alike
    with pytest.raises(ValueError, match="holds the portal's Unix socket"):
        main({}, dbengine=dbengine, **settings, **{"ijp.sockets": sock})


@needs_bwrap
def test_a_socket_no_job_sees_lets_the_portal_start(app_settings, dbengine, tmp_path):
    app = main(
        {"__file__": _ini(tmp_path, str(tmp_path / "run" / "second.sock"))}, dbengine=dbengine, **app_settings
    )
    assert app.registry.settings["ijp"].sockets[-2:] == (
        "/run/ijpweb/main.sock",
        str(tmp_path / "run" / "second.sock"),
    )


def test_the_sockets_of_every_server_section_are_the_portals(tmp_path):
    ini = tmp_path / "p.ini"
    ini.write_text(
        "[server:main]\nunix_socket = %(here)s/a.sock\n[server:b]\nunix_socket = /run/x/b.sock\n"
        "[server:tcp]\nlisten = 127.0.0.1:6543\n[app:main]\nunix_socket = /not/a/server.sock\n"
    )
    assert server_sockets(str(ini)) == [str(tmp_path / "a.sock"), "/run/x/b.sock"]
    assert server_sockets(None) == [] and server_sockets(str(tmp_path / "none.ini")) == []
    assert parse_sockets("/run/a b.sock\n\n /run/c.sock \n/run/c.sock") == ("/run/a b.sock", "/run/c.sock")
    with pytest.raises(SettingError, match="ijp.sockets"):
        parse_sockets("run/relative.sock")
