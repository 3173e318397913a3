"""Issue 11, point 7: the deployment guide (docs/deploy.md) stays true of the code.

Every setting and environment variable it names is one the portal reads, every file of
the repository it names exists, every ``ijp-admin`` command it shows is one; the Apache
lines it gives pass ``apache2 -t`` with the shipped file, and with them a real Apache
keeps session ids out of its access log; the systemd units it explains parse, start
commands the package installs, set none of the options that stop the jobs' sandbox, and
pass ``systemd-analyze verify`` (each tool's check skips, saying why, where it is absent)."""

from __future__ import annotations

import configparser
import http.server
import importlib.metadata
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ..integration.test_apache import apache_group, free_port, socket_dir, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "deploy.md"
UNITS = {"ijpweb@.service": "pserve", "ijp-batchserver.service": "ijp-batchserver"}
INIS = ("production.ini", "development.ini", "testing.ini", "batchserver.ini")
SOURCE = "\n".join(p.read_text() for p in sorted((ROOT / "ijpweb").rglob("*.py")))
# what each stops: bubblewrap cannot make the job's namespaces or its /proc (docs/deploy.md §5.1)
BREAKS_THE_SANDBOX = ("RestrictNamespaces", "ProtectKernelTunables", "ProtectKernelLogs", "ProcSubset",
                      "SystemCallFilter")  # fmt: skip

pytestmark = pytest.mark.once  # no database


def text() -> str:
    return DOC.read_text()


def fenced(doc: str) -> list[tuple[str, str]]:
    """The fenced code blocks: (info string, body)."""
    return [(m[1], m[2]) for m in re.finditer(r"^ *```(\w*)\n(.*?)^ *```", doc, re.S | re.M)]


def inline_spans(doc: str) -> list[str]:
    """The inline `code` spans, outside fenced blocks."""
    prose = re.sub(r"^ *```.*?^ *```", "", doc, flags=re.S | re.M)
    return re.findall(r"`([^`\n]+)`", prose)


def code_lines(doc: str) -> list[str]:
    return [*inline_spans(doc), *(line for _, body in fenced(doc) for line in body.splitlines())]


# --- settings and environment variables ---------------------------------------------------

SETTING = re.compile(r"^\s*#?\s*((?:ijp|sqlalchemy|auth|backend)\.[A-Za-z_<>.]*[A-Za-z_>])")


def settings_named(doc: str) -> set[str]:
    """Settings the guide names: a code span or a code line that starts with one."""
    return {m[1] for line in code_lines(doc) if (m := SETTING.match(line))}


def ini_keys() -> set[str]:
    keys = set()
    for name in INIS:
        cp = configparser.ConfigParser(interpolation=None, strict=False)
        cp.optionxform = str
        cp.read(ROOT / name)
        keys |= {k for s in cp.sections() for k in cp[s]}
    return keys


def backend_options() -> set[str]:
    """The option names a backend reads (``ijp.batch.<name>.X``, ``backend.X``)."""
    batch = "\n".join(p.read_text() for p in sorted((ROOT / "ijpweb" / "batch").glob("*.py")))
    names = set(re.findall(r"""(?:opts\.get\(|opts\[|limit\()\s*["'](\w+)["']""", batch))
    from ijpweb.batch.runner import LIMITS
    from ijpweb.batch.slurm import SBATCH_FLAGS

    return names | set(SBATCH_FLAGS) | set(LIMITS) | {"type"}


def unknown_settings(doc: str) -> list[str]:
    keys, options = ini_keys(), backend_options()
    wrong = []
    for name in sorted(settings_named(doc)):
        if f'"{name}"' in SOURCE or name in keys:
            continue
        m = re.fullmatch(r"(?:ijp\.batch\.<name>|ijp\.batch\.\w+|backend)\.(\w+)", name)
        if m and m[1] in options:
            continue
        wrong.append(name)
    return wrong


