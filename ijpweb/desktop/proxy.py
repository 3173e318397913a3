"""The desktop proxy: the browser's websocket to an interactive job's VNC server.

The browser (noVNC, the viewer page /jobs/{id}/desktop) opens ``{prefix}/desktop/ws/{id}``
with the ``ijp_desktop`` cookie the page set. Before the upgrade the proxy checks the
cookie's token (ijpweb.desktop.tokens: the job's, unexpired, of its owner's live browser
login, the desktop ready) and that the page is the one that minted the token (Origin is
exactly the origin recorded with the token: scheme, host and port, so a page on another
port of the portal's host, which gets the cookie too, opens nothing; and Origin's host name
is the Host's); anything else is refused with a short plain text (403/404/429). Then it connects
to the job's VNC server (the Desktop row's host and port), answers its VNC authentication
with the session's password (the backend's ``desktop_password``), offers the browser
security type None, and copies bytes both ways. It counts viewers in the Desktop row
(+1/-1, and ``viewer_seen_at`` every 30 s) and checks the token again every 30 s, closing
the websocket when the login, the token or the desktop has ended.

Run it inside the portal (``ijp.desktop.proxy = embedded``: a daemon thread, started by
ijpweb.main) or on its own (``external``): ``ijp-desktop-proxy production.ini``
(deploy/systemd/ijp-desktop-proxy.service). It logs who opened which job's desktop; never
a token, a cookie, a password, or where the VNC server listens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from . import rfb
from .tokens import CROSS_SITE, Grant, Refused, check, count_viewer, same_site, still_viewed

log = logging.getLogger(__name__)

HANDSHAKE_SECONDS = 10.0  # the VNC server's and the browser's openings, each
CHECK_SECONDS = 30.0  # the token checked again, and viewer_seen_at refreshed, this often
MAX_PER_DESKTOP = 4  # viewers of one desktop at once (this proxy process)
MAX_PER_USER = 8  # websockets of one user at once (this proxy process)
CHUNK = 1 << 16
DID_NOT_ANSWER = "the desktop did not answer: try again in a moment, or end the session and start a new one"

PasswordOf = Callable[[str, str], str]  # (backend name, backend job id) -> the VNC password


class _QuietLogger(logging.LoggerAdapter):
    """websockets' logger, without its DEBUG lines: they would show the request's headers,
    the Cookie with the token among them."""

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802  (logging's name)
        return level > logging.DEBUG and self.logger.isEnabledFor(level)

    def debug(self, *args, **kwargs) -> None:
        return None


def _no_subprotocol_needed(connection, offered):
    # noVNC may offer "binary" (older ones did); offering nothing is as good
    return "binary" if "binary" in offered else None


def _os_words(e: BaseException) -> str:
    """What failed, without the address an OSError's text carries."""
    if isinstance(e, OSError):
        return e.strerror or type(e).__name__
    if isinstance(e, TimeoutError):
        return "no answer in time"
    return str(e) or type(e).__name__


def _only(headers, name: str) -> str | None:
    """The header's value if the request has it once (twice is no answer: refused)."""
    values = headers.get_all(name)
    return values[0] if len(values) == 1 else None


class _Frames:
    """The browser's binary messages as a byte stream (the RFB opening reads by length)."""

    def __init__(self, ws: ServerConnection):
        self.ws, self.buffer = ws, bytearray()

    async def read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            message = await self.ws.recv()
            if isinstance(message, str):
                raise rfb.RFBError("the browser sent text, not RFB")
            self.buffer += message
        out = bytes(self.buffer[:n])
        del self.buffer[:n]
        return out

    async def write(self, data: bytes) -> None:
        await self.ws.send(data)


