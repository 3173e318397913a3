"""The supervisor of an interactive job's desktop session (issue 14). It runs INSIDE the
job's sandbox, as the job's user, started by the launcher (runner.py) in the program's
place; the standard library only, run by path with the job's Python::

    python -I -S session.py --dir DESKTOP_DIR --geometry 1280x800 --time-limit 28800 \\
        --ready-timeout 60 --bind 127.0.0.1 --password-fd 5 -- PROGRAM ARGS...

The VNC password comes on a descriptor (``--password-fd``: a pipe the launcher wrote from
the job directory's ``desktop.secret``, which the sandbox does not show, and closed): it is
read and the descriptor closed before anything is started, so it is in no environment
(``/proc/PID/environ``) or argv, and neither the X server, the program nor the VNC server
inherits it.

1. Xvfb on the first free display (``-displayfd``), listening neither on TCP nor on the
   abstract socket (``-nolisten tcp -nolisten local``): only ``/tmp/.X11-unix/XN``, in the
   sandbox's private /tmp, with an X authority cookie made here (a wildcard entry in a
   0600 file in a private directory).
2. The program, with its argv and environment and ``DISPLAY``, ``XAUTHORITY``; its stderr
   is copied to the job's stderr (its last line names why it failed, for the end's reason).
3. x11vnc on that display, on a free port of the bind address (``-localhost`` for
   127.0.0.1, else ``-listen ADDR``), its password from a file it removes as it reads it
   (``-passwdfile rm:``), no rc file, no remote control, no commands.
4. Once x11vnc answers with an RFB banner: ``DIR/state.json`` (host, port, display,
   ready_at, ends_at, geometry). Not within ``--ready-timeout`` seconds: ``DIR/ended.json``
   ``{"failed": why}``, everything killed, exit code 3.
5. The session ends when the program exits (any code), at the time limit, when the X
   server or the VNC server stops, or on SIGTERM (the portal's End session, idle timeout,
   cancel): ``DIR/ended.json`` ``{"reason": ..., "at": ...}``, then SIGTERM to every
   process this supervisor started and whatever they started (it is their subreaper),
   SIGKILL after a grace. In a sandbox its PID namespace ends with it, so nothing stays.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time

PASSWORD_BYTES = 64  # more than any VNC password (8)
GRACE_SECONDS = 3.0
FAILED = 3  # the exit code when the desktop never came up
PORT_TRIES = 3  # a free port taken by another between our probe and x11vnc's bind
TAIL_BYTES = 4096  # of each helper's stderr kept, for the reason of a failure
REASON_CHARS = 300
X_DIRS = ("/usr/bin", "/usr/local/bin", "/bin")  # where Xvfb and x11vnc are looked for
PR_SET_PDEATHSIG, PR_SET_CHILD_SUBREAPER = 1, 36
X_SOCKETS = "/tmp/.X11-unix"  # noqa: S108 - where X servers' sockets are (the sandbox's own /tmp)
# display numbers tried, each drawn at random from MIN_DISPLAY..MAX_DISPLAY: Xvfb, Xlib, Tk
# and x11vnc take numbers that large (with no TCP: no port 6000+N), so no job can hold
# every name (a billion sockets) nor guess which one the next session takes
DISPLAY_TRIES, MIN_DISPLAY, MAX_DISPLAY = 64, 1000, 999_999_999


def now() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}+00:00"


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t))


def hms(seconds: int) -> str:
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def write_record(directory: str, name: str, data: dict) -> None:
    """``directory/name`` written whole (a temporary file renamed into place)."""
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "w") as fh:
        fh.write(json.dumps(data))
    os.replace(tmp, os.path.join(directory, name))


def find_program(name: str) -> str | None:
    for d in X_DIRS:
        path = os.path.join(d, name)
        if os.access(path, os.X_OK):
            return path
    return None


def xauth_entry(cookie: bytes) -> bytes:
    """An Xauthority file's one entry: MIT-MAGIC-COOKIE-1 for any address and display
    (FamilyWild, empty address and number), as the server (``-auth``) and the clients
    (``XAUTHORITY``) both read it."""

    def counted(b: bytes) -> bytes:
        return len(b).to_bytes(2, "big") + b

    return (
        (0xFFFF).to_bytes(2, "big")
        + counted(b"")
        + counted(b"")
        + counted(b"MIT-MAGIC-COOKIE-1")
        + counted(cookie)
    )


def _private_file(path: str, content: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(content)


class Tail:
    """The last bytes a child wrote to a pipe (optionally copied on to ``copy_to``)."""

    def __init__(self, fd: int, copy_to: int | None = None):
        self.fd, self.copy_to, self.data, self.open = fd, copy_to, b"", True

    def pump(self) -> None:
        try:
            chunk = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self.open = False
            return
        if self.copy_to is not None:
            try:
                os.write(self.copy_to, chunk)
            except OSError:
                self.copy_to = None
        self.data = (self.data + chunk)[-TAIL_BYTES:]

    def last_line(self) -> str:
        lines = [ln.strip() for ln in self.data.decode(errors="replace").splitlines() if ln.strip()]
        return lines[-1][:REASON_CHARS] if lines else ""


def _prctl():
    import ctypes

    return ctypes.CDLL(None, use_errno=True).prctl


def read_password(fd: int) -> str:
    """The VNC password on descriptor ``fd`` (a pipe whose writing end the launcher closed),
    "" when there is none; the descriptor is closed."""
    try:
        return os.read(fd, PASSWORD_BYTES).decode("ascii").strip()
    except (OSError, UnicodeDecodeError):
        return ""
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)


class Session:
    def __init__(self, opts: dict, command: list[str]):
        self.opts, self.command = opts, command
        self.dir = opts["dir"]
        self.geometry = opts["geometry"]
        self.time_limit = int(opts["time_limit"])
        self.ready_timeout = float(opts["ready_timeout"])
        self.bind = opts["bind"]
        self.started = time.time()
        self.deadline = time.monotonic() + self.ready_timeout
        self.children: dict[str, subprocess.Popen] = {}
        self.tails: dict[str, Tail] = {}
        self.stopping: str | None = None  # why, once a signal asked us to end
        self.prctl = _prctl()
        self.wake_r, self.wake_w = os.pipe()
        for fd in (self.wake_r, self.wake_w):
            os.set_blocking(fd, False)
        self.tmp = ""
        self.reserved: socket.socket | None = None  # the display's abstract name, held

    # --- the children --------------------------------------------------------------------

    def _die_with_me(self) -> None:  # in the child, before it execs
        self.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)

    def spawn(
        self, name: str, argv: list[str], env: dict, copy_stderr: bool = False, **kw
    ) -> subprocess.Popen:
        proc = subprocess.Popen(  # noqa: S603 - an argv list, no shell
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=kw.pop("stdout", subprocess.DEVNULL),
            stderr=subprocess.PIPE,
            preexec_fn=self._die_with_me,  # noqa: PLW1509 - no threads here
            **kw,
        )
        os.set_blocking(proc.stderr.fileno(), False)
        self.children[name] = proc
        self.tails[name] = Tail(proc.stderr.fileno(), 2 if copy_stderr else None)
        return proc

    def wait(self, seconds: float, extra: tuple[int, ...] = ()) -> list[int]:
        """Wait at most ``seconds`` for output of a child, a signal, or ``extra`` fds;
        the pipes with output are pumped. The ready fds of ``extra``."""
        poller = select.poll()
        fds = {t.fd: t for t in self.tails.values() if t.open}
        for fd in [*fds, self.wake_r, *extra]:
            poller.register(fd, select.POLLIN)
        ready = []
        for fd, _ in poller.poll(max(0, int(seconds * 1000))):
            if fd in fds:
                fds[fd].pump()
            elif fd == self.wake_r:
                try:
                    while os.read(self.wake_r, 64):
                        pass
                except OSError:
                    pass
            else:
                ready.append(fd)
        return ready

    def reap_orphans(self) -> None:
        """Collect the ends of processes that became ours as the subreaper (the program's
        daemons, a shell's background jobs): they would stay zombies until the session ends.
        Only those: a child of our own is left for its Popen, which needs its exit code."""
        ours = {p.pid for p in self.children.values()}
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None or info.si_pid in ours:
                return
            with contextlib.suppress(ChildProcessError):
                os.waitpid(info.si_pid, 0)

    def exited(self, name: str) -> int | None:
        proc = self.children.get(name)
        return None if proc is None else proc.poll()

    def helper_reason(self) -> str:
        for name in ("x11vnc", "Xvfb"):
            if name in self.tails and (line := self.tails[name].last_line()):
                return f"{name}: {line}"
        return "no message"

    # --- the steps -----------------------------------------------------------------------

    def reserve_display(self) -> int:
        """A display number whose abstract socket name (``@/tmp/.X11-unix/XN``) no one holds,
        held by this supervisor (bound, never listening) for the session's life.

        X clients try that name before the socket file, and abstract names are shared by
        every process in the network namespace: an interactive sandbox keeps the host's, so
        another X server there (or carol's job listening on the name) would otherwise get
        the program's and x11vnc's connections to ``:N``. Held here, a client's connect()
        is refused at once and it takes the socket file: the sandbox's own server's."""
        import random

        draw = random.SystemRandom().randint
        for _ in range(DISPLAY_TRIES):
            number = draw(MIN_DISPLAY, MAX_DISPLAY)
            name = f"\0{X_SOCKETS}/X{number}"
            if os.path.exists(f"{X_SOCKETS}/X{number}") or os.path.exists(f"/tmp/.X{number}-lock"):  # noqa: S108
                continue  # (without a sandbox: the host's /tmp, another server's display)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(name)
            except OSError:
                sock.close()
                continue
            self.reserved = sock
            return number
        raise RuntimeError(
            f"no free X display: {DISPLAY_TRIES} display numbers drawn at random up to :{MAX_DISPLAY} "
            "were all held by other processes on this host"
        )

    def start_display(self, env: dict) -> int:
        """Xvfb on a free display (:meth:`reserve_display`); its number (RuntimeError with
        why not). It writes the number to ``-displayfd`` once it accepts clients."""
        xvfb = find_program("Xvfb")
        if xvfb is None:
            raise RuntimeError("Xvfb is not installed (Debian: apt-get install xvfb)")
        number = self.reserve_display()
        r, w = os.pipe()
        argv = [xvfb, f":{number}", "-displayfd", str(w), "-nolisten", "tcp", "-nolisten", "local",
                "-noreset", "-auth", self.xauth, "-screen", "0", f"{self.geometry}x24"]  # fmt: skip
        try:
            self.spawn("Xvfb", argv, env, pass_fds=(w,))
        finally:
            os.close(w)
        got = b""
        try:
            while b"\n" not in got:
                if self.stopping:
                    raise RuntimeError(self.stopping)
                if time.monotonic() > self.deadline:
                    raise RuntimeError(f"the X display did not start within {self.ready_timeout:g} s: "
                                       f"{self.helper_reason()}")  # fmt: skip
                if self.wait(0.2, (r,)):
                    chunk = os.read(r, 64)
                    if not chunk:  # Xvfb closed it: ended
                        self.children["Xvfb"].wait(2)
                        self.wait(0)
                        raise RuntimeError(f"the X display did not start: {self.helper_reason()}")
                    got += chunk
                elif self.exited("Xvfb") is not None:
                    self.wait(0)
                    raise RuntimeError(f"the X display did not start: {self.helper_reason()}")
        finally:
            os.close(r)
        if got.strip() != str(number).encode():
            raise RuntimeError(f"the X display started on {got.strip()[:10]!r}, not :{number}")
        return number

    def free_port(self) -> tuple[str, int, str]:
        """A free TCP port of the bind address (IPv4: x11vnc runs with -noipv6; a host name
        is resolved here, as x11vnc runs with -nolookup): (the address to reach it at, the
        port, the address x11vnc listens on). OSError when it cannot be bound."""
        bind = "127.0.0.1" if self.bind == "localhost" else self.bind
        infos = socket.getaddrinfo(bind, 0, socket.AF_INET, socket.SOCK_STREAM)
        listen = infos[0][4][0]
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((listen, 0))
            port = s.getsockname()[1]
        # all addresses: the record names this node (the proxy may run elsewhere)
        host = socket.gethostname() if listen == "0.0.0.0" else listen  # noqa: S104
        return host, port, listen

    def start_vnc(self, display: int, env: dict, password: str) -> tuple[str, int]:
        """x11vnc on the display, on a free port; once it answers with an RFB banner,
        (host, port). RuntimeError with why not."""
        x11vnc = find_program("x11vnc")
        if x11vnc is None:
            raise RuntimeError("x11vnc is not installed (Debian: apt-get install x11vnc)")
        for attempt in range(PORT_TRIES):
            try:
                host, port, listen = self.free_port()
            except OSError as e:
                raise RuntimeError(
                    f"the VNC server cannot listen on {self.bind}: {e.strerror or e}"
                ) from None
            pwfile = os.path.join(self.tmp, f"vncpass{attempt}")
            _private_file(pwfile, password.encode() + b"\n")
            where = ["-localhost"] if listen == "127.0.0.1" else ["-listen", listen]
            self.spawn(
                "x11vnc",
                [
                    x11vnc,
                    "-display",
                    f":{display}",
                    "-auth",
                    self.xauth,
                    "-rfbport",
                    str(port),
                    *where,
                    "-passwdfile",
                    f"rm:{pwfile}",
                    "-forever",
                    "-shared",
                    "-quiet",
                    "-norc",
                    "-noremote",
                    "-nocmds",
                    "-novncconnect",
                    "-nolookup",
                    "-noipv6",
                    "-nossl",
                ],  # fmt: skip
                env,
            )
            while True:
                if self.stopping:
                    raise RuntimeError(self.stopping)
                if self.exited("Xvfb") is not None:
                    self.wait(0)
                    raise RuntimeError(f"the X display stopped: {self.helper_reason()}")
                if self.exited("x11vnc") is not None:
                    self.wait(0.05)
                    line = self.tails["x11vnc"].last_line()
                    if attempt + 1 < PORT_TRIES and ("in use" in line.lower() or "listen" in line.lower()):
                        break  # the port was taken meanwhile: another
                    raise RuntimeError(f"the VNC server ended before it answered: {self.helper_reason()}")
                if time.monotonic() > self.deadline:
                    raise RuntimeError(f"the VNC server did not answer within {self.ready_timeout:g} s: "
                                       f"{self.helper_reason()}")  # fmt: skip
                if listens(self.children["x11vnc"].pid, port) and answers(
                    "127.0.0.1" if listen == "0.0.0.0" else listen,  # noqa: S104
                    port,
                ):
                    return host, port
                self.wait(0.1)
        raise RuntimeError(f"the VNC server found no free port: {self.helper_reason()}")

    # --- the session ---------------------------------------------------------------------

    def on_child(self, _number, _frame) -> None:  # a child ended: look now, not at the next tick
        with contextlib.suppress(OSError):
            os.write(self.wake_w, b"c")

    def on_signal(self, number, _frame) -> None:
        if self.stopping is None:
            self.stopping = f"ended by a signal ({signal.Signals(number).name})"
        with contextlib.suppress(OSError):
            os.write(self.wake_w, b"x")

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self.on_signal)
        signal.signal(signal.SIGCHLD, self.on_child)
        password = read_password(int(self.opts["password_fd"]))
        env = dict(os.environ)
        try:
            self.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)  # orphans of the session are ours to end
            if not password:
                raise RuntimeError("no VNC password was given (--password-fd)")
            self.tmp = tempfile.mkdtemp(prefix="ijp-desktop-")
            self.xauth = os.path.join(self.tmp, "Xauthority")
            _private_file(self.xauth, xauth_entry(os.urandom(16)))
            display = self.start_display(env)
            program_env = dict(env, DISPLAY=f":{display}", XAUTHORITY=self.xauth)
            try:
                self.spawn("program", self.command, program_env, copy_stderr=True, stdout=None)
            except OSError as e:
                raise RuntimeError(f"the program {self.command[0]} cannot start: {e.strerror or e}") from None
            helper_env = {k: v for k, v in program_env.items() if k in ("PATH", "LANG", "LC_ALL", "TZ", "HOME",
                                                                         "DISPLAY", "XAUTHORITY", "TMPDIR")}  # fmt: skip
            host, port = self.start_vnc(display, helper_env, password)
        except RuntimeError as e:
            return self.fail(str(e))
        except OSError as e:
            return self.fail(f"the desktop could not be set up: {e.strerror or e}")
        ready = time.time()
        write_record(self.dir, "state.json", {
            "host": host, "port": port, "display": display, "ready_at": iso(ready),
            "ends_at": iso(self.started + self.time_limit), "geometry": self.geometry,
        })  # fmt: skip
        reason = self.watch()
        write_record(self.dir, "ended.json", {"reason": reason, "at": now()})
        self.end()
        return 0

    def watch(self) -> str:
        """Wait until the session ends; why it did."""
        ends = time.monotonic() + (self.started + self.time_limit - time.time())
        while True:
            if self.stopping:
                return self.stopping
            code = self.exited("program")
            if code is not None:
                self.wait(0.05)  # its last words
                if code < 0:
                    return f"the program was killed by {signal.Signals(-code).name}"
                line = self.tails["program"].last_line()
                return f"the program exited (exit code {code})" + (f": {line}" if code and line else "")
            for name, what in (("Xvfb", "the X display"), ("x11vnc", "the VNC server")):
                if self.exited(name) is not None:
                    self.wait(0.05)
                    line = self.tails[name].last_line()
                    return f"{what} stopped" + (f": {line}" if line else "")
            self.reap_orphans()
            left = ends - time.monotonic()
            if left <= 0:
                return f"the time limit ({hms(self.time_limit)}) was reached"
            self.wait(min(left, 1.0))

    def fail(self, reason: str) -> int:
        try:
            write_record(self.dir, "ended.json", {"failed": reason, "at": now()})
        except OSError as e:
            sys.stderr.write(f"ijp: the desktop's end cannot be recorded: {e.strerror}\n")
        sys.stderr.write(f"ijp: the desktop did not start: {reason}\n")
        self.end()
        return FAILED

    def end(self) -> None:
        """SIGTERM to everything this session started (the program's processes, x11vnc,
        Xvfb, and whatever became ours as a subreaper); SIGKILL to what is left after the
        grace period."""
        signal_all(signal.SIGTERM)
        deadline = time.monotonic() + GRACE_SECONDS
        while descendants() and time.monotonic() < deadline:
            reap()
            time.sleep(0.05)
        for _ in range(20):
            if not signal_all(signal.SIGKILL):
                break
            time.sleep(0.05)
            reap()
        reap()
        if self.tmp:
            import shutil

            shutil.rmtree(self.tmp, ignore_errors=True)


def listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` itself holds the socket listening on TCP ``port`` (IPv4):
    the port was free when probed, but another process (carol's job, with the host's
    network) could bind it before x11vnc does and answer with a banner of its own."""
    inodes = set()
    try:
        with open("/proc/net/tcp") as fh:
            next(fh)
            for line in fh:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # LISTEN
                    inodes.add(f"socket:[{fields[9]}]")
        fds = os.listdir(f"/proc/{pid}/fd")
    except (OSError, StopIteration, IndexError, ValueError):
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                return True
        except OSError:
            continue
    return False


def answers(host: str, port: int) -> bool:
    """Whether an RFB server answers on host:port (its banner: ``RFB 003.008``)."""
    try:
        with socket.create_connection((host, port), timeout=2) as s:
            banner = b""
            while len(banner) < 12:
                chunk = s.recv(12 - len(banner))
                if not chunk:
                    break
                banner += chunk
    except OSError:
        return False
    return banner.startswith(b"RFB ")


def descendants(root: int | None = None) -> list[int]:
    """The live processes below ``root`` (this one), by their parents in /proc."""
    root = root or os.getpid()
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                text = fh.read()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        if fields[0] != "Z":
            children.setdefault(int(fields[1]), []).append(int(entry))
    out, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), ()):
            out.append(child)
            stack.append(child)
    return out


