"""Issue 11, part X's finding 4: a job can never be the trusted proxy.

production.ini used to trust 127.0.0.1 and ::1 as Apache, while the local backend runs
every job whose type needs the catalog with the host's network: carol's job could connect
to the portal at 127.0.0.1 itself and be believed in X-Forwarded-For (a new client address
per login attempt: the per-address lock never came), -Proto, -Host and -Prefix. Now each
portal process listens on a Unix socket in /run/ijpweb that only Apache's group can open,
and trusts that socket alone (``ijp.trusted_proxies = unix``); no job's sandbox shows
/run. These tests are carol's job on this host (a real one: the local backend, bubblewrap
with the network) against the portal served by waitress with production.ini's prefix and
trusted proxies, over TCP (as if it listened there too) and over its Unix socket (as
Apache reaches it); and the warning a portal gives at start when it trusts a loopback
address while it runs local jobs."""

from __future__ import annotations

import configparser
import contextlib
import http.client
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from ijpweb import main
from ijpweb.batch import JobSpec
from ijpweb.batch.local import LocalBackend
from ijpweb.batch.runner import bwrap_argv
from ijpweb.batch.sandbox import python_dirs
from ijpweb.models import LoginFailure
from ijpweb.proxy import UNIX, loopback, loopback_warnings, parse_networks
from ijpweb.states import JobStatus

from ..conftest import NO_SANDBOX, ROOT, portal_settings, serving
from ..functional.test_prefix import PrefixedApp

INI = ROOT / "production.ini"
ATTEMPTS = 12
MAX_ADDRESS_FAILURES = 8


def production() -> configparser.ConfigParser:
    ini = configparser.ConfigParser(interpolation=None)
    ini.read(INI)
    return ini


def waitress_settings() -> dict[str, str]:
    """production.ini's [server:main] for waitress, but where it listens: it passes
    X-Forwarded-* on (clear_untrusted_proxy_headers = false), for the portal to judge."""
    server = production()["server:main"]
    settings = {k: v for k, v in server.items() if k not in ("use", "unix_socket", "listen", "host", "port")}
    assert settings["clear_untrusted_proxy_headers"] == "false"
    return settings


def production_backends(app) -> dict[str, dict[str, str]]:
    return {
        name: {
            k.removeprefix(f"ijp.batch.{name}."): v
            for k, v in app.items()
            if k.startswith(f"ijp.batch.{name}.")
        }
        for name in app.get("ijp.batch.backends", "").split()
    }


def test_production_trusts_no_address_its_own_jobs_connect_from():
    """The tester's check of the shipped file: no loopback address is trusted while a
    local backend runs jobs; the portal processes listen on Unix sockets only (waitress
    then opens no TCP port), 0660, in /run/ijpweb; and the portal would not warn."""
    ini = production()
    app = ini["app:main"]
    trusted = parse_networks(app["ijp.trusted_proxies"])
    backends = production_backends(app)
    assert any(b["type"] == "local" for b in backends.values())
    assert trusted == (UNIX,) and loopback(trusted) == []
    assert loopback_warnings(trusted, backends) == []
    servers = [s for s in ini.sections() if s.startswith("server:")]
    assert len(servers) >= 2
    for s in servers:
        server = ini[s]
        assert not {"listen", "host", "port"} & set(server), (s, dict(server))
        assert server["unix_socket"] == f"/run/ijpweb/{s.split(':', 1)[1]}.sock"
        assert server["unix_socket_perms"] == "660"


@pytest.fixture(scope="module")
def portal(app_settings, dbengine, tmp_path_factory):
    """The portal as production.ini sets it up (its ijp.prefix and ijp.trusted_proxies),
    counting failed logins per client address."""
    app = production()["app:main"]
    settings = portal_settings(
        str(ROOT / "testing.ini"), tmp_path_factory.mktemp("proxyjobs"), app_settings["sqlalchemy.url"],
        **{"ijp.prefix": app["ijp.prefix"], "ijp.trusted_proxies": app["ijp.trusted_proxies"],
           "ijp.login.max_address_failures": str(MAX_ADDRESS_FAILURES)},
    )  # fmt: skip
    return main({}, dbengine=dbengine, **settings)


@pytest.fixture
def failures(dbengine):
    """The login failures counted during the test, by key (none before, none after)."""

    def wipe():
        with dbengine.begin() as conn:
            conn.execute(sa.delete(LoginFailure.__table__))

    def counted() -> dict[str, int]:
        with dbengine.connect() as conn:
            return dict(conn.execute(sa.select(LoginFailure.key, LoginFailure.failures)).all())

    wipe()
    yield counted
    wipe()