class DesktopProxy:
    """The websocket server's logic; :meth:`serve` starts it on a loop."""

    def __init__(
        self,
        session_factory,
        prefix: str,
        password_of: PasswordOf,
        *,
        max_per_desktop: int = MAX_PER_DESKTOP,
        max_per_user: int = MAX_PER_USER,
        handshake_seconds: float = HANDSHAKE_SECONDS,
        check_seconds: float = CHECK_SECONDS,
    ):
        self.session_factory = session_factory
        self.path = re.compile(re.escape(prefix) + r"/desktop/ws/([1-9][0-9]{0,17})")
        self.password_of = password_of
        self.max_per_desktop, self.max_per_user = max_per_desktop, max_per_user
        self.handshake_seconds, self.check_seconds = handshake_seconds, check_seconds
        self.per_desktop: Counter[int] = Counter()
        self.per_user: Counter[str] = Counter()

    # --- the database (blocking: always through asyncio.to_thread) ---

    def _check(self, cookie: str | None, job_id: int, origin: str | None) -> Grant:
        with self.session_factory() as db:
            return check(db, cookie, job_id, origin)

    def _recheck(self, grant: Grant) -> Grant:
        with self.session_factory() as db, db.begin():
            return still_viewed(db, grant)

    def _count(self, job_id: int, delta: int) -> int:
        with self.session_factory() as db, db.begin():
            return count_viewer(db, job_id, delta)

    # --- before the upgrade ---

    async def process_request(self, connection: ServerConnection, request):
        path = request.path.partition("?")[0]
        match = self.path.fullmatch(path)
        if match is None:
            return connection.respond(404, "Not Found\n")
        job_id = int(match.group(1))
        origin = _only(request.headers, "Origin")
        if not same_site(origin, _only(request.headers, "Host")):
            log.info("desktop of job %d: a websocket from another site (or none) was refused", job_id)
            return connection.respond(403, CROSS_SITE + "\n")
        cookie = "; ".join(request.headers.get_all("Cookie"))
        try:
            grant = await asyncio.to_thread(self._check, cookie, job_id, origin)
        except Refused as e:
            log.info("desktop of job %d: a websocket was refused: %s", job_id, e)
            return connection.respond(e.status, f"{e}\n")
        except SQLAlchemyError as e:
            log.error("desktop of job %d: the database could not be asked: %s", job_id, type(e).__name__)
            return connection.respond(503, "the portal's database did not answer: try again in a moment\n")
        refusal = self._too_many(grant)
        if refusal:
            return connection.respond(429, refusal + "\n")
        connection.ijp_grant = grant  # (for handler)
        return None

    def _too_many(self, grant: Grant) -> str | None:
        if self.per_desktop[grant.job_id] >= self.max_per_desktop:
            return (
                f"this desktop has {self.max_per_desktop} viewers already, the most allowed: close one first"
            )
        if self.per_user[grant.owner] >= self.max_per_user:
            return f"you have {self.max_per_user} desktop viewers open already, the most allowed: close one first"
        return None

    # --- after it ---

    async def handler(self, ws: ServerConnection) -> None:
        grant: Grant = ws.ijp_grant
        refusal = self._too_many(grant)  # (again: others may have opened since)
        if refusal:
            await ws.close(1013, refusal[:120])
            return
        self.per_desktop[grant.job_id] += 1
        self.per_user[grant.owner] += 1
        try:
            await self._session(ws, grant)
        finally:
            self.per_desktop[grant.job_id] -= 1
            self.per_user[grant.owner] -= 1
            self.per_desktop += Counter()  # (drops the zeros)
            self.per_user += Counter()

    async def _open_vnc(self, grant: Grant):
        password = await asyncio.to_thread(self.password_of, grant.backend, grant.backend_job_id)
        reader, writer = await asyncio.open_connection(grant.host, grant.port)
        try:
            await rfb.authenticate(reader, writer, password)
        except BaseException:
            writer.close()
            raise
        return reader, writer

    async def _session(self, ws: ServerConnection, grant: Grant) -> None:
        job = grant.job_id
        browser = _Frames(ws)
        # the VNC server's opening, unless the browser goes first (a reload): then its
        # viewer's place is free at once, not when the opening ends
        opening = asyncio.create_task(asyncio.wait_for(self._open_vnc(grant), self.handshake_seconds))
        gone = asyncio.create_task(ws.wait_closed())
        await asyncio.wait({opening, gone}, return_when=asyncio.FIRST_COMPLETED)
        gone.cancel()
        if not opening.done():
            opening.cancel()
            await asyncio.gather(opening, return_exceptions=True)
            log.info("desktop of job %d: the browser left before its VNC server answered", job)
            return
        try:
            reader, writer = opening.result()
        except Exception as e:  # (any: the browser is told, the log says what)
            log.warning("desktop of job %d: its VNC server could not be reached: %s", job, _os_words(e))
            with contextlib.suppress(rfb.RFBError, ConnectionClosed, TimeoutError):
                await asyncio.wait_for(rfb.offer_none(browser.read, browser.write, DID_NOT_ANSWER), 5)
            await ws.close(1011, "the desktop did not answer")
            return
        try:
            try:
                await asyncio.wait_for(rfb.offer_none(browser.read, browser.write), self.handshake_seconds)
            except (rfb.RFBError, ConnectionClosed, TimeoutError) as e:
                log.info("desktop of job %d: the browser's opening failed: %s", job, _os_words(e))
                await ws.close(1002, "RFB opening failed")
                return
            try:
                viewers = await asyncio.to_thread(self._count, job, +1)
            except SQLAlchemyError as e:
                log.error("desktop of job %d: its viewers could not be counted: %s", job, type(e).__name__)
                await ws.close(1011, "the portal's database did not answer")
                return
            started = time.monotonic()
            log.info("desktop of job %d opened by %s (%d viewer%s now)", job, grant.owner, viewers,
                     "" if viewers == 1 else "s")  # fmt: skip
            why = "the connection was lost"
            try:
                why = await self._splice(ws, grant, browser.buffer, reader, writer)
            finally:
                try:
                    viewers = await asyncio.to_thread(self._count, job, -1)
                except SQLAlchemyError as e:
                    log.error("desktop of job %d: its viewer was not counted out: %s", job, type(e).__name__)
                    viewers = -1
                minutes = (time.monotonic() - started) / 60
                log.info("desktop of job %d closed by %s after %s (%s; %s)", job, grant.owner,
                         f"{minutes:.0f} min" if minutes >= 1 else f"{minutes * 60:.0f} s", why,
                         f"{viewers} viewer{'' if viewers == 1 else 's'} now" if viewers >= 0 else "viewers unknown")  # fmt: skip
        finally:
            writer.close()

    async def _splice(self, ws, grant: Grant, pending: bytearray, reader, writer) -> str:
        """Copy bytes both ways until one side ends or the grant does; returns why, in words."""

        async def to_vnc() -> str:
            if pending:
                writer.write(bytes(pending))
            try:
                async for message in ws:
                    if isinstance(message, str):
                        await ws.close(1003, "binary frames only")
                        return "the browser sent text"
                    writer.write(message)
                    await writer.drain()
            except ConnectionClosed:
                pass
            return "the browser closed it"

        async def to_browser() -> str:
            while chunk := await reader.read(CHUNK):
                await ws.send(chunk)
            await ws.close(1000, "the desktop has ended")
            return "the desktop's VNC server closed it"

        async def watch() -> str:
            while True:
                await asyncio.sleep(self.check_seconds)
                try:
                    await asyncio.to_thread(self._recheck, grant)
                except Refused as e:
                    ended_by_proxy.append(f"closed by the proxy: {e}")  # (before the others see the close)
                    await ws.close(1008, str(e)[:120])
                    return ended_by_proxy[0]
                except SQLAlchemyError as e:
                    log.warning("desktop of job %d: could not check its token again: %s", grant.job_id,
                                type(e).__name__)  # fmt: skip

        ended_by_proxy: list[str] = []
        tasks = [asyncio.create_task(t()) for t in (to_vnc, to_browser, watch)]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            first = done.pop()
            try:
                return ended_by_proxy[0] if ended_by_proxy else first.result()
            except (ConnectionClosed, OSError) as e:
                return f"the connection was lost ({_os_words(e)})"
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def serve(self, host: str, port: int, **kwargs):
        """The websocket server (an async context manager, as websockets' serve is)."""
        return serve(
            self.handler,
            host,
            port,
            process_request=self.process_request,
            select_subprotocol=_no_subprotocol_needed,
            compression=None,  # (RFB's encodings compress; deflate again would cost CPU for little)
            max_size=1 << 20,
            open_timeout=self.handshake_seconds,
            logger=_QuietLogger(logging.getLogger("ijpweb.desktop.websockets"), {}),
            **kwargs,
        )


