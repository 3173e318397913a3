"""The one job launcher: every backend starts a job's program through this file.

The standard library only, and run by path (``python -I -S .../runner.py``): it loads in
a few milliseconds and sees nothing of the portal. Two ways to run it:

``runner.py JOBDIR`` (the local backend, which starts it in its own session and does not
wait for it): records the start in ``started.json``, runs the program with stdout and
stderr going to files in JOBDIR, and records the end and the exit code in ``exit.json``,
all on disk, so the portal can restart at any time without losing track. On SIGTERM (a
cancel) it passes the signal on to the job's processes, and after a grace period kills
whatever is left of them. As its job ends it starts the jobs queued behind it, each in a
fork of itself (in a session of its own), so that a queue drains without a new
interpreter per job.

``runner.py --slurm JOBDIR`` (the SLURM backend's launcher, a copy of this file): SLURM
has opened stdout and stderr and keeps the records, so it only sets the job up and
replaces itself with it.

Either way the job's catalog session comes from ``secret.json`` (mode 0600), which is
read and deleted before the program starts: after that it is only in the program's
environment. The program runs in a bubblewrap sandbox unless the backend was configured
with ``sandbox = none`` (``spec.json``'s ``sandbox``): the system read-only (with the
files of /etc that other local users cannot read hidden), the job type's programs and the
portal's Python read-only, its own ``work/`` and ``output/`` writable, a private /tmp and
/proc (its own PID namespace), no capabilities, and no network unless allowed.
"""

from __future__ import annotations

import _thread
import fcntl
import os
import pwd
import select
import sys
import time

# What a launcher imports is paid again by every launcher the backend starts: only
# modules built into the interpreter or small ones, and paths as strings. The profile
# (bench/README.md) found 30 ms of imports against 10 ms for the interpreter itself:
# subprocess (with locale, threading, selectors), pathlib (urllib.parse, ipaddress),
# contextlib, datetime, and json and signal, which compile regular expressions (re) and
# build enums (enum) as they load. json and signal are their C parts here, _json and
# _signal, with the same behaviour (tests/unit/test_launcher_json.py); the pure-Python
# modules where an interpreter lacks them. tests/unit/test_local_backend.py holds it.
try:
    import _signal as signal
except ImportError:  # (not CPython)
    import signal
try:
    from _json import encode_basestring_ascii as _quote
    from _json import make_encoder as _make_encoder
    from _json import make_scanner as _make_scanner
except ImportError:  # (not CPython)
    _make_scanner = None

GRACE_SECONDS = 5.0
SESSION_ENV = "IJP_SESSION_ID"  # as ijpweb.planning names it (the runner imports nothing of ijpweb)
PRIVATE_ENV = "secret.json"  # the environment only the program may have (its session)
SANDBOX_TMP = "/tmp"  # noqa: S108 - a tmpfs of the sandbox's own
NOT_STARTED = 127  # the shell's code for "command not found"
# an interactive job (issue 14): its supervisor, the password's file and variable, the
# directory of the session's records (desktop/state.json, desktop/ended.json), and the
# desktop's defaults where spec.json names none
SESSION_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "session.py")
DESKTOP_SECRET, DESKTOP_DIR, END_RECORD = "desktop.secret", "desktop", "end.json"
DEFAULT_GEOMETRY = "1280x800"
DEFAULT_TIME_LIMIT = 8 * 3600
DEFAULT_READY_TIMEOUT = 60
DEFAULT_BIND = "127.0.0.1"

HOST = os.uname().nodename  # (socket.gethostname(), without importing socket)
BWRAP = "/usr/bin/bwrap"
SETPRIV = "/usr/bin/setpriv"  # util-linux
# The system, read-only. Where these are symlinks (merged /usr) the links are recreated.
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC = "/etc"


def now() -> str:
    """The time in ISO 8601, UTC, to the microsecond (as datetime's isoformat())."""
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e6):06d}+00:00"


def _join(d, *names: str) -> str:
    return os.path.join(os.fspath(d), *names)


def _read(path, mode: str = "r"):
    with open(path, mode) as fh:
        return fh.read()


def _unlink(path) -> None:
    try:  # noqa: SIM105 - contextlib's import costs each job more than this
        os.unlink(path)
    except FileNotFoundError:
        pass


class _Decoding:
    """What _json's scanner reads from a decoder (as json.JSONDecoder's defaults)."""

    strict = True
    object_hook = object_pairs_hook = None
    parse_float, parse_int = float, int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__


def _unencodable(value):
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


if _make_scanner is not None:
    _scan = _make_scanner(_Decoding())
    _encode = _make_encoder(None, _unencodable, _quote, None, ": ", ", ", False, False, True)

    def loads(text: str | bytes):
        """json.loads, for a document as json.dumps writes it (ValueError if it is not one)."""
        if isinstance(text, bytes):
            text = text.decode()
        start = len(text) - len(text.lstrip(" \t\n\r"))
        try:
            value, end = _scan(text, start)
        except StopIteration as e:
            raise ValueError(f"Expecting value: char {e.value}") from None
        except SystemError:  # _json raises json.decoder's error class, found only once json is
            import json  # loaded: for a broken document (a record half-written), json's word

            return json.loads(text)
        if text[end:].strip(" \t\n\r"):
            raise ValueError(f"Extra data: char {end}")
        return value

    def dumps(value) -> str:
        """json.dumps with its defaults."""
        return "".join(_encode(value, 0))

else:  # (not CPython)
    from json import dumps, loads


def write_json(path, data: dict) -> None:
    """Written whole or not at all. The temporary name is the writer's own (process and
    thread): several portal processes starting at once each write the backend's config, and
    a shared name let one rename another's file away (FileNotFoundError)."""
    path = os.fspath(path)
    tmp = f"{os.path.splitext(path)[0]}.{os.getpid()}-{_thread.get_ident()}.tmp"
    with open(tmp, "w") as fh:
        fh.write(dumps(data))
    os.replace(tmp, path)