def test_a_client_on_127_0_0_1_rotating_x_forwarded_for_is_still_locked_by_address(portal, failures):
    """The tester's test, kept: each login attempt 'from' another address in
    X-Forwarded-For, from 127.0.0.1; the per-address lock comes as it does without it."""
    statuses = []
    for i in range(ATTEMPTS):
        environ = {"HTTP_HOST": "example.com", "REMOTE_ADDR": "127.0.0.1",
                   "HTTP_X_FORWARDED_FOR": f"198.51.100.{i + 1}"}  # fmt: skip
        statuses.append(
            PrefixedApp(portal, extra_environ=environ).login(f"nobody{i}", "guess", status="*").status_int
        )
    assert 429 in statuses, statuses
    assert not [k for k in failures() if k.startswith("addr:198.51.100.")]
    assert failures()["addr:127.0.0.1"] >= 3


# carol's job: stdlib only, in the sandbox; argv: the portal's TCP port, its socket's path
JOB = r"""
import http.client, json, os, sys
port, sock = int(sys.argv[1]), sys.argv[2]
statuses, secure = [], []
for i in range(12):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("POST", "/ijp/api/v1/session", json.dumps({"username": f"nobody{i}", "password": "guess"}),
              {"Content-Type": "application/json", "X-Forwarded-For": f"198.51.100.{i + 1}"})
    statuses.append(c.getresponse().status)
    c.close()
c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
c.request("GET", "/evil/login", headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example",
                                          "X-Forwarded-Prefix": "/evil"})
r = c.getresponse()
page = r.read().decode()
print(json.dumps({"statuses": statuses, "prefix": r.status, "cookies": r.getheader("Set-Cookie"),
                  "evil": "evil" in page, "socket": os.path.exists(sock),
                  "run": sorted(os.listdir("/run")) if os.path.isdir("/run") else None}))
"""


@contextlib.contextmanager
def socket_dir():
    """A directory for the portal's socket as production has it: in /run where this
    test may write there (as root), else a temporary one; 2750 (the group: Apache's)."""
    where = "/run" if os.access("/run", os.W_OK) else None
    d = Path(tempfile.mkdtemp(prefix="ijpweb-test-", dir=where))
    d.chmod(0o2750)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


class UnixConnection(http.client.HTTPConnection):
    """HTTP over a Unix socket, as Apache's ``unix:PATH|http://localhost`` speaks it."""

    def __init__(self, path: str):
        super().__init__("localhost", timeout=30)
        self.socket_path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.socket_path)


def over_socket(path: str, method: str, url: str, body=None, headers=None):
    c = UnixConnection(path)
    try:
        c.request(method, url, body, headers or {})
        res = c.getresponse()
        return res.status, dict(res.getheaders()), res.read().decode()
    finally:
        c.close()


@pytest.mark.skipif(NO_SANDBOX is not None, reason=f"jobs cannot be sandboxed here: {NO_SANDBOX}")
def test_a_job_with_the_network_is_not_the_proxy(portal, failures, tmp_path):
    """carol's job with the host's network (as every job whose type needs the catalog
    has it) connects to the portal on 127.0.0.1 and says another client address each
    time, https, another host and prefix: none is believed, the per-address lock comes,
    and the job cannot even see the socket Apache uses (nor anything of /run)."""
    with socket_dir() as run:
        sock = str(run / "main.sock")
        with (
            serving(portal, **waitress_settings()) as url,
            serving(portal, unix_socket=sock, **waitress_settings()),
        ):
            port = int(url.rsplit(":", 1)[1])
            assert os.stat(sock).st_mode & 0o777 == 0o660
            backend = LocalBackend(
                "local", tmp_path / "jobs", max_running=1, path=[str(Path(sys.executable).parent)]
            )
            backend.submit(JobSpec(1, "db/carol", Path(sys.executable).name, ("-I", "-c", JOB, str(port), sock),
                                   network=True))  # fmt: skip
            deadline = time.monotonic() + 120
            while (state := backend.states(["1"])["1"]).status not in (JobStatus.COMPLETED, JobStatus.FAILED):
                assert time.monotonic() < deadline, state
                time.sleep(0.1)
            out, err = backend.read("1", "stdout").decode(), backend.read("1", "stderr").decode()
        assert state.status == JobStatus.COMPLETED, (state, err)
    seen = json.loads(out)
    assert 429 in seen["statuses"], seen["statuses"]
    counted = failures()
    assert not [k for k in counted if k.startswith("addr:198.51.100.")], counted
    assert counted["addr:127.0.0.1"] >= 3
    # its X-Forwarded-Prefix, -Proto and -Host: not believed (the path is outside /ijp, a
    # plain-http cookie); and it sees no socket, no /run at all
    assert seen["prefix"] == 404 and not seen["evil"]
    assert seen["socket"] is False and not seen["run"], seen