# --- running it -----------------------------------------------------------------------------------


def backend_passwords(backends) -> PasswordOf:
    """The VNC password of a job through its backend (``desktop_password``)."""

    def password_of(backend: str, backend_job_id: str) -> str:
        found = backends.get(backend)
        ask = getattr(found, "desktop_password", None)
        if ask is None:
            raise LookupError(f"the backend {backend} runs no desktops (or is no longer configured)")
        return ask(backend_job_id)

    return password_of


def from_settings(settings, engine, backends, **kwargs) -> DesktopProxy:
    """A proxy for the parsed settings (ijpweb.settings.Settings), the jobs database's engine
    and the configured backends."""
    from ..models import get_session_factory

    return DesktopProxy(get_session_factory(engine), settings.prefix, backend_passwords(backends), **kwargs)


@dataclass
class Running:
    """A proxy serving on its own thread and loop (embedded mode, and tests)."""

    port: int
    loop: asyncio.AbstractEventLoop
    thread: threading.Thread
    stopped: asyncio.Event

    def stop(self, timeout: float = 10) -> None:
        self.loop.call_soon_threadsafe(self.stopped.set)
        self.thread.join(timeout)


def run_in_thread(proxy: DesktopProxy, host: str, port: int) -> Running:
    """Serve ``proxy`` on host:port from a daemon thread; OSError when it cannot listen
    there (the port is taken)."""
    started = threading.Event()
    outcome: dict = {}

    async def run():
        stopped = asyncio.Event()
        try:
            server = await proxy.serve(host, port)
        except OSError as e:
            outcome["error"] = e
            started.set()
            return
        outcome["port"] = server.sockets[0].getsockname()[1]
        outcome["stopped"] = stopped
        outcome["loop"] = asyncio.get_running_loop()
        started.set()
        try:
            await stopped.wait()
        finally:
            server.close()
            await server.wait_closed()

    thread = threading.Thread(target=asyncio.run, args=(run(),), name="ijp-desktop-proxy", daemon=True)
    thread.start()
    started.wait(30)
    if "error" in outcome:
        raise outcome["error"]
    if "port" not in outcome:
        raise OSError("the desktop proxy did not start within 30 s")
    return Running(outcome["port"], outcome["loop"], thread, outcome["stopped"])