def test_every_setting_the_guide_names_is_read_by_the_portal_or_set_in_an_ini():
    named = settings_named(text())
    # the guide's own examples are found (or this test would check nothing)
    assert {"ijp.prefix", "ijp.trusted_proxies", "ijp.scheduler.enabled", "sqlalchemy.pool_size",
            "ijp.batch.<name>.path", "ijp.db.busy_seconds", "ijp.metrics.token"} <= named  # fmt: skip
    assert unknown_settings(text()) == []


def test_a_misspelt_setting_is_caught():
    doc = text() + "\nSet `ijp.trusted_proxy = 10.0.0.1` and `ijp.batch.<name>.netwrok`.\n"
    assert unknown_settings(doc) == ["ijp.batch.<name>.netwrok", "ijp.trusted_proxy"]


def test_every_environment_variable_the_guide_names_is_read_by_the_package():
    apache = set(
        re.findall(r"Define (IJP_[A-Z_]+)", (ROOT / "deploy" / "apache" / "ijpweb.conf").read_text())
    )
    # Apache's variables, not the environment's
    assert apache == {"IJP_PREFIX", "IJP_PORTAL", "IJP_DESKTOP_PROXY"}
    named = set(re.findall(r"\bIJP_[A-Z_]+\b", text())) - apache
    assert {"IJP_DATABASE_URL", "IJP_AUTH_SECRET", "IJP_IDS_KEY", "IJP_METRICS_TOKEN"} <= named
    assert sorted(v for v in named if f'"{v}"' not in SOURCE and f"'{v}'" not in SOURCE) == []


# --- files and commands --------------------------------------------------------------------

TOP = ("deploy/", "docs/", "ijpweb/", "migrations/", "tests/", "bench/", "jobtypes/", "datasettypes/")


def repository_files(doc: str) -> set[str]:
    spans = {s.strip() for s in inline_spans(doc)}
    spans |= set(re.findall(r"\]\((?!https?:|#)([^)\s]+)\)", doc))  # markdown links
    named = {s for s in spans if s.startswith(TOP) and re.fullmatch(r"[\w./@-]+", s)}
    named |= {s for s in spans if re.fullmatch(r"[\w-]+\.(?:ini|md|cfg|toml)|Makefile", s)}
    return named


def test_every_repository_file_the_guide_names_exists():
    named = repository_files(text())
    assert {"deploy/apache/ijpweb.conf", "deploy/systemd/ijpweb@.service", "production.ini",
            "deploy/systemd/ijp-batchserver.service", "batchserver.ini"} <= named  # fmt: skip
    assert sorted(f for f in named if not (ROOT / f).exists()) == []


def admin_commands() -> set[str]:
    src = (ROOT / "ijpweb" / "admin.py").read_text()
    return set(re.findall(r'"([a-z-]+)"', re.search(r"choices=\[(.*?)\]", src, re.S)[1]))


def test_every_ijp_admin_command_the_guide_shows_is_one():
    shown = {
        m[1]
        for line in code_lines(text())
        if (m := re.match(r"\s*(?:\S*/)?ijp[-_]admin\s+(?:\S+\.ini\s+)?([a-z][a-z-]*)\b", line))
    }
    assert {"migrate", "url", "check-jobtypes", "set-password"} <= shown
    assert shown - admin_commands() == set()


# --- the systemd units ----------------------------------------------------------------------


def unit(name: str) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(interpolation=None, strict=False, empty_lines_in_values=False)
    cp.optionxform = str  # systemd's keys are case-sensitive
    cp.read_string((ROOT / "deploy" / "systemd" / name).read_text())
    return cp


def installed_commands() -> set[str]:
    """The console scripts the package and what it installs provide (pserve: pyramid)."""
    return {ep.name for ep in importlib.metadata.entry_points(group="console_scripts")}