# --- the sandbox -----------------------------------------------------------------------


# the file type and permission bits hidden() reads (as the stat module names them)
S_IFMT, S_IFDIR, S_IFLNK, S_IROTH, S_IXOTH = 0o170000, 0o040000, 0o120000, 0o004, 0o001
S_IFREG = 0o100000


def hidden(top: str = ETC) -> list[str]:
    """What under ``top`` other local users cannot read: files and directories without
    the read bit for others (a directory also without the search bit). Inside the sandbox
    the job's uid owns every root-owned file it sees, so these are hidden from it:
    /etc/shadow, /etc/gshadow, /etc/ssl/private, /etc/munge, ...; not descended into."""
    out, stack = [], [top]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue
        with entries:
            for e in entries:
                try:
                    st = e.stat(follow_symlinks=False)
                except OSError:
                    continue
                kind = st.st_mode & S_IFMT
                if kind == S_IFLNK:
                    continue
                is_dir = kind == S_IFDIR
                if not st.st_mode & S_IROTH or (is_dir and not st.st_mode & S_IXOTH):
                    out.append(e.path)
                elif is_dir:
                    stack.append(e.path)
    return sorted(out)


# A scan of /etc is 1,454 lstat()s here (7 ms, several times that on a loaded machine):
# a launcher and the forks it starts for the jobs behind it share one for this long.
# A file made private in /etc meanwhile shows for that long in the jobs started then, as it
# shows in every job that is running already (/etc is bound as it is: what changes in it
# later is seen inside; hidden() only covers what is private when a sandbox is set up).
HIDDEN_SECONDS = 1.0
_hidden: dict[str, tuple[float, list[str]]] = {}


def hidden_now(top: str = ETC) -> list[str]:
    """hidden(top), computed at most HIDDEN_SECONDS ago (in this process or the launcher
    it was forked from)."""
    at, found = _hidden.get(top, (None, None))
    now_ = time.monotonic()
    if at is None or now_ - at > HIDDEN_SECONDS:
        found = hidden(top)
        _hidden[top] = (now_, found)
    return found


