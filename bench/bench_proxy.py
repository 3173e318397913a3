"""What ijpweb.proxy (the prefix and the trusted proxy's headers) costs each request.

Times the wrapper around an application that does nothing, so that only the wrapper is
measured: a request straight from a browser (its X-Forwarded-* headers dropped) and one
from a trusted proxy with all of them (client address, https, host, port, prefix); and
the same two with production.ini's ``ijp.trusted_proxies = unix`` (Apache on the portal's
Unix socket; a TCP client, such as a job on the host, untrusted).
Prints microseconds per request, the best of five runs of 100,000.
"""

import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ijpweb.proxy import Mount, parse_networks  # noqa: E402

N, RUNS = 100_000, 5


def nothing(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b""]


def ignore(status, headers, exc_info=None):
    return None


def per_request(app, environ) -> float:
    best = min(timeit.repeat(lambda: app(dict(environ), ignore), number=N, repeat=RUNS))
    return best / N * 1e6


def main() -> None:
    base = {"SCRIPT_NAME": "", "PATH_INFO": "/ijp/jobs/12", "QUERY_STRING": "", "HTTP_HOST": "portal:6543",
            "wsgi.url_scheme": "http"}  # fmt: skip
    forwarded = {"HTTP_X_FORWARDED_FOR": "203.0.113.7", "HTTP_X_FORWARDED_PROTO": "https",
                 "HTTP_X_FORWARDED_HOST": "ijp.example.org", "HTTP_X_FORWARDED_PORT": "443",
                 "HTTP_X_FORWARDED_PREFIX": "/ijp"}  # fmt: skip
    mounted = Mount(nothing, "/ijp", parse_networks("127.0.0.1 ::1 10.0.0.0/8"))
    # production.ini's: Apache on the portal's Unix socket (waitress's REMOTE_ADDR for it)
    on_socket = Mount(nothing, "/ijp", parse_networks("unix"))
    bare = per_request(nothing, base | {"REMOTE_ADDR": "127.0.0.1"})
    rows = [
        ("the application alone", bare),
        ("mounted, a browser's request (headers dropped)", per_request(mounted, base | forwarded | {"REMOTE_ADDR": "192.0.2.9"})),
        ("mounted, from a trusted proxy with every header", per_request(mounted, base | forwarded | {"REMOTE_ADDR": "127.0.0.1"})),
        ("unix trusted, a TCP client's request (dropped)", per_request(on_socket, base | forwarded | {"REMOTE_ADDR": "127.0.0.1"})),
        ("unix trusted, Apache on the socket, every header", per_request(on_socket, base | forwarded | {"REMOTE_ADDR": "localhost"})),
    ]  # fmt: skip
    for name, us in rows:
        print(f"{name:50} {us:7.2f} us per request")


if __name__ == "__main__":
    main()