@pytest.mark.parametrize(("name", "command"), UNITS.items())
def test_the_units_parse_and_start_what_the_package_installs(name, command):
    cp = unit(name)
    assert {"Unit", "Service", "Install"} <= set(cp.sections())
    service = cp["Service"]
    argv = shlex.split(service["ExecStart"])
    assert Path(argv[0]).name == command and command in installed_commands()
    assert Path(argv[0]).parent == Path("/opt/ijpweb/.venv/bin")  # the guide's layout (§2)
    assert argv[1].startswith("/etc/ijpweb/") and argv[1].endswith(".ini")
    assert service["User"] not in ("", "root")
    if command == "pserve":  # the secrets (§4)
        assert service["EnvironmentFile"] == "/etc/ijpweb/ijpweb.env"
    assert service["KillMode"] == "process"  # the local backend's jobs outlive a restart
    assert service["UMask"] == "0077"
    assert [k for k in service if k in BREAKS_THE_SANDBOX] == []
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    assert cp["Install"]["WantedBy"] == "multi-user.target"


def test_the_portal_unit_is_a_template_over_the_ini_s_server_sections():
    argv = shlex.split(unit("ijpweb@.service")["Service"]["ExecStart"])
    assert argv[2:] == ["--server-name", "%i"]
    servers = configparser.ConfigParser(interpolation=None)
    servers.read(ROOT / "production.ini")
    listen = {
        s.split(":", 1)[1]: servers[s]["unix_socket"] for s in servers.sections() if s.startswith("server:")
    }
    # the guide's ijpweb@main and ijpweb@second, each on its Unix socket in the unit's
    # ReadWritePaths (the only way in: ijp.trusted_proxies = unix)
    assert listen == {"main": "/run/ijpweb/main.sock", "second": "/run/ijpweb/second.sock"}
    assert "/run/ijpweb" in unit("ijpweb@.service")["Service"]["ReadWritePaths"].split()
    for section in listen:
        assert servers[f"server:{section}"]["clear_untrusted_proxy_headers"] == "false"


SYSTEMD_ANALYZE = shutil.which("systemd-analyze")


@pytest.mark.skipif(
    SYSTEMD_ANALYZE is None, reason="systemd-analyze is not installed (apt-get install systemd)"
)
def test_systemd_analyze_verify_finds_nothing_to_say(tmp_path):
    """Each unit as systemd reads it, with ExecStart pointed at this virtualenv (verify
    wants the program to exist); any warning (an unknown key, a bad value) fails."""
    here = str(Path(sys.executable).parent) + "/"
    paths = []
    for name in UNITS:
        target = tmp_path / name.replace("@.", "@main.")
        target.write_text(
            (ROOT / "deploy" / "systemd" / name).read_text().replace("/opt/ijpweb/.venv/bin/", here)
        )
        paths.append(str(target))
    done = subprocess.run([SYSTEMD_ANALYZE, "verify", *paths], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr.strip()) == (0, "")
    # and it can fail: a unit with a bad value is reported
    bad = tmp_path / "bad@main.service"
    bad.write_text(Path(paths[0]).read_text().replace("KillMode=process", "KillMode=sometimes"))
    done = subprocess.run([SYSTEMD_ANALYZE, "verify", str(bad)], capture_output=True, text=True, timeout=120)
    assert "kill mode" in done.stderr


# --- Apache ----------------------------------------------------------------------------------

APACHE = shutil.which("apache2") or shutil.which("apache2", path="/usr/sbin:/usr/local/sbin")
MODULES = Path("/usr/lib/apache2/modules")
NEEDED = ("mpm_event", "authz_core", "authz_host", "proxy", "proxy_http", "proxy_balancer",
          "lbmethod_byrequests", "slotmem_shm", "headers", "proxy_hcheck", "setenvif")  # fmt: skip


def _apache_missing() -> str | None:
    if APACHE is None:
        return "apache2 is not installed (apt-get install apache2)"
    missing = [m for m in NEEDED if not (MODULES / f"mod_{m}.so").exists()]
    return f"apache2's modules {', '.join(missing)} are not in {MODULES}" if missing else None


def guide_apache() -> tuple[str, str]:
    """The guide's two Apache blocks: the <Proxy> balancer, and the VirtualHost's lines."""
    blocks = [body for info, body in fenced(text()) if info == "apache"]
    balancer = [b for b in blocks if b.lstrip().startswith('<Proxy "balancer://ijpweb">')]
    vhost = [b for b in blocks if "Include /etc/apache2/ijpweb.conf" in b]
    assert len(balancer) == 1 and len(vhost) == 1
    return balancer[0], vhost[0]