def _under(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def bwrap_argv(sandbox: dict, writable: list[str], cwd: str, info_fd: int | None = None) -> list[str]:
    """The bubblewrap command line for ``sandbox``, the ``spec.json`` entry: ``bwrap``
    (its path), ``read_only`` (directories shown read-only besides the system: the
    portal's Python, the job type's programs), ``network`` (whether the job keeps the
    host's network) and ``user``; up to the program, which the caller appends.

    Where the launcher is root, bwrap sets the sandbox up as root and the program runs as
    ``user`` (via setpriv, no capabilities left, no new privileges): a root job would own
    every root-owned file it sees, /proc/sys among them. Otherwise bwrap runs as the
    launcher's account, in a user namespace of its own, and the job may make no other."""
    ids = identity(sandbox)
    argv = [sandbox.get("bwrap") or BWRAP, "--die-with-parent", "--new-session"]
    if ids is None:
        argv += ["--unshare-user", "--disable-userns"]
    argv += ["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try"]
    if not sandbox.get("network"):
        argv.append("--unshare-net")
    argv += ["--cap-drop", "ALL"]
    if ids is not None:  # until setpriv drops them with root: to change user, to empty the
        # bounding set, and to enter the job's work directory (0700, the user's) for it
        for cap in ("CAP_SETUID", "CAP_SETGID", "CAP_SETPCAP", "CAP_DAC_READ_SEARCH"):
            argv += ["--cap-add", cap]
    shown = []
    for p in SYSTEM:
        if os.path.islink(p):
            argv += ["--symlink", os.readlink(p), p]
        elif os.path.isdir(p):
            argv += ["--ro-bind", p, p]
            shown.append(p)
    argv += ["--ro-bind", ETC, ETC]
    shown.append(ETC)
    for h in hidden_now(ETC):
        if os.path.isdir(h):
            argv += ["--perms", "0700", "--tmpfs", h, "--remount-ro", h]
        else:
            argv += ["--ro-bind", os.devnull, h]
    argv += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777"]
    if sandbox.get("tmp_size"):  # a tmpfs is memory: bounded, or a job could fill it
        argv += ["--size", str(int(sandbox["tmp_size"]))]
    argv += ["--tmpfs", SANDBOX_TMP]
    made = {"/", SANDBOX_TMP}

    def scaffold(path: str) -> None:
        """The directories above ``path`` that bwrap makes, searchable by the job's user."""
        parts = path.strip("/").split("/")[:-1]
        for i in range(len(parts)):
            d = "/" + "/".join(parts[: i + 1])
            if d not in made and not any(_under(d, s) for s in shown):
                argv.extend(["--perms", "0755", "--dir", d])
                made.add(d)

    for p in sandbox.get("read_only", ()):
        real = os.path.realpath(p)
        if not os.path.isdir(real) or any(_under(real, s) for s in shown):
            continue
        scaffold(real)
        argv += ["--ro-bind", real, real]
        shown.append(real)
    for p in writable:
        scaffold(p)
        argv += ["--bind", p, p]
    argv += ["--chdir", cwd]
    if info_fd is not None:
        argv += ["--info-fd", str(info_fd)]
    argv.append("--")
    if ids is not None:
        uid, gid = ids
        argv += [SETPRIV, f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--inh-caps=-all"]
        argv += ["--bounding-set=-all", "--"]
    return argv


def identity(sandbox: dict) -> tuple[int, int] | None:
    """The (uid, gid) a sandboxed job runs as when the launcher runs as root: the
    sandbox's ``user`` (default ``nobody``). As root the job would own every root-owned
    file it can see, /proc/sys among them. None: the launcher's own account."""
    if os.geteuid() != 0 or sandbox.get("type") != "bwrap":
        return None
    user = str(sandbox.get("user") or "nobody")
    try:
        entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except (KeyError, ValueError):
        raise PermissionError(1, f"the sandbox's user {user!r} does not exist on {HOST}") from None
    if entry.pw_uid == 0:
        raise PermissionError(1, "the sandbox's user may not be root")
    return entry.pw_uid, entry.pw_gid


# the sandbox's "limits" (spec.json) and the resource each sets, for the program and
# everything it starts: processes of the job's user, address space, one file's size
LIMITS = {"processes": "RLIMIT_NPROC", "memory": "RLIMIT_AS", "file_size": "RLIMIT_FSIZE"}


def set_limits(sandbox: dict) -> None:
    """Apply the sandbox's resource limits to this process (inherited by what it execs).
    RLIMIT_NPROC counts every process of the job's user: jobs sharing a user share it."""
    import resource

    for key, value in (sandbox.get("limits") or {}).items():
        which = getattr(resource, LIMITS[key])
        resource.setrlimit(which, (int(value), int(value)))


def _resolve(executable: str, path: str) -> str | None:
    """The program's file, found as the kernel and execvp would (a name without a slash
    is looked up in the job's PATH)."""
    if "/" in executable:
        return executable if os.access(executable, os.X_OK) and os.path.isfile(executable) else None
    for folder in path.split(os.pathsep):
        candidate = os.path.join(folder or ".", executable)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


class JobSetup:
    """What one job starts with, read from its directory; the secret is removed from disk."""

    def __init__(self, jobdir: str | os.PathLike):
        self.jobdir = jobdir = os.fspath(jobdir)
        spec = loads(_read(_join(jobdir, "spec.json")))
        self.secret = self._take_secret()
        self.sandbox = spec.get("sandbox") or {"type": "none"}
        self.work = _join(jobdir, "work")
        self.output = _join(jobdir, "output")
        env = dict(spec["env"])
        env.update(self.secret)
        self.env = env
        self.executable = spec["executable"]
        self.identity: tuple[int, int] | None = None  # whom the program runs as (see identity())
        # null in the argv: where the session goes as an argument (a facility opted in)
        session = self.secret.get(SESSION_ENV)
        self.argv = [a for a in (("--sessionId=" + session if session else None) if a is None else a
                                 for a in spec["argv"]) if a is not None]  # fmt: skip
        # an interactive job's desktop (spec.json's "desktop": geometry, time limit, ready
        # timeout, bind): the program runs under the session's supervisor (session.py), which
        # reads the VNC password from a pipe (password_pipe): desktop.secret is never shown
        # inside, and the password is in no process's environment or argv
        desktop = spec.get("desktop")
        self.desktop: dict | None = desktop if isinstance(desktop, dict) else None
        self.desktop_dir = _join(jobdir, DESKTOP_DIR)
        self.password = desktop_secret(jobdir) if self.desktop is not None else ""

    def password_fd(self) -> int | None:
        """An interactive job's VNC password on a pipe for its supervisor (password_pipe);
        None for a batch job."""
        return password_pipe(self.password) if self.desktop is not None else None

    def _take_secret(self) -> dict:
        path = _join(self.jobdir, PRIVATE_ENV)
        try:
            data = loads(_read(path))
        except FileNotFoundError:
            return {}
        finally:
            _unlink(path)
        return data

    @property
    def sandboxed(self) -> bool:
        return self.sandbox.get("type") == "bwrap"

    def command(self, info_fd: int | None = None, password_fd: int | None = None) -> list[str]:
        """The command to start: the program (under the desktop's supervisor for an
        interactive job, which reads the VNC password from ``password_fd``), in its
        sandbox. Raises OSError (with the reason) when it cannot start."""
        program = _resolve(self.executable, self.env.get("PATH", os.defpath))
        if program is None:
            raise FileNotFoundError(2, "No such file or directory")
        if not self.sandboxed:
            return self.supervised([program, *self.argv], password_fd)
        bwrap = self.sandbox.get("bwrap") or BWRAP
        self.identity = identity(self.sandbox)
        for tool in (bwrap, *((SETPRIV,) if self.identity else ())):
            if not os.access(tool, os.X_OK):
                raise FileNotFoundError(2, f"{tool} is not installed on {HOST}")
        program = os.path.realpath(program)
        folders = [os.path.dirname(program)]
        writable = [self.work, self.output]
        sandbox = dict(self.sandbox)
        if self.desktop is not None:  # the supervisor's own directory; the desktop's records
            folders.append(os.path.dirname(os.path.realpath(SESSION_SCRIPT)))
            writable.append(self.desktop_dir)
            sandbox["network"] = True  # its VNC server must be reachable on the node
        for folder in folders:
            if _under(os.path.dirname(self.jobdir), folder):
                raise PermissionError(1, "its directory holds the job directories, which no job may see")
        sandbox["read_only"] = [*self.sandbox.get("read_only", ()), *folders]
        self.env["TMPDIR"] = SANDBOX_TMP
        command = self.supervised([program, *self.argv], password_fd)
        if self.identity is not None:  # its own directories are the only ones it may write
            for d in writable:
                os.chown(d, *self.identity)
        return [*bwrap_argv(sandbox, writable, self.work, info_fd), *command]

    def supervised(self, command: list[str], password_fd: int | None) -> list[str]:
        """``command`` run by the desktop session's supervisor (session.py, by path, with the
        launcher's own Python), with the desktop's settings from spec.json and the VNC
        password to read from ``password_fd``."""
        d = self.desktop
        if d is None:
            return command
        if not os.path.isdir(self.desktop_dir):
            os.mkdir(self.desktop_dir, 0o700)
        return [
            sys.executable, "-I", "-S", os.path.realpath(SESSION_SCRIPT),
            "--dir", self.desktop_dir,
            "--geometry", str(d.get("geometry") or DEFAULT_GEOMETRY),
            "--time-limit", str(int(d.get("time_limit") or DEFAULT_TIME_LIMIT)),
            "--ready-timeout", str(int(d.get("ready_timeout") or DEFAULT_READY_TIMEOUT)),
            "--bind", str(d.get("bind") or DEFAULT_BIND),
            "--password-fd", str(password_fd),
            "--", *command,
        ]  # fmt: skip


def password_pipe(password: str) -> int:
    """A pipe's reading end holding ``password`` (its writing end closed), for the
    supervisor to read: a descriptor, not the environment (/proc/PID/environ) or argv. Not
    inheritable until the child that needs it makes it so."""
    r, w = os.pipe()
    try:
        os.write(w, password.encode())  # a few bytes: far within a pipe's buffer
    finally:
        os.close(w)
    return r


# --- the local backend's wrapper --------------------------------------------------------


def _namespace_members(init_pid: int) -> list[int]:
    """The processes in the PID namespace whose init (bwrap's) is ``init_pid``, init last."""
    try:
        ns = os.readlink(f"/proc/{init_pid}/ns/pid")
    except OSError:
        return []
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and int(entry) != init_pid:
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") == ns:
                    out.append(int(entry))
            except OSError:
                continue
    return [*out, init_pid]


def _group_members(pgid: int) -> list[int]:
    me, out = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            stat_ = _read(f"/proc/{entry}/stat")
        except OSError:
            continue
        fields = stat_[stat_.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(entry))
    return out


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except OSError:
            continue


def kill_sandbox(jobdir: str | os.PathLike) -> list[int]:
    """Kill what is left of a job's sandbox once its launcher has gone without recording
    the end (killed, perhaps while bwrap was still setting up: bwrap binds its life to
    its parent's only just before it starts the program). bwrap's processes are known by
    their command line, which binds the job's work directory; killing the sandbox's init
    ends every process in it. The pids signalled."""
    wanted = [b"--bind", _join(jobdir, "work").encode()]
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = _read(f"/proc/{entry}/cmdline", "rb").split(b"\0")
        except OSError:
            continue
        if os.path.basename(argv[0]) == b"bwrap" and any(
            argv[i : i + 2] == wanted for i in range(len(argv) - 1)
        ):
            found.append(int(entry))
    _signal(found, signal.SIGKILL)
    return found


# Python ignores these; a job must not inherit that (a file size limit ends it by SIGXFSZ)
RESTORED_SIGNALS = ("SIGPIPE", "SIGXFSZ")
MAX_FD = 1 << 20  # above any descriptor a process here has (closerange: one close_range call)


def _spawn(command: list[str], env: dict, cwd: str, out: str, err: str, keep: tuple[int, ...],
           sandbox: dict | None) -> int:  # fmt: skip
    """Start ``command`` (an absolute or relative path first, no PATH search) with stdin
    from /dev/null, stdout and stderr appended to the files ``out`` and ``err``, in ``cwd``,
    with ``env`` and no other descriptor than those in ``keep`` (bwrap's info pipe, the
    desktop's password pipe); its pid. Raises OSError, with the
    reason, when it cannot be started (the exec's error, passed back on a pipe).

    ``sandbox`` (a sandboxed job): in a process group of its own (a cancel signals this
    launcher, which passes it on inside and kills the sandbox after the grace period),
    killed when this launcher ends from before it execs bwrap (bwrap's own
    --die-with-parent takes effect only once it has started: a launcher killed in between
    left the sandbox running, orphaned), and with the sandbox's resource limits.

    os.fork and os.execve rather than subprocess, whose import (with locale, selectors,
    threading) would cost every job more than this whole launcher otherwise does."""
    prctl = None
    if sandbox is not None:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()
    fds = [os.open(os.devnull, os.O_RDONLY), os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600),
           os.open(err, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)]  # fmt: skip
    errors_r, errors_w = os.pipe()  # closed by a successful exec (O_CLOEXEC)
    try:
        pid = os.fork()
        if pid == 0:  # the child: nothing here may return or raise
            try:
                for target, fd in enumerate(fds):
                    os.dup2(fd, target)
                # whatever the portal's own parent left open (inheritable) goes too: the job
                # gets 0-2 and ``keep`` only (errors_w closes itself at the exec)
                low = 3
                for fd in sorted({*keep, errors_w}):
                    os.closerange(low, fd)
                    low = fd + 1
                os.closerange(low, MAX_FD)
                for fd in keep:
                    os.set_inheritable(fd, True)
                for name in RESTORED_SIGNALS:
                    if hasattr(signal, name):
                        signal.signal(getattr(signal, name), signal.SIG_DFL)
                if sandbox is not None:
                    os.setpgid(0, 0)
                    prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
                    if os.getppid() != parent:  # it has ended already
                        os._exit(1)
                    set_limits(sandbox)
                os.chdir(cwd)
                os.execve(command[0], command, env)  # noqa: S606 - an argv list, no shell
            except OSError as e:
                os.write(errors_w, f"{e.errno}:{e.strerror or ''}".encode())
            except BaseException as e:  # noqa: BLE001 - whatever it is, the parent hears of it
                os.write(errors_w, f"0:{e}".encode())
            os._exit(NOT_STARTED)
    finally:
        for fd in fds:
            os.close(fd)
        os.close(errors_w)
    with os.fdopen(errors_r, "rb") as pipe:
        failed = pipe.read()
    if failed:
        os.waitpid(pid, 0)
        errno, _, reason = failed.decode(errors="replace").partition(":")
        raise OSError(int(errno) if errno.isdigit() else 0, reason)
    return pid


def _ending(pid: int):
    """A function ``ended(seconds)``: whether the child ``pid`` has ended, waiting at most
    that long and returning as soon as it ends (a pidfd, which a polling wait would not be:
    up to 50 ms late); and the pidfd, for the caller to close (None on an older kernel)."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:  # an older kernel
        return (
            lambda seconds: (
                time.sleep(seconds) or os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            ),
            None,
        )
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return lambda seconds: bool(poller.poll(int(seconds * 1000))), pidfd


def _read_info(fd: int) -> int | None:
    """bwrap's --info-fd: JSON with the sandbox init's pid, written once it runs."""
    data = b""
    while chunk := os.read(fd, 4096):
        data += chunk
        try:
            return int(loads(data)["child-pid"])
        except (ValueError, KeyError):
            continue
    return None


# An interactive job's limits, kept by the launcher too (outside the sandbox: the job's
# program runs beside the supervisor, as its user, and can stop it with SIGSTOP): this long
# after the supervisor's own deadlines, the launcher records the end and ends the sandbox.
READY_SLACK = LIMIT_SLACK = 5.0
PR_SET_CHILD_SUBREAPER = 36


def _hms(seconds: int) -> str:
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class DesktopWatch:
    """The launcher's watch over an interactive job's session: its ready timeout (until
    ``desktop/state.json`` appears) and its time limit, each READY_SLACK/LIMIT_SLACK past
    the supervisor's own. When one passes, :meth:`overdue` records the end in ``end.json``
    (unless the session recorded its own end, or the portal did) and says so: the caller
    then ends the sandbox as a cancel does."""

    def __init__(self, setup: JobSetup):
        d, t = setup.desktop, time.monotonic()
        self.ready_timeout = int(d.get("ready_timeout") or DEFAULT_READY_TIMEOUT)
        self.time_limit = int(d.get("time_limit") or DEFAULT_TIME_LIMIT)
        self.ready_by = t + self.ready_timeout + READY_SLACK
        self.ends_by = t + self.time_limit + LIMIT_SLACK
        self.jobdir, self.dir = setup.jobdir, setup.desktop_dir
        self.ready = False

    def overdue(self) -> bool:
        t = time.monotonic()
        if not self.ready:
            self.ready = os.path.lexists(_join(self.dir, "state.json"))
            if not self.ready and t > self.ready_by:
                self._record(f"the desktop did not start within {self.ready_timeout} s", failed=True)
                return True
        if t > self.ends_by:
            self._record(f"the time limit ({_hms(self.time_limit)}) was reached")
            return True
        return False

    def _record(self, reason: str, failed: bool = False) -> None:
        if any(os.path.lexists(p) for p in (_join(self.dir, "ended.json"), _join(self.jobdir, END_RECORD),
                                            _join(self.jobdir, "cancelled.json"))):  # fmt: skip
            return
        record = {"reason": reason, "failed": True} if failed else {"reason": reason}
        write_json(_join(self.jobdir, END_RECORD), {**record, "at": now()})


def _descendants(root: int) -> list[int]:
    """The live processes below ``root``, by their parents in /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = stat_fields(int(entry))
            if fields and fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry))
    out, stack = [], [root]
    while stack:
        for child in children.get(stack.pop(), ()):
            out.append(child)
            stack.append(child)
    return out


