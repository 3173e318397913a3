"""Issue 11, points 1 and 6: ijpweb.proxy, the WSGI wrapper that mounts the portal at its
prefix and believes X-Forwarded-* headers only from the proxies it trusts. Driven through
WebTest with an application that shows what it was given."""

import ipaddress
import json

import pytest
import webtest
from hypothesis import given
from hypothesis import strategies as st

from ijpweb.proxy import (
    CONTENT_SECURITY_POLICY,
    UNIX,
    Mount,
    SettingError,
    loopback,
    loopback_warnings,
    parse_networks,
    parse_prefix,
    valid_prefix,
)

PROXY = "127.0.0.1"


def echo(environ, start_response):
    """What the portal would see."""
    keys = (
        "SCRIPT_NAME",
        "PATH_INFO",
        "REMOTE_ADDR",
        "HTTP_HOST",
        "wsgi.url_scheme",
        "QUERY_STRING",
    )
    seen = {k: environ.get(k) for k in keys}
    seen["forwarded"] = sorted(k for k in environ if "FORWARDED" in k)
    body = json.dumps(seen).encode()
    start_response(
        "200 OK",
        [("Content-Type", "application/json"), ("Content-Length", str(len(body)))],
    )
    return [body]


def framed(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/html"), ("X-Frame-Options", "SAMEORIGIN")])
    return [b"<p>"]


def client(prefix="/ijp", trusted=PROXY, app=echo, remote=PROXY):
    return webtest.TestApp(Mount(app, prefix, parse_networks(trusted)),
                           extra_environ={"REMOTE_ADDR": remote, "HTTP_HOST": "backend:6543"})  # fmt: skip


def test_the_prefix_is_moved_from_the_path_to_script_name():
    app = client()
    seen = app.get("/ijp/jobs/12", {"a": "1"}).json
    assert (seen["SCRIPT_NAME"], seen["PATH_INFO"], seen["QUERY_STRING"]) == (
        "/ijp",
        "/jobs/12",
        "a=1",
    )
    assert app.get("/ijp/").json["PATH_INFO"] == "/"
    # /ijp itself goes to /ijp/ (its query kept); anything outside the prefix is not the portal
    assert app.get("/ijp", status=301).headers["Location"] == "/ijp/"
    assert app.get("/ijp?next=/ijp/jobs", status=301).headers["Location"] == "/ijp/?next=/ijp/jobs"
    for outside in ("/", "/jobs", "/ijpx", "/ijpx/jobs", "/api/v1/jobs", "/IJP/jobs"):
        res = app.get(outside, status=404)
        assert res.content_type == "text/plain" and "the portal is at /ijp/" in res.text


def test_a_server_that_mounted_the_app_itself_is_left_as_it_is():
    app = client()
    seen = app.get("/jobs", extra_environ={"SCRIPT_NAME": "/ijp"}).json
    assert (seen["SCRIPT_NAME"], seen["PATH_INFO"]) == ("/ijp", "/jobs")


def test_at_the_root_nothing_moves():
    seen = client(prefix="").get("/ijp/rest/jm/jobtype").json
    assert (seen["SCRIPT_NAME"], seen["PATH_INFO"]) == ("", "/ijp/rest/jm/jobtype")


def test_a_trusted_proxy_says_what_the_client_asked_for():
    headers = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https",
               "X-Forwarded-Host": "portal.example.org", "X-Forwarded-Prefix": "/facility/ijp"}  # fmt: skip
    seen = client().get("/ijp/jobs", headers=headers).json
    assert seen["REMOTE_ADDR"] == "203.0.113.7" and seen["wsgi.url_scheme"] == "https"
    assert seen["HTTP_HOST"] == "portal.example.org"
    assert (seen["SCRIPT_NAME"], seen["PATH_INFO"]) == ("/facility/ijp", "/jobs")
    # the redirect to the prefix's slash uses the public prefix, and so does the 404
    assert client().get("/ijp", headers=headers, status=301).headers["Location"] == "/facility/ijp/"
    assert "the portal is at /facility/ijp/" in client().get("/elsewhere", headers=headers, status=404).text