def site_conf(tmp: Path, port: int, members: list[str]) -> Path:
    """An Apache of its own on ``port``: the shipped file with the guide's <Proxy> block
    (its members' URLs replaced by ``members``), inside a VirtualHost with the guide's lines."""
    balancer, vhost = guide_apache()
    urls = re.findall(r'BalancerMember "([^"]+)"', balancer)
    assert len(urls) == len(members) == 2
    for url, member in zip(urls, members, strict=True):
        balancer = balancer.replace(f'"{url}"', f'"{member}"')
    shipped = (ROOT / "deploy" / "apache" / "ijpweb.conf").read_text()
    copy, n = re.subn(r'^<Proxy "balancer://ijpweb">.*?^</Proxy>\n', balancer.strip() + "\n", shipped,
                      flags=re.S | re.M)  # fmt: skip
    assert n == 1  # the guide's block replaces the shipped one
    (tmp / "ijpweb.conf").write_text(copy)
    lines = [
        f'ServerRoot "{tmp}"', f'PidFile "{tmp}/httpd.pid"', f'ErrorLog "{tmp}/error.log"',
        f'DefaultRuntimeDir "{tmp}"', "LogLevel warn", f"Listen 127.0.0.1:{port}", "ServerName 127.0.0.1",
        f"Define APACHE_LOG_DIR {tmp}", *(f"LoadModule {m}_module {MODULES}/mod_{m}.so" for m in NEEDED),
    ]  # fmt: skip
    if os.geteuid() == 0:  # Apache will not serve as root
        lines += ["User nobody", f"Group {apache_group()}"]
    lines += [
        f"<VirtualHost 127.0.0.1:{port}>",
        vhost.replace("Include /etc/apache2/ijpweb.conf", f'Include "{tmp}/ijpweb.conf"'),
        "</VirtualHost>",
    ]
    conf = tmp / "httpd.conf"
    conf.write_text("\n".join(lines) + "\n")
    return conf


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


class _Portal(http.server.BaseHTTPRequestHandler):
    """Stands in for a portal process: answers every GET with 200."""

    def do_GET(self):  # noqa: N802 - http.server's name
        body = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_DELETE = do_GET  # noqa: N815

    def log_message(self, *args):
        pass


