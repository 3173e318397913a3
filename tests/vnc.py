"""A real VNC server for the desktop proxy's tests: Xvfb (a private display found with
-displayfd, no TCP) and x11vnc on it, on a free loopback port, with a password read from
a file it removes (as the job's supervisor runs them), and optionally a program on the
display. Skips with the reason where Xvfb or x11vnc is not installed."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import string
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import free_port

XVFB = shutil.which("Xvfb")
X11VNC = shutil.which("x11vnc")
WHY_NO_VNC = (
    None
    if XVFB and X11VNC
    else f"{'Xvfb' if not XVFB else 'x11vnc'} is not installed (apt-get install xvfb x11vnc)"
)


def vnc_password() -> str:
    """8 random characters of [A-Za-z0-9], as the portal writes desktop.secret."""
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(8))


@dataclass
class Vnc:
    host: str
    port: int
    password: str
    display: int


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@contextlib.contextmanager
def vnc_server(program: list[str] | None = None, geometry: str = "640x480", password: str | None = None):
    """Xvfb + x11vnc (+ ``program``) until the block ends; yields a :class:`Vnc`."""
    if WHY_NO_VNC:
        pytest.skip(WHY_NO_VNC)
    password = password or vnc_password()
    procs: list[subprocess.Popen] = []
    with tempfile.TemporaryDirectory(prefix="ijp-vnc-") as tmp:
        read, write = os.pipe()
        try:
            xvfb = subprocess.Popen(
                [XVFB, "-displayfd", str(write), "-nolisten", "tcp", "-screen", "0", f"{geometry}x24"],
                pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
            procs.append(xvfb)
            os.close(write)
            with os.fdopen(read) as f:
                display = int(f.readline().strip())
            env = {**os.environ, "DISPLAY": f":{display}"}
            env.pop("XAUTHORITY", None)
            if program:
                procs.append(
                    subprocess.Popen(
                        program,
                        env=env,
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                        start_new_session=True,
                    )  # fmt: skip
                )
            secret = Path(tmp) / "passwd"
            secret.write_text(password + "\n")
            secret.chmod(0o600)
            port = free_port()
            with open(Path(tmp) / "x11vnc.log", "wb") as log:
                x11vnc = subprocess.Popen(
                    [X11VNC, "-display", f":{display}", "-rfbport", str(port), "-passwdfile", f"rm:{secret}",
                     "-localhost", "-forever", "-shared", "-quiet", "-nopw"],
                    env=env, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
                )  # fmt: skip
            procs.append(x11vnc)
            deadline = time.monotonic() + 30
            while True:
                if x11vnc.poll() is not None:
                    pytest.fail(
                        f"x11vnc exited: {(Path(tmp) / 'x11vnc.log').read_text(errors='replace')[-2000:]}"
                    )
                with socket.socket() as s, contextlib.suppress(OSError):
                    s.settimeout(2)
                    s.connect(("127.0.0.1", port))
                    if s.recv(12).startswith(b"RFB "):
                        break
                assert time.monotonic() < deadline, "x11vnc did not answer within 30 s"
                time.sleep(0.1)
            yield Vnc("127.0.0.1", port, password, display)
        finally:
            for proc in reversed(procs):
                _stop(proc)


class Viewer:
    """RFB over a websocket (the desktop proxy's), as noVNC speaks it: no password asked
    (the proxy answers the VNC server's), then the display's size and framebuffer updates."""

    def __init__(self, ws):
        self.ws, self.buffer = ws, bytearray()

    def read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            message = self.ws.recv(timeout=20)
            assert isinstance(message, bytes)
            self.buffer += message
        out = bytes(self.buffer[:n])
        del self.buffer[:n]
        return out

    def open(self) -> tuple[int, int]:
        assert self.read(12) == b"RFB 003.008\n"
        self.ws.send(b"RFB 003.008\n")
        assert self.read(2) == b"\x01\x01"  # one security type: None (no password asked)
        self.ws.send(b"\x01")
        assert self.read(4) == b"\0\0\0\0"  # SecurityResult OK
        self.ws.send(b"\x01")  # ClientInit, shared
        width, height = struct.unpack(">HH", self.read(4))
        self.read(16)
        (length,) = struct.unpack(">I", self.read(4))
        self.read(length)
        return width, height

    def frame(self, width: int, height: int) -> int:
        """A full FramebufferUpdateRequest; the update's rectangle count."""
        self.ws.send(struct.pack(">BBHHHH", 3, 0, 0, 0, width, height))
        assert self.read(1) == b"\0"  # FramebufferUpdate
        self.read(1)
        (rects,) = struct.unpack(">H", self.read(2))
        return rects