def _end_orphans() -> None:
    """Kill what is left below this launcher (the subreaper of an unsandboxed session: a
    process the job started in a session of its own came to it when its parents ended),
    and collect them."""
    for _ in range(50):
        left = _descendants(os.getpid())
        if not left:
            break
        _signal(left, signal.SIGKILL)
        time.sleep(0.02)
        while True:
            try:
                if os.waitpid(-1, os.WNOHANG)[0] == 0:
                    break
            except ChildProcessError:
                break


def run(jobdir: str) -> int:
    terminated = {"at": None}

    def on_term(_sig, _frame):
        if terminated["at"] is None:
            terminated["at"] = time.monotonic()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        setup = JobSetup(jobdir)
    finally:  # whatever happens, the record of the start: the backend waits for it
        write_json(
            _join(jobdir, "started.json"),
            {
                "pid": os.getpid(),
                "pgid": os.getpgrp(),
                # when this process began (/proc/<pid>/stat): with the pid, which process
                # it is (a launcher forked by another has that one's command line)
                "began": began(os.getpid()),
                "at": now(),
                "host": HOST,
                "cores": len(os.sched_getaffinity(0)),
            },
        )
    if os.path.exists(_join(jobdir, "cancelled.json")) or os.path.exists(_join(jobdir, END_RECORD)):
        write_json(_join(jobdir, "exit.json"), {"code": None, "signal": None, "at": now()})
        start_next(jobdir)
        return 0
    info_r = info_w = None
    if setup.sandboxed:
        info_r, info_w = os.pipe()
    watch = DesktopWatch(setup) if setup.desktop is not None else None
    if watch is not None and not setup.sandboxed:  # no PID namespace: what the session leaves is ours
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    password_r = setup.password_fd()
    keep = tuple(fd for fd in (info_w, password_r) if fd is not None)
    try:
        command = setup.command(info_w, password_r)
        child = _spawn(command, setup.env, setup.work, _join(jobdir, "stdout"), _join(jobdir, "stderr"), keep,
                       setup.sandbox if setup.sandboxed else None)  # fmt: skip
    except OSError as e:
        with open(_join(jobdir, "stderr"), "a") as err:
            err.write(f"ijp: cannot start {setup.executable}: {e.strerror}\n")
        write_json(_join(jobdir, "exit.json"), {"code": NOT_STARTED, "signal": None, "at": now()})
        start_next(jobdir)
        return 0
    finally:
        for fd in keep:
            os.close(fd)
    init_pid = _read_info(info_r) if info_r is not None else None
    if info_r is not None:
        os.close(info_r)
    pgid = os.getpgrp()

    def members() -> list[int]:
        return _namespace_members(init_pid) if init_pid else _group_members(pgid)

    forwarded = False
    ended, pidfd = _ending(child)
    while True:
        if ended(0.2):
            rc = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
            break
        if watch is not None and terminated["at"] is None and watch.overdue():
            terminated["at"] = time.monotonic()  # ended as a cancel is
            if not init_pid:
                _signal(_group_members(pgid), signal.SIGTERM)
        if terminated["at"] is None:
            continue
        if init_pid and not forwarded:  # the program's own processes; not the sandbox's init
            _signal(members()[:-1], signal.SIGTERM)
            forwarded = True
        if time.monotonic() - terminated["at"] > GRACE_SECONDS:
            _signal(members(), signal.SIGKILL)  # init last: its end ends the namespace
            if init_pid:
                _signal([child], signal.SIGKILL)
    if pidfd is not None:
        os.close(pidfd)
    if terminated["at"] is not None and not init_pid:
        # The program is gone; make sure nothing it started lingers in the group.
        _signal(_group_members(pgid), signal.SIGKILL)
    if watch is not None and not init_pid:
        _end_orphans()
    code, sig = (rc, None) if rc >= 0 else (None, -rc)
    if init_pid and rc > 128 and rc - 128 in signal.valid_signals():
        code, sig = None, rc - 128  # bwrap reports a signal as 128 + its number
    write_json(_join(jobdir, "exit.json"), {"code": code, "signal": sig, "at": now()})
    start_next(jobdir)
    return 0