def test_lists_count_from_the_right_past_trusted_proxies():
    app = client(trusted="127.0.0.1 10.0.0.0/8")
    # the client may write anything at the left of the list; the nearest proxies append
    xff = "6.6.6.6, 198.51.100.4, 10.1.2.3"
    seen = app.get("/ijp/", headers={"X-Forwarded-For": xff, "X-Forwarded-Proto": "http, https",
                                     "X-Forwarded-Host": "evil.example, portal.example.org"}).json  # fmt: skip
    assert seen["REMOTE_ADDR"] == "198.51.100.4"
    assert seen["wsgi.url_scheme"] == "https" and seen["HTTP_HOST"] == "portal.example.org"
    # not an address: the walk stops at the last proxy it trusts
    assert app.get("/ijp/", headers={"X-Forwarded-For": "junk, 10.1.2.3"}).json["REMOTE_ADDR"] == "10.1.2.3"


def test_the_port_goes_with_the_host():
    app = client()
    port = app.get("/ijp/", headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "portal.example.org",
                                     "X-Forwarded-Port": "8443"}).json  # fmt: skip
    assert port["HTTP_HOST"] == "portal.example.org:8443"
    default = app.get("/ijp/", headers={"X-Forwarded-Proto": "https", "X-Forwarded-Host": "portal.example.org",
                                        "X-Forwarded-Port": "443"}).json  # fmt: skip
    assert default["HTTP_HOST"] == "portal.example.org"


@pytest.mark.parametrize(
    "header, value",
    [("X-Forwarded-Proto", "javascript"), ("X-Forwarded-Host", "evil.example/path"),
     ("X-Forwarded-Host", "a b"), ("X-Forwarded-Host", "x@evil.example"), ("X-Forwarded-Prefix", "/a/../b"),
     ("X-Forwarded-Prefix", "//evil.example"), ("X-Forwarded-Prefix", "/x;y"), ("X-Forwarded-Port", "99999"),
     ("X-Forwarded-Port", "8x")],
)  # fmt: skip
def test_bad_values_from_a_trusted_proxy_are_ignored(header, value):
    seen = client().get("/ijp/jobs", headers={header: value}).json
    assert seen["wsgi.url_scheme"] == "http" and seen["HTTP_HOST"] == "backend:6543"
    assert (seen["SCRIPT_NAME"], seen["PATH_INFO"]) == ("/ijp", "/jobs")


def test_forged_headers_from_anyone_else_are_dropped():
    """carol, connecting directly, says she is https, another host, another prefix and
    another address: the portal sees none of it."""
    headers = {"X-Forwarded-For": "127.0.0.1", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example",
               "X-Forwarded-Prefix": "/evil", "X-Forwarded-Port": "8443", "Forwarded": "for=127.0.0.1;proto=https"}  # fmt: skip
    for app in (client(remote="192.0.2.66"), client(trusted="", remote="127.0.0.1")):
        seen = app.get("/ijp/jobs", headers=headers).json
        assert seen["REMOTE_ADDR"] in ("192.0.2.66", "127.0.0.1") and seen["wsgi.url_scheme"] == "http"
        assert seen["HTTP_HOST"] == "backend:6543" and seen["SCRIPT_NAME"] == "/ijp"
        assert seen["forwarded"] == []  # nothing later can read them by mistake
        assert app.get("/ijp", headers=headers, status=301).headers["Location"] == "/ijp/"


def test_every_response_says_how_it_may_be_used():
    for res in (
        client().get("/ijp/"),
        client().get("/nowhere", status=404),
        client().get("/ijp", status=301),
    ):
        assert res.headers["X-Content-Type-Options"] == "nosniff"
        assert res.headers["Referrer-Policy"] == "same-origin"
        assert res.headers["X-Frame-Options"] == "DENY"
        assert res.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
        assert "frame-ancestors 'none'" in res.headers["Content-Security-Policy"]
    # a response that says it itself keeps its own
    assert client(app=framed).get("/ijp/").headers.getall("X-Frame-Options") == ["SAMEORIGIN"]


def test_the_app_underneath_is_reachable():
    class App:
        registry = {"x": 1}

        def __call__(self, environ, start_response):
            return echo(environ, start_response)

    assert Mount(App(), "/ijp").registry == {"x": 1}