def signal_all(sig: int) -> list[int]:
    found = descendants()
    for pid in found:
        try:
            os.kill(pid, sig)
        except OSError:
            continue
    return found


def reap() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def parse(argv: list[str]) -> tuple[dict, list[str]]:
    """The options before ``--`` and the program's argv after it (ValueError if odd)."""
    if "--" not in argv:
        raise ValueError("no program after --")
    split = argv.index("--")
    opts, command = argv[:split], argv[split + 1 :]
    names = {"--dir": "dir", "--geometry": "geometry", "--time-limit": "time_limit",
             "--ready-timeout": "ready_timeout", "--bind": "bind", "--password-fd": "password_fd"}  # fmt: skip
    if len(opts) % 2 or not command:
        raise ValueError("options come in pairs, and a program follows --")
    out = {}
    for flag, value in zip(opts[::2], opts[1::2], strict=True):
        if flag not in names:
            raise ValueError(f"unknown option {flag}")
        out[names[flag]] = value
    missing = set(names.values()) - set(out)
    if missing:
        raise ValueError(f"missing {', '.join(sorted(missing))}")
    w, _, h = out["geometry"].partition("x")
    if not (w.isdigit() and h.isdigit() and out["time_limit"].isdigit() and out["password_fd"].isdigit()):
        raise ValueError("geometry is WxH, the time limit whole seconds and the password's a descriptor")
    float(out["ready_timeout"])
    return out, command


def main(argv: list[str]) -> int:
    os.umask(0o077)
    try:
        opts, command = parse(argv[1:])
    except ValueError as e:
        sys.stderr.write(f"usage: session.py --dir D --geometry WxH --time-limit S --ready-timeout S --bind A "
                         f"--password-fd FD -- PROGRAM ARGS ({e})\n")  # fmt: skip
        return 2
    return Session(opts, command).run()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