# --- the local backend's queue -----------------------------------------------------------
# <root>/queue/<id>.<owner> marks a job waiting to start and <root>/running/<id> (holding
# <owner>) one started, until its launcher ends; <owner> is a key the backend derives from
# the job's owner (letters and digits; an older version's markers, queue/<id> and empty
# running markers, are one owner of their own). <root>/.served/<owner>'s mtime is when
# that owner's last job was claimed; <root>/.lock serialises the claims; <root>/.backend.json
# holds max_running. The backend starts queued jobs when it is asked (a submit, a harvest,
# a cancel), and each launcher starts the next as its own job ends, so a queue drains at
# once. A start reads only these markers, never every job directory.
#
# Fair among owners: each free slot goes to the oldest waiting job of the owner with the
# fewest jobs running, among those to the owner served least recently (one never served
# first), then to the oldest job. So one owner's thousand queued jobs take turns with
# another's one, rather than all starting before it.
#
# The lock covers only the claim (what runs, what may start, the markers moved): the
# launchers are started once it is released, and nothing waits for them. A claimed job
# shows ``launched`` (empty) until its launcher's pid is written there; it counts as
# running meanwhile, and a claim whose start never came (the process stopped in between)
# is queued again after UNFINISHED_START.

QUEUE, STARTED, LOCK, CONFIG, SERVED = "queue", "running", ".lock", ".backend.json", ".served"
DESKTOPS = "desktops"  # desktops/<id>: an interactive job (outside the queue), until it ends
OLD_OWNER = "_"  # .served/_: the owner of an older version's markers (which name none)
# A record the launcher or the backend writes is a few hundred bytes: one larger is not one.
RECORD_BYTES = 65536
# a start the backend did not finish (it stopped between claiming the job and starting
# its launcher) is retried after this many seconds
UNFINISHED_START = 60.0