def test_the_sandbox_binds_nothing_under_run():
    """What the job above could not see, from the command line the runner builds: no
    directory of /run is shown to any job (the portal's sockets are there)."""
    argv = bwrap_argv(
        {"type": "bwrap", "network": True, "read_only": python_dirs()}, ["/srv/jobs/1/work"], "/"
    )
    shown = [argv[i + 2] for i, a in enumerate(argv) if a in ("--bind", "--ro-bind")]
    assert shown and not [p for p in shown if p == "/run" or p.startswith(("/run/", "/var/run"))], shown


@pytest.mark.parametrize("read_only", ["/run", "/run/ijpweb", "/var/run", "/"])
def test_a_backend_that_would_show_run_to_its_jobs_does_not_start(tmp_path, read_only):
    with pytest.raises(
        ValueError, match=r"^ijp\.batch\.local\.read_only: .* (/run|holds the job directories)"
    ):
        main_backend(tmp_path, read_only)


def main_backend(tmp_path, read_only):
    from ijpweb.batch.local import from_settings

    return from_settings("local", {"dir": str(tmp_path / "jobs"), "read_only": read_only}, "ijp.batch.local.")


def test_the_unix_socket_is_the_proxy(portal, failures):
    """Apache's connection, on the socket: its X-Forwarded-For names the client (the
    rightmost address, the one Apache appended), its https makes the cookies Secure."""
    with socket_dir() as run, serving(portal, unix_socket=str(run / "main.sock"), **waitress_settings()):
        sock = str(run / "main.sock")
        status, headers, _ = over_socket(sock, "GET", "/ijp/login", headers={
            "Host": "ijp.example.org", "X-Forwarded-Proto": "https", "X-Forwarded-Prefix": "/ijp",
        })  # fmt: skip
        assert status == 200 and "secure" in headers["Set-Cookie"].lower()
        for _ in range(2):
            status, _, _ = over_socket(sock, "POST", "/ijp/api/v1/session",
                                       json.dumps({"username": "nobody", "password": "guess"}),
                                       {"Host": "ijp.example.org", "Content-Type": "application/json",
                                        "X-Forwarded-For": "203.0.113.66, 198.51.100.7"})  # fmt: skip
            assert status == 401
        counted = failures()
        assert counted["addr:198.51.100.7"] == 2 and "addr:203.0.113.66" not in counted, counted
        assert not [k for k in counted if k in ("addr:localhost", "addr:")], counted


@pytest.mark.parametrize(
    ("trusted", "sandbox", "warned"),
    [("127.0.0.1 ::1", "bwrap", "trusts 127.0.0.1/32, ::1/128 (a loopback address, or a network holding one) while "
                                "the local backend(s) local run jobs on this host with its network"),
     ("10.0.0.0/8 127.0.0.0/8", "bwrap", "trusts 127.0.0.0/8 (a loopback"),
     ("::ffff:127.0.0.1", "bwrap", "trusts ::ffff:7f00:1/128 (a loopback"),
     ("0.0.0.0/0", "bwrap", "trusts 0.0.0.0/0 (a loopback"),
     ("unix", "none", "trusts the portal's Unix socket while the local backend(s) local run jobs unsandboxed"),
     ("unix", "bwrap", None), ("10.0.0.5", "bwrap", None), ("", "bwrap", None)],
)  # fmt: skip
def test_the_portal_warns_at_start_when_a_job_could_pose_as_the_proxy(app_settings, dbengine, tmp_path, caplog,
                                                                        trusted, sandbox, warned):  # fmt: skip
    if sandbox == "bwrap" and NO_SANDBOX:
        pytest.skip(f"jobs cannot be sandboxed here: {NO_SANDBOX}")
    settings = portal_settings(str(ROOT / "testing.ini"), tmp_path, app_settings["sqlalchemy.url"],
                               **{"ijp.trusted_proxies": trusted, "ijp.batch.local.sandbox": sandbox})  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="ijpweb"):
        main({}, dbengine=dbengine, **settings)
    said = [r.getMessage() for r in caplog.records if "ijp.trusted_proxies" in r.getMessage()]
    if warned is None:
        assert said == []
    else:
        assert len(said) == 1 and warned in said[0], said
        assert "ijp.trusted_proxies = unix" in said[0] or "sandbox = none" in said[0]


def test_no_warning_without_a_local_backend():
    assert loopback_warnings(parse_networks("127.0.0.1"), {"cluster": {"type": "slurm"}}) == []
    assert loopback_warnings(parse_networks("unix"), {"cluster": {"type": "slurm", "sandbox": "none"}}) == []