@pytest.mark.parametrize("text", ["ijp", "/ijp/", "ijp/", "/ij p", "/ijp;x", "/ijp?x", "/ijp#x", "/%69jp",
                                  "/../etc", "/a/./b", "//ijp", "/ijp\n/x", "/ïjp", "/a//b", "\\ijp"])  # fmt: skip
def test_a_malformed_prefix_is_refused_naming_the_setting(text):
    with pytest.raises(
        SettingError,
        match=r"^ijp\.prefix must be empty \(the root\) or a path like /ijp",
    ):
        parse_prefix(text)


def test_good_prefixes():
    assert [parse_prefix(t) for t in ("", " ", "/", "/ijp", " /ijp ", "/facility/ijp-2.0_x~")] == [
        "", "", "", "/ijp", "/ijp", "/facility/ijp-2.0_x~"]  # fmt: skip


def test_trusted_proxies_are_addresses_or_networks():
    assert [str(n) for n in parse_networks("127.0.0.1, ::1\n10.0.0.0/8")] == [
        "127.0.0.1/32",
        "::1/128",
        "10.0.0.0/8",
    ]
    with pytest.raises(
        SettingError,
        match=r"^ijp\.trusted_proxies: 'localhost' is not an IP address or network",
    ):
        parse_networks("127.0.0.1 localhost")


@given(st.text(max_size=40))
def test_whatever_is_accepted_is_a_safe_path(text):
    """Hypothesis: an accepted prefix can go in a cookie path, a Location header and an
    Apache directive as it is, and the portal is reached below it."""
    try:
        prefix = parse_prefix(text)
    except SettingError:
        assert text.strip() not in ("", "/") and not valid_prefix(text.strip())
        return
    assert prefix == "" or (prefix.startswith("/") and not prefix.endswith("/") and "//" not in prefix)
    assert all(c.isascii() and (c.isalnum() or c in "/-._~") for c in prefix)
    seen = client(prefix=prefix).get(prefix + "/jobs").json
    assert (seen["SCRIPT_NAME"], seen["PATH_INFO"]) == (prefix, "/jobs")


# --- "unix": the portal's Unix socket is the proxy (part X's finding 4) ---------------------------

FORGED = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "portal.example.org",
          "X-Forwarded-Prefix": "/facility/ijp"}  # fmt: skip


def test_unix_is_a_trusted_proxy_of_its_own():
    assert parse_networks("unix") == (UNIX,)
    assert [str(n) for n in parse_networks("UNIX, 10.0.0.5 unix")] == ["unix", "10.0.0.5/32"]
    with pytest.raises(
        SettingError, match=r"^ijp\.trusted_proxies: 'unix:/run/x' is not an IP address .*nor unix"
    ):
        parse_networks("unix:/run/x")


@pytest.mark.parametrize("remote", ["localhost", ""])  # waitress's and gunicorn's Unix-socket peer
def test_a_connection_on_the_unix_socket_says_what_the_client_asked_for(remote):
    seen = client(trusted="unix", remote=remote).get("/ijp/jobs", headers=FORGED).json
    assert seen["REMOTE_ADDR"] == "203.0.113.7" and seen["wsgi.url_scheme"] == "https"
    assert seen["HTTP_HOST"] == "portal.example.org" and seen["SCRIPT_NAME"] == "/facility/ijp"


@pytest.mark.parametrize("remote", ["127.0.0.1", "::1", "::ffff:127.0.0.1", "10.0.0.5", "localhost.", "unix"])
def test_with_unix_trusted_no_tcp_peer_is_the_proxy(remote):
    """carol's job connects over TCP from this host: with ``unix`` trusted (production.ini)
    its X-Forwarded-* are dropped like anyone's."""
    seen = client(trusted="unix", remote=remote).get("/ijp/jobs", headers=FORGED).json
    assert seen["REMOTE_ADDR"] == remote and seen["wsgi.url_scheme"] == "http"
    assert seen["HTTP_HOST"] == "backend:6543" and seen["SCRIPT_NAME"] == "/ijp" and seen["forwarded"] == []


