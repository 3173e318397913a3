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
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

XVFB = shutil.which("Xvfb")
X11VNC = shutil.which("x11vnc")
WHY_NO_VNC = (
    None
    if XVFB and X11VNC
    else f"{'Xvfb' if not XVFB else 'x11vnc'} is not installed (apt-get install xvfb x11vnc)"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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