class locked:
    """``with locked(root):`` the backend's lock (an flock of ``root/.lock``)."""

    def __init__(self, root):
        self.path = _join(root, LOCK)

    def __enter__(self):
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self.fd)
            raise
        return self

    def __exit__(self, *exc) -> None:
        os.close(self.fd)  # and the lock with it


def _open_record(path) -> int:
    """A record in a job's directory opened for reading: the file itself, never a link put
    in its place (an unsandboxed job runs as the portal's account and could make one) nor
    a FIFO (which would hang the reader): OSError for those."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    if os.fstat(fd).st_mode & S_IFMT != S_IFREG:
        os.close(fd)
        raise OSError(22, "not a regular file")
    os.set_blocking(fd, True)
    return fd


def read_json(path):
    """A record a job left on disk (any JSON value: callers check its shape), or None
    while it is not there, or when it is not JSON, larger than any record, a link or not
    a regular file."""
    try:
        with os.fdopen(_open_record(path), "rb") as fh:
            text = fh.read(RECORD_BYTES + 1)
        return loads(text) if len(text) <= RECORD_BYTES else None
    except (OSError, ValueError, RecursionError):  # (RecursionError: [[[[...]]]])
        return None


def desktop_secret(jobdir) -> str:
    """The VNC password in the job's ``desktop.secret`` (the portal writes it, 0600, in
    prepare()), or "" when there is none or it is not one (the supervisor then fails the
    session, saying so)."""
    record = read_json(_join(jobdir, DESKTOP_SECRET))
    password = record.get("password") if isinstance(record, dict) else None
    if isinstance(password, str) and 6 <= len(password) <= 8 and password.isascii() and password.isalnum():
        return password
    return ""


def job_name(name: str) -> bool:
    """Whether ``name`` is a job's (its directory's): a portal job id, ASCII digits."""
    return name.isascii() and name.isdigit() and len(name) <= 20


def owner_key(key: str) -> bool:
    """Whether ``key`` can name an owner in a marker: ASCII letters and digits, or empty."""
    return not key or (key.isascii() and key.isalnum() and len(key) <= 64)


def names(d) -> list[str]:
    try:
        return [n for n in os.listdir(d) if job_name(n)]
    except FileNotFoundError:
        return []


def queue_marker(name: str, key: str) -> str:
    """The queue marker's name for job ``name`` of the owner ``key``."""
    return f"{name}.{key}" if key else name


def queued(d) -> list[tuple[str, str, str]]:
    """The queue ``d``: (job name, owner key, marker name) of each marker (one listing)."""
    try:
        markers = os.listdir(d)
    except FileNotFoundError:
        return []
    out = []
    for marker in markers:
        name, _, key = marker.partition(".")
        if job_name(name) and owner_key(key):
            out.append((name, key, marker))
    return out


def _touch(path) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))