@pytest.mark.skipif(_apache_missing() is not None, reason=f"no Apache to test with: {_apache_missing()}")
def test_the_guide_s_apache_lines_pass_apache2_t_with_the_shipped_file(tmp_path):
    conf = site_conf(tmp_path, free_port(), ["http://127.0.0.1:6543", "http://127.0.0.1:6544"])
    check = subprocess.run([APACHE, "-f", str(conf), "-t"], capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stderr
    # and it can fail: a misspelt directive in the guide's lines is refused
    conf.write_text(conf.read_text().replace("SetEnvIf", "SetEnvIff"))
    check = subprocess.run([APACHE, "-f", str(conf), "-t"], capture_output=True, text=True, timeout=30)
    assert check.returncode != 0 and "SetEnvIff" in check.stderr


@pytest.mark.skipif(_apache_missing() is not None, reason=f"no Apache to test with: {_apache_missing()}")
def test_with_the_guide_s_log_format_apache_logs_no_session_id(tmp_path):
    """A session id in the query (/ijp/rest/jm, /icat, /ids) or in /icat/session/<id>
    reaches the portal but not the access log; the requests are logged all the same."""
    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Portal) for _ in range(2)]
    for s in servers:
        threading.Thread(target=s.serve_forever, daemon=True).start()
    port = free_port()
    conf = site_conf(tmp_path, port, [f"http://127.0.0.1:{s.server_address[1]}" for s in servers])
    proc = subprocess.Popen([APACHE, "-f", str(conf), "-DFOREGROUND"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    secret, other = "5e551011-1d0f-4b1c-a11c-e0000000beef", "c0ffee00-0000-4000-8000-00000000cafe"
    try:
        wait_for_port(port, proc, tmp_path / "error.log")
        import requests

        base = f"http://127.0.0.1:{port}/ijp"
        assert (
            requests.get(f"{base}/rest/jm/status", params={"sessionId": secret}, timeout=10).status_code
            == 200
        )
        assert requests.get(f"{base}/icat/session/{other}", timeout=10).status_code == 200
        assert requests.delete(f"{base}/icat/session/{other}", timeout=10).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)  # Apache writes its logs out as it stops
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        for s in servers:
            s.shutdown()
            s.server_close()
    log = (tmp_path / "ijp_access.log").read_text()
    assert '"GET /ijp/rest/jm/status HTTP/1.1" 200' in log
    assert log.count("[an /icat/session/ path]") == 2
    assert secret not in log and other not in log


# a portal process's stand-in, a process of its own on a Unix socket: says who it is and
# what it was asked (argv: its name and socket); waitress as production.ini sets it up
STAND_IN = """
import json, sys
from waitress import serve

def app(environ, start_response):
    seen = {"process": sys.argv[1], "path": environ["PATH_INFO"], "host": environ.get("HTTP_X_FORWARDED_HOST"),
            "prefix": environ.get("HTTP_X_FORWARDED_PREFIX")}
    body = json.dumps(seen).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]

serve(app, unix_socket=sys.argv[2], unix_socket_perms="660", clear_untrusted_proxy_headers=False, _quiet=True)
"""


@pytest.mark.skipif(_apache_missing() is not None, reason=f"no Apache to test with: {_apache_missing()}")
def test_the_guide_s_balancer_on_unix_sockets_goes_on_when_a_process_stops(tmp_path):
    """The guide's <Proxy> block and VirtualHost lines as they are, but for the sockets'
    directory: a real Apache reaches two waitress processes on their Unix sockets (0660,
    in a 2750 directory of Apache's group), each in turn; with one stopped every request
    is answered by the other; /ijp-process/<name>/ reaches that process alone, with
    Apache's forwarded headers, and nothing else of it."""
    run = socket_dir()
    port = free_port()
    members = re.findall(r'BalancerMember "([^"]+)"', guide_apache()[0])
    assert all(m.startswith("unix:/run/ijpweb/") for m in members), members
    conf = site_conf(tmp_path, port, [m.replace("/run/ijpweb/", f"{run}/") for m in members])
    conf.write_text(conf.read_text().replace("/run/ijpweb/", f"{run}/"))
    portals = {
        name: subprocess.Popen(
            [sys.executable, "-c", STAND_IN, name, f"{run}/{name}.sock"], start_new_session=True
        )
        for name in ("main", "second")
    }
    proc = subprocess.Popen([APACHE, "-f", str(conf), "-DFOREGROUND"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
    try:
        import requests

        deadline = time.monotonic() + 20
        while not _listening(port) or not all(Path(f"{run}/{n}.sock").exists() for n in portals):
            assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "error.log").read_text()
            time.sleep(0.1)
        base = f"http://127.0.0.1:{port}"

        def who(path: str, **kw) -> dict:
            res = requests.get(base + path, timeout=10, **kw)
            assert res.status_code == 200, (path, res.status_code, res.text[:200])
            return res.json()

        assert {who("/ijp/jobs")["process"] for _ in range(6)} == {"main", "second"}
        for name in ("main", "second"):
            seen = who(f"/ijp-process/{name}/healthz", headers={"X-Forwarded-Host": "evil.example",
                                                                "X-Forwarded-Prefix": "/evil"})  # fmt: skip
            assert seen == {
                "process": name,
                "path": "/ijp/healthz",
                "host": f"127.0.0.1:{port}",
                "prefix": "/ijp",
            }
            assert who(f"/ijp-process/{name}/metrics")["path"] == "/ijp/metrics"
        assert requests.get(f"{base}/ijp-process/main/login", timeout=10).status_code == 404
        portals["second"].kill()  # its process dies: the socket refuses
        portals["second"].wait(timeout=10)
        assert [who("/ijp/jobs")["process"] for _ in range(10)] == ["main"] * 10
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        for portal in portals.values():
            portal.kill()
            portal.wait(timeout=10)
        shutil.rmtree(run, ignore_errors=True)
