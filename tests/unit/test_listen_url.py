"""Issue 11, point 5: ``make run`` prints the URL the portal really listens on, as
``ijp-admin INI url`` reads it from the ini: [server:main]'s listen (or host and port,
or its Unix socket, as Apache names it) and ijp.prefix; a malformed prefix is refused naming the setting."""

import pytest

from ijpweb.admin import main

from ..conftest import ROOT


def ini(tmp_path, server: str, prefix: str = "") -> str:
    path = tmp_path / "portal.ini"
    path.write_text(
        f"[app:main]\nuse = egg:ijpweb\nijp.prefix = {prefix}\n\n[server:main]\nuse = egg:waitress#main\n{server}\n"
    )
    return str(path)


@pytest.mark.parametrize(
    "server, prefix, url",
    [("listen = 127.0.0.1:6543", "", "http://127.0.0.1:6543/"),
     ("listen = 127.0.0.1:8080 [::1]:8080", "/ijp", "http://127.0.0.1:8080/ijp/"),
     ("listen = *:7000", "/facility/ijp", "http://127.0.0.1:7000/facility/ijp/"),
     ("listen = 0.0.0.0:7001", "/", "http://127.0.0.1:7001/"),
     ("host = 10.1.2.3\nport = 9000", "", "http://10.1.2.3:9000/"),
     ("listen = portal.example.org:443\nurl_scheme = https", "/ijp", "https://portal.example.org:443/ijp/"),
     ("unix_socket = /run/ijpweb/main.sock\nunix_socket_perms = 660", "/ijp", "unix:/run/ijpweb/main.sock|http://localhost/ijp/")],
)  # fmt: skip
def test_the_url_comes_from_the_ini(tmp_path, capsys, server, prefix, url):
    assert main([ini(tmp_path, server, prefix), "url"]) == 0
    assert capsys.readouterr().out == url + "\n"


def test_the_shipped_inis(capsys):
    for name in ("development.ini", "production.ini"):
        assert main([str(ROOT / name), "url"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "http://127.0.0.1:6543/",
        "unix:/run/ijpweb/main.sock|http://localhost/ijp/",
    ]


def test_a_malformed_prefix_is_named(tmp_path, capsys):
    assert main([ini(tmp_path, "listen = 127.0.0.1:6543", "ijp/"), "url"]) == 1
    assert capsys.readouterr().err.startswith("url: ijp.prefix must be empty (the root) or a path like /ijp")