def main(argv: list[str] | None = None) -> int:
    """``ijp-desktop-proxy INI``: the proxy on ``ijp.desktop.listen`` until SIGTERM/SIGINT."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] in ("-h", "--help"):
        print("usage: ijp-desktop-proxy INI\n  the desktop proxy of interactive jobs, on ijp.desktop.listen",
              file=sys.stderr)  # fmt: skip
        return 2
    from pyramid.paster import get_appsettings, setup_logging

    from ..batch.registry import backends_from_settings
    from ..models import get_engine
    from ..settings import SettingError, apply_environment, parse

    ini = args[0]
    setup_logging(ini)
    try:
        raw = dict(get_appsettings(ini))
        apply_environment(raw)
        settings = parse(raw)
        backends = backends_from_settings(settings)
    except (SettingError, ValueError, OSError) as e:
        print(f"ijp-desktop-proxy: {e}", file=sys.stderr)
        return 2
    engine = get_engine(raw)
    proxy = from_settings(settings, engine, backends)
    host, port = settings.desktop.listen_host, settings.desktop.listen_port

    async def run() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            server = await proxy.serve(host, port)
        except OSError as e:
            log.error(
                "the desktop proxy cannot listen on %s:%d (ijp.desktop.listen): %s", host, port, e.strerror
            )
            return 1
        log.info("the desktop proxy listens on %s:%d (ijp.desktop.listen)", host, port)
        try:
            await stop.wait()
        finally:
            server.close()
            await server.wait_closed()
        log.info("the desktop proxy stopped")
        return 0

    try:
        return asyncio.run(run())
    finally:
        engine.dispose()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