def _put(path, content: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        if content:
            os.write(fd, content.encode())
    finally:
        os.close(fd)


def mark(d, name: str, content: str = "") -> None:
    """The marker ``d/name`` holding ``content`` (``d`` made, 0700, if needed: an operator
    may remove it)."""
    try:
        _put(_join(d, name), content)
    except FileNotFoundError:
        os.makedirs(d, 0o700, exist_ok=True)
        _put(_join(d, name), content)


def marked_owner(path) -> str:
    """The owner key a running marker holds ("" for an older version's, or an odd one)."""
    try:
        with open(path, "rb") as fh:
            key = fh.read(65).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return key if owner_key(key) else ""


def age(path) -> float:
    try:
        return time.time() - os.stat(path).st_mtime
    except OSError:
        return 0.0


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command's name (state first)."""
    try:
        text = _read(f"/proc/{pid}/stat")
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def began(pid: int) -> str | None:
    """When process ``pid`` began, in clock ticks since boot (field 22 of its stat)."""
    fields = stat_fields(pid)
    return fields[19] if fields else None


def _pid(value) -> bool:
    return type(value) is int and 0 < value < 1 << 31


def valid_started(started) -> bool:
    """Whether ``started`` (read from ``started.json``) is shaped as the launcher writes it:
    an object whose pid and pgid are process ids and ``began`` a string (or absent)."""
    return (
        isinstance(started, dict)
        and _pid(started.get("pid"))
        and _pid(started.get("pgid"))
        and isinstance(started.get("began", ""), (str, type(None)))
    )


def alive(started: dict, jobdir) -> bool:
    """Is the launcher that recorded ``started`` (``started.json``) still running, and not a
    recycled pid? By its pid and when it began; for a record without that (an older
    version's launcher), by its command line, which named the job's directory. A record
    not shaped as a launcher's (:func:`valid_started`) names no live launcher."""
    if not valid_started(started):
        return False
    pid = started["pid"]
    fields = stat_fields(pid)
    if not fields or fields[0] == "Z":
        return False
    if started.get("began") is not None:
        return fields[19] == started["began"]
    try:
        cmdline = _read(f"/proc/{pid}/cmdline", "rb").split(b"\0")
    except OSError:
        return False
    return os.fspath(jobdir).encode() in cmdline


def launcher(d) -> tuple[int, str] | None:
    """The pid of the job's launcher and when it began, once it has been started."""
    try:
        with os.fdopen(_open_record(_join(d, "launched")), "rb") as fh:
            text = fh.read(64).decode("ascii", "replace")
    except OSError:
        return None
    pid, _, began = text.strip().partition(" ")
    if not (pid.isascii() and pid.isdigit() and len(pid) <= 10 and _pid(int(pid))):
        return None
    return int(pid), began


def launcher_alive(d) -> bool:
    """Is the job's launcher still running? By pid and start time: its command line may
    not be there yet while it execs, and a pid may be reused."""
    started = launcher(d)
    fields = stat_fields(started[0]) if started else None
    return bool(fields) and fields[0] != "Z" and fields[19] == started[1]


def launch_pending(d) -> bool:
    """Claimed, and its launcher not started yet (nor given up on)."""
    launched = _join(d, "launched")
    return os.path.exists(launched) and launcher(d) is None and age(launched) <= UNFINISHED_START


def running(d) -> bool:
    """Has the job started (or is it starting) and not ended? By its launcher's record,
    or where that is not one (:func:`valid_started`) by ``launched``."""
    if os.path.exists(_join(d, "exit.json")):
        return False
    started = read_json(_join(d, "started.json"))
    if valid_started(started):
        return alive(started, d)
    if not os.path.exists(_join(d, "launched")):
        return False
    if launcher(d) is not None:
        return launcher_alive(d)
    return not os.path.exists(_join(d, "cancelled.json"))


def count_running(root) -> dict[str, int]:
    """Jobs started and not ended, per owner key (what their running markers hold);
    markers of ended ones go (a launcher killed before it could remove its own), and a
    start left unfinished is queued again."""
    counts: dict[str, int] = {}
    for name in names(_join(root, STARTED)):
        d, marker = _join(root, name), _join(root, STARTED, name)
        if (
            os.path.isdir(d)
            and os.path.exists(_join(d, "launched"))
            and launcher(d) is None
            and not os.path.exists(_join(d, "started.json"))
            and age(_join(d, "launched")) > UNFINISHED_START
        ):
            os.unlink(_join(d, "launched"))
            mark(_join(root, QUEUE), queue_marker(name, marked_owner(marker)))
            _unlink(marker)
        elif os.path.isdir(d) and running(d):
            key = marked_owner(marker)
            counts[key] = counts.get(key, 0) + 1
        else:
            _unlink(marker)
    return counts


def _served(root, key: str) -> int:
    """When the owner ``key`` last had a job claimed (ns; 0: never, or forgotten)."""
    try:
        return os.stat(_join(root, SERVED, key or OLD_OWNER)).st_mtime_ns
    except OSError:
        return 0


def claim(root, max_running: int) -> list[str]:
    """Take queued jobs while fewer than ``max_running`` run (the caller holds
    :func:`locked`), fairly among owners: each free slot to the owner with the fewest jobs
    running, then the one served least recently, then the oldest job; that owner's oldest.
    Each is marked running (with its owner) and ``launched`` (empty), its queue marker
    removed; the caller starts their launchers (:func:`launch`) once the lock is released.
    Their directory names. Reads the markers, the claimed jobs' directories and one
    ``.served`` entry per owner waiting, nothing else."""
    waiting = queued(_join(root, QUEUE))
    if not waiting:
        return []
    running_now = count_running(root)
    count = sum(running_now.values())
    if count >= max_running:
        return []
    by_owner: dict[str, list[tuple[int, str, str]]] = {}
    for name, key, marker in waiting:
        by_owner.setdefault(key, []).append((int(name), name, marker))
    for jobs in by_owner.values():
        jobs.sort(reverse=True)  # the oldest last, for pop()
    served = {key: _served(root, key) for key in by_owner}
    taken = []
    while count < max_running and by_owner:
        key = min(by_owner, key=lambda k: (running_now.get(k, 0), served[k], by_owner[k][-1][0]))
        _, name, marker = by_owner[key].pop()
        if not by_owner[key]:
            del by_owner[key]
        d, marker = _join(root, name), _join(root, QUEUE, marker)
        if not os.path.isdir(d):  # being prepared, or gone (deleted, or a crash while preparing)
            if age(marker) > UNFINISHED_START:
                _unlink(marker)
            continue
        if any(os.path.exists(_join(d, f)) for f in ("launched", "cancelled.json", "started.json")):
            _unlink(marker)
            continue
        mark(_join(root, STARTED), name, key)
        _touch(_join(d, "launched"))
        _unlink(marker)
        taken.append(name)
        count += 1
        running_now[key] = running_now.get(key, 0) + 1
        # served now: later than any other (the clock's ticks may be coarser than a claim)
        served[key] = at = max(time.time_ns(), *served.values()) + 1
        mark(_join(root, SERVED), key or OLD_OWNER)
        os.utime(_join(root, SERVED, key or OLD_OWNER), ns=(at, at))
    return taken


def launch(d, python: str) -> int | None:
    """Start the launcher of the claimed job ``d`` (this file, by path, in a session of its
    own) and record its pid and start time in ``launched``; its pid. posix_spawn returns
    once the child has exec'd the interpreter (a vfork), before the launcher's Python runs;
    the caller holds no lock."""
    d = os.fspath(d)
    env = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL") if k in os.environ}
    try:
        pid = os.posix_spawn(
            python,
            [python, "-I", "-S", os.path.abspath(__file__), d],
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,  # its own session and group: a cancel signals exactly it
        )
    except OSError as e:
        with open(_join(d, "stderr"), "a") as err:
            err.write(f"ijp: cannot start the job's launcher: {e.strerror}\n")
        write_json(_join(d, "exit.json"), {"code": NOT_STARTED, "signal": None, "at": now()})
        _unlink(_join(os.path.dirname(d), STARTED, os.path.basename(d)))
        return None
    _launched(d, pid)
    return pid


def _launched(d: str, pid: int) -> None:
    """``launched``: the launcher's pid and when it began (whole, or not there)."""
    tmp = _join(d, "launched.tmp")
    with open(tmp, "w") as fh:
        fh.write(f"{pid} {began(pid) or 0}")
    os.replace(tmp, _join(d, "launched"))


class _Next(Exception):  # noqa: N818 - not an error: this process becomes the next launcher
    """Raised in a launcher forked to run the queued job ``jobdir``: it unwinds the ended
    job's frames, and :func:`main` runs that job."""

    def __init__(self, jobdir: str):
        super().__init__(jobdir)
        self.jobdir = jobdir


def fork_launcher(d, python: str) -> int | None:
    """Start the launcher of the claimed job ``d`` as a fork of this one, as a launcher
    does for the jobs behind its own: the interpreter and its modules are loaded already,
    which a fresh ``python -I -S`` (:func:`launch`) pays for again (most of a start's
    cost). In a session of its own; the child raises :class:`_Next`."""
    d = os.fspath(d)
    try:
        pid = os.fork()
    except OSError:
        return launch(d, python)
    if pid == 0:
        os.setsid()
        raise _Next(d)
    _launched(d, pid)
    return pid


def dispatch(root, max_running: int, python: str, start=launch) -> list[int]:
    """Start queued jobs, fairly among owners (:func:`claim`), while fewer than
    ``max_running`` run: claimed under the lock, their launchers started
    (``start(jobdir, python)``) after it is released; the pids of the launchers started."""
    if not queued(_join(root, QUEUE)):
        return []
    with locked(root):
        taken = claim(root, max_running)
    return [pid for name in taken if (pid := start(_join(root, name), python)) is not None]


def start_next(jobdir) -> None:
    """As a job ends: start what waits behind it (the backend would only at its next call),
    each in a fork of this launcher."""
    root = os.path.dirname(jobdir)
    _unlink(_join(root, STARTED, os.path.basename(jobdir)))
    _unlink(_join(root, DESKTOPS, os.path.basename(jobdir)))  # an interactive job's marker
    config = read_json(_join(root, CONFIG))
    if isinstance(config, dict) and type(config.get("max_running")) is int:
        dispatch(root, config["max_running"], sys.executable, fork_launcher)


# --- the SLURM launcher -----------------------------------------------------------------


def exec_slurm(jobdir: str) -> int:
    """Inside a SLURM job (stdout and stderr are the job's files): replace this process
    with the sandbox. scancel signals every process of the job; the sandbox ends with
    bwrap (``--die-with-parent``)."""
    setup = JobSetup(jobdir)
    env = dict(os.environ, **setup.env)
    try:
        if (password_r := setup.password_fd()) is not None:
            os.set_inheritable(password_r, True)
        command = setup.command(password_fd=password_r)
        os.chdir(setup.work)
        set_limits(setup.sandbox)
        for name in RESTORED_SIGNALS:  # as Python leaves them ignored
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), signal.SIG_DFL)
        os.execve(command[0], command, env)  # noqa: S606 - an argv list, no shell
    except OSError as e:
        sys.stderr.write(f"ijp: cannot start {setup.executable}: {e.strerror}\n")
    return NOT_STARTED


def main(argv: list[str]) -> int:
    os.umask(0o077)  # what the job writes is its owner's alone
    if len(argv) == 3 and argv[1] == "--slurm":
        return exec_slurm(os.path.realpath(argv[2]))
    if len(argv) != 2:
        sys.stderr.write("usage: runner.py [--slurm] JOBDIR\n")
        return 2
    jobdir = os.path.realpath(argv[1])
    while True:
        try:
            return run(jobdir)
        except _Next as forked:  # a fork of this launcher, for the job behind its own
            jobdir = forked.jobdir


if __name__ == "__main__":
    sys.exit(main(sys.argv))