def test_without_unix_the_socket_is_no_proxy():
    for trusted in ("", "127.0.0.1 ::1"):
        seen = client(trusted=trusted, remote="localhost").get("/ijp/jobs", headers=FORGED).json
        assert (
            seen["REMOTE_ADDR"] == "localhost"
            and seen["wsgi.url_scheme"] == "http"
            and seen["forwarded"] == []
        )
    # a server that gives no REMOTE_ADDR at all is no proxy either
    app = Mount(echo, "/ijp", parse_networks("unix"))
    environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/ijp/", "SCRIPT_NAME": "", "HTTP_HOST": "backend:6543",
               "SERVER_NAME": "backend", "SERVER_PORT": "6543", "wsgi.url_scheme": "http",
               "HTTP_X_FORWARDED_PROTO": "https"}  # fmt: skip
    body = b"".join(app(environ, lambda status, headers, exc_info=None: None))
    assert json.loads(body)["wsgi.url_scheme"] == "http"


def test_behind_the_socket_the_list_counts_from_the_right_past_trusted_proxies():
    """Apache on the socket appends its client; a load balancer in front of Apache
    (10.0.0.0/8, trusted too) its own: the client is the first untrusted from the right."""
    app = client(trusted="unix 10.0.0.0/8", remote="localhost")
    assert (
        app.get("/ijp/", headers={"X-Forwarded-For": "6.6.6.6, 198.51.100.4"}).json["REMOTE_ADDR"]
        == "198.51.100.4"
    )
    xff = "6.6.6.6, 198.51.100.4, 10.1.2.3"
    assert app.get("/ijp/", headers={"X-Forwarded-For": xff}).json["REMOTE_ADDR"] == "198.51.100.4"
    # no list: the peer stays what the server said; junk: not taken
    assert app.get("/ijp/").json["REMOTE_ADDR"] == "localhost"
    assert app.get("/ijp/", headers={"X-Forwarded-For": "junk"}).json["REMOTE_ADDR"] == "localhost"


def test_loopback_addresses_are_found_in_what_is_trusted():
    assert loopback(parse_networks("unix 10.0.0.0/8 192.0.2.1 2001:db8::/32")) == []
    assert loopback(parse_networks("unix 127.0.0.1 ::1 127.1.2.3 ::ffff:127.0.0.1 0.0.0.0/0 ::/0 10.0.0.0/8")) == [
        "127.0.0.1/32", "::1/128", "127.1.2.3/32", "::ffff:7f00:1/128", "0.0.0.0/0", "::/0"]  # fmt: skip


@given(st.ip_addresses(), st.integers(min_value=0, max_value=128))
def test_every_trusted_network_holding_a_loopback_address_is_found(addr, bits):
    """Hypothesis: whatever network is trusted, it is reported exactly when 127.0.0.1,
    any 127.x, ::1 or an IPv4-mapped 127.x is in it."""
    net = ipaddress.ip_network(f"{addr}/{min(bits, addr.max_prefixlen)}", strict=False)
    holds = any(
        net.version == lo.version and (lo.network_address in net or net.network_address in lo)
        for lo in map(ipaddress.ip_network, ("127.0.0.0/8", "::1/128", "::ffff:127.0.0.0/104"))
    )
    assert (loopback([net]) == [str(net)]) == holds


def test_the_warnings_at_start():
    local = {"local": {"type": "local", "dir": "/var/lib/ijpweb/jobs"}}
    (said,) = loopback_warnings(parse_networks("127.0.0.1 ::1"), local)
    assert said.startswith("ijp.trusted_proxies trusts 127.0.0.1/32, ::1/128 (a loopback address")
    assert "ijp.trusted_proxies = unix" in said
    assert loopback_warnings(parse_networks("unix"), local) == []
    assert loopback_warnings(parse_networks("10.0.0.5"), local) == []  # (another host's Apache)
    assert loopback_warnings(parse_networks("127.0.0.1"), {"c": {"type": "slurm"}}) == []
    (said,) = loopback_warnings(parse_networks("unix"), {"local": {"type": "local", "sandbox": "none"}})
    assert "sandbox = none" in said and "can open the socket" in said
    both = loopback_warnings(parse_networks("unix 127.0.0.1"), {"l": {"type": "local", "sandbox": " None "}})
    assert len(both) == 2
