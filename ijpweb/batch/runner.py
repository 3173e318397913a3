"""The one job launcher: every backend starts a job's program through this file.

The standard library only, and run by path (``python -I -S .../runner.py``): it loads in
a few milliseconds and sees nothing of the portal. Two ways to run it:

``runner.py JOBDIR`` (the local backend, which starts it in its own session and does not
wait for it): records the start in ``started.json``, runs the program with stdout and
stderr going to files in JOBDIR, and records the end and the exit code in ``exit.json``,
all on disk, so the portal can restart at any time without losing track. On SIGTERM (a
cancel) it passes the signal on to the job's processes, and after a grace period kills
whatever is left of them.

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

import contextlib
import fcntl
import json
import os
import pwd
import select
import signal
import stat
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

GRACE_SECONDS = 5.0
SESSION_ENV = "IJP_SESSION_ID"  # as ijpweb.planning names it (the runner imports nothing of ijpweb)
PRIVATE_ENV = "secret.json"  # the environment only the program may have (its session)
SANDBOX_TMP = "/tmp"  # noqa: S108 - a tmpfs of the sandbox's own
NOT_STARTED = 127  # the shell's code for "command not found"

HOST = os.uname().nodename  # (socket.gethostname(), without importing socket)
BWRAP = "/usr/bin/bwrap"
SETPRIV = "/usr/bin/setpriv"  # util-linux
# The system, read-only. Where these are symlinks (merged /usr) the links are recreated.
SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC = "/etc"


def now() -> str:
    return datetime.now(UTC).isoformat()


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


# --- the sandbox -----------------------------------------------------------------------


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
                if stat.S_ISLNK(st.st_mode):
                    continue
                is_dir = stat.S_ISDIR(st.st_mode)
                if not st.st_mode & stat.S_IROTH or (is_dir and not st.st_mode & stat.S_IXOTH):
                    out.append(e.path)
                elif is_dir:
                    stack.append(e.path)
    return sorted(out)


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
    for h in hidden(ETC):
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

    def __init__(self, jobdir: Path):
        self.jobdir = jobdir
        spec = json.loads((jobdir / "spec.json").read_text())
        self.secret = self._take_secret()
        self.sandbox = spec.get("sandbox") or {"type": "none"}
        self.work = str(jobdir / "work")
        self.output = str(jobdir / "output")
        env = dict(spec["env"])
        env.update(self.secret)
        self.env = env
        self.executable = spec["executable"]
        self.identity: tuple[int, int] | None = None  # whom the program runs as (see identity())
        # null in the argv: where the session goes as an argument (a facility opted in)
        session = self.secret.get(SESSION_ENV)
        self.argv = [a for a in (("--sessionId=" + session if session else None) if a is None else a
                                 for a in spec["argv"]) if a is not None]  # fmt: skip

    def _take_secret(self) -> dict:
        path = self.jobdir / PRIVATE_ENV
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return {}
        finally:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        return data

    @property
    def sandboxed(self) -> bool:
        return self.sandbox.get("type") == "bwrap"

    def command(self, info_fd: int | None = None) -> list[str]:
        """The command to start: the program, in its sandbox. Raises OSError (with
        the reason) when it cannot start."""
        program = _resolve(self.executable, self.env.get("PATH", os.defpath))
        if program is None:
            raise FileNotFoundError(2, "No such file or directory")
        if not self.sandboxed:
            return [program, *self.argv]
        bwrap = self.sandbox.get("bwrap") or BWRAP
        self.identity = identity(self.sandbox)
        for tool in (bwrap, *((SETPRIV,) if self.identity else ())):
            if not os.access(tool, os.X_OK):
                raise FileNotFoundError(2, f"{tool} is not installed on {HOST}")
        program = os.path.realpath(program)
        folder = os.path.dirname(program)
        if _under(str(self.jobdir.parent), folder):
            raise PermissionError(1, "its directory holds the job directories, which no job may see")
        sandbox = dict(self.sandbox, read_only=[*self.sandbox.get("read_only", ()), folder])
        self.env["TMPDIR"] = SANDBOX_TMP
        if self.identity is not None:  # its own directories are the only ones it may write
            for d in (self.work, self.output):
                os.chown(d, *self.identity)
        return [*bwrap_argv(sandbox, [self.work, self.output], self.work, info_fd), program, *self.argv]


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
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{entry}/ns/pid") == ns:
                    out.append(int(entry))
    return [*out, init_pid]


def _group_members(pgid: int) -> list[int]:
    me, out = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            stat_ = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat_[stat_.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            out.append(int(entry))
    return out


def _signal(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, sig)


def kill_sandbox(jobdir: Path) -> list[int]:
    """Kill what is left of a job's sandbox once its launcher has gone without recording
    the end (killed, perhaps while bwrap was still setting up: bwrap binds its life to
    its parent's only just before it starts the program). bwrap's processes are known by
    their command line, which binds the job's work directory; killing the sandbox's init
    ends every process in it. The pids signalled."""
    wanted = [b"--bind", str(jobdir / "work").encode()]
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if os.path.basename(argv[0]) == b"bwrap" and any(
            argv[i : i + 2] == wanted for i in range(len(argv) - 1)
        ):
            found.append(int(entry))
    _signal(found, signal.SIGKILL)
    return found


def _dying_with(parent: int, sandbox: dict):
    """A preexec_fn: the child is killed when this launcher ends, from before it execs
    bwrap. bwrap's own --die-with-parent takes effect only once it has started: a launcher
    killed in between left the sandbox running, orphaned. It also sets the sandbox's
    resource limits."""
    import ctypes

    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:
        prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # it has ended already
            os._exit(1)
        set_limits(sandbox)

    return preexec


def _ending(pid: int):
    """A function ``ended(seconds)``: whether the child ``pid`` has ended, waiting at most
    that long and returning as soon as it ends (a pidfd; Popen.wait(timeout) polls, up to
    50 ms late)."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:  # an older kernel
        return lambda seconds: (
            time.sleep(seconds) or os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        )
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    return lambda seconds: bool(poller.poll(int(seconds * 1000)))


def _read_info(fd: int) -> int | None:
    """bwrap's --info-fd: JSON with the sandbox init's pid, written once it runs."""
    data = b""
    while chunk := os.read(fd, 4096):
        data += chunk
        try:
            return int(json.loads(data)["child-pid"])
        except (ValueError, KeyError):
            continue
    return None


def run(jobdir: Path) -> int:
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
            jobdir / "started.json",
            {
                "pid": os.getpid(),
                "pgid": os.getpgrp(),
                "at": now(),
                "host": HOST,
                "cores": len(os.sched_getaffinity(0)),
            },
        )
    if (jobdir / "cancelled.json").exists():
        write_json(jobdir / "exit.json", {"code": None, "signal": None, "at": now()})
        start_next(jobdir)
        return 0
    info_r = info_w = None
    if setup.sandboxed:
        info_r, info_w = os.pipe()
    try:
        command = setup.command(info_w)
        with open(jobdir / "stdout", "ab") as out, open(jobdir / "stderr", "ab") as err:
            child = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=setup.work,
                env=setup.env,
                close_fds=True,
                pass_fds=() if info_w is None else (info_w,),
                # the sandbox in a group of its own: a cancel signals the wrapper, which
                # passes it on inside and kills the sandbox after the grace period
                process_group=0 if setup.sandboxed else None,
                preexec_fn=_dying_with(os.getpid(), setup.sandbox) if setup.sandboxed else None,
            )
    except OSError as e:
        with open(jobdir / "stderr", "a") as err:
            err.write(f"ijp: cannot start {setup.executable}: {e.strerror}\n")
        write_json(jobdir / "exit.json", {"code": NOT_STARTED, "signal": None, "at": now()})
        start_next(jobdir)
        return 0
    finally:
        if info_w is not None:
            os.close(info_w)
    init_pid = _read_info(info_r) if info_r is not None else None
    if info_r is not None:
        os.close(info_r)
    pgid = os.getpgrp()

    def members() -> list[int]:
        return _namespace_members(init_pid) if init_pid else _group_members(pgid)

    forwarded = False
    ended = _ending(child.pid)
    while True:
        if ended(0.2):
            rc = child.wait()
            break
        if terminated["at"] is None:
            continue
        if init_pid and not forwarded:  # the program's own processes; not the sandbox's init
            _signal(members()[:-1], signal.SIGTERM)
            forwarded = True
        if time.monotonic() - terminated["at"] > GRACE_SECONDS:
            _signal(members(), signal.SIGKILL)  # init last: its end ends the namespace
            if init_pid:
                with contextlib.suppress(OSError):
                    os.kill(child.pid, signal.SIGKILL)
    if terminated["at"] is not None and not init_pid:
        # The program is gone; make sure nothing it started lingers in the group.
        _signal(_group_members(pgid), signal.SIGKILL)
    code, sig = (rc, None) if rc >= 0 else (None, -rc)
    if init_pid and rc > 128 and rc - 128 in signal.valid_signals():
        code, sig = None, rc - 128  # bwrap reports a signal as 128 + its number
    write_json(jobdir / "exit.json", {"code": code, "signal": sig, "at": now()})
    start_next(jobdir)
    return 0


# --- the local backend's queue -----------------------------------------------------------
# <root>/queue/<id> marks a job waiting to start and <root>/running/<id> one started, until
# its launcher ends; <root>/.lock serialises starts; <root>/.backend.json holds max_running.
# The backend starts queued jobs when it is asked (a submit, a harvest, a cancel), and
# each launcher starts the next as its own job ends, so a queue drains at once. A start
# reads only these markers, never every job directory, and waits for no launcher.

QUEUE, STARTED, LOCK, CONFIG = "queue", "running", ".lock", ".backend.json"
# a start the backend did not finish (it stopped between claiming the job and starting
# its launcher) is retried after this many seconds
UNFINISHED_START = 60.0


@contextlib.contextmanager
def locked(root: Path):
    fd = os.open(root / LOCK, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # and the lock with it


def read_json(path: Path) -> dict | None:
    """A record a job left on disk, or None while it is not there (or half-written)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def names(d: Path) -> list[str]:
    try:
        return [n for n in os.listdir(d) if n.isdigit()]
    except FileNotFoundError:
        return []


def mark(d: Path, name: str) -> None:
    """The marker ``d/name`` (``d`` made, 0700, if needed: an operator may remove it)."""
    try:
        (d / name).touch()
    except FileNotFoundError:
        with contextlib.suppress(FileExistsError):
            os.mkdir(d, 0o700)
        (d / name).touch()


def age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command's name (state first)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def alive(pid: int, jobdir: Path) -> bool:
    """Is ``pid`` still the launcher of ``jobdir`` (and not a recycled pid)? For a launcher
    that recorded its own start: its command line names the job's directory."""
    fields = stat_fields(pid)
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return bool(fields) and fields[0] != "Z" and str(jobdir).encode() in cmdline


def launcher(d: Path) -> tuple[int, str] | None:
    """The pid of the job's launcher and when it began, once it has been started."""
    try:
        pid, _, began = (d / "launched").read_text().strip().partition(" ")
    except OSError:
        return None
    return (int(pid), began) if pid.isdigit() else None


def launcher_alive(d: Path) -> bool:
    """Is the job's launcher still running? By pid and start time: its command line may
    not be there yet while it execs, and a pid may be reused."""
    started = launcher(d)
    fields = stat_fields(started[0]) if started else None
    return bool(fields) and fields[0] != "Z" and fields[19] == started[1]


def running(d: Path) -> bool:
    """Has the job started (or is it starting) and not ended?"""
    if (d / "exit.json").exists():
        return False
    started = read_json(d / "started.json")
    if started is not None:
        return alive(started["pid"], d)
    if not (d / "launched").exists():
        return False
    if launcher(d) is not None:
        return launcher_alive(d)
    return not (d / "cancelled.json").exists()


def count_running(root: Path) -> int:
    """Jobs started and not ended; markers of ended ones go (a launcher killed before
    it could remove its own), and a start left unfinished is queued again."""
    count = 0
    for name in names(root / STARTED):
        d = root / name
        if (
            d.is_dir()
            and (d / "launched").exists()
            and launcher(d) is None
            and not (d / "started.json").exists()
            and age(d / "launched") > UNFINISHED_START
        ):
            (d / "launched").unlink()
            mark(root / QUEUE, name)
            (root / STARTED / name).unlink(missing_ok=True)
        elif d.is_dir() and running(d):
            count += 1
        else:
            (root / STARTED / name).unlink(missing_ok=True)
    return count


def launch(d: Path, python: str) -> int | None:
    """Start the job's launcher (this file, by path, in a session of its own); its pid."""
    root = d.parent
    mark(root / STARTED, d.name)
    (d / "launched").touch()
    (root / QUEUE / d.name).unlink(missing_ok=True)
    env = {k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL") if k in os.environ}
    try:
        pid = os.posix_spawn(
            python,
            [python, "-I", "-S", os.path.abspath(__file__), str(d)],
            env,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,  # its own session and group: a cancel signals exactly it
        )
    except OSError as e:
        with open(d / "stderr", "a") as err:
            err.write(f"ijp: cannot start the job's launcher: {e.strerror}\n")
        write_json(d / "exit.json", {"code": NOT_STARTED, "signal": None, "at": now()})
        return None
    fields = stat_fields(pid)
    (d / "launched").write_text(f"{pid} {fields[19] if fields else 0}")
    return pid


def dispatch(root: Path, max_running: int, python: str) -> list[int]:
    """Start queued jobs, oldest first, while fewer than ``max_running`` run (the caller
    holds :func:`locked`); the pids of the launchers started."""
    waiting = names(root / QUEUE)
    if not waiting:
        return []
    started, count = [], count_running(root)
    for name in sorted(waiting, key=int):
        if count >= max_running:
            break
        d, marker = root / name, root / QUEUE / name
        if not d.is_dir():  # being prepared, or gone (deleted, or a crash while preparing)
            if age(marker) > UNFINISHED_START:
                marker.unlink(missing_ok=True)
            continue
        if any((d / f).exists() for f in ("launched", "cancelled.json", "started.json")):
            marker.unlink(missing_ok=True)
            continue
        pid = launch(d, python)
        if pid is not None:
            started.append(pid)
        count += 1
    return started


def start_next(jobdir: Path) -> None:
    """As a job ends: start what waits behind it (the backend would only at its next call)."""
    root = jobdir.parent
    (root / STARTED / jobdir.name).unlink(missing_ok=True)
    config = read_json(root / CONFIG)
    if config and names(root / QUEUE):
        with locked(root):
            dispatch(root, int(config["max_running"]), sys.executable)


# --- the SLURM launcher -----------------------------------------------------------------


def exec_slurm(jobdir: Path) -> int:
    """Inside a SLURM job (stdout and stderr are the job's files): replace this process
    with the sandbox. scancel signals every process of the job; the sandbox ends with
    bwrap (``--die-with-parent``)."""
    setup = JobSetup(jobdir)
    env = dict(os.environ, **setup.env)
    try:
        command = setup.command()
        os.chdir(setup.work)
        set_limits(setup.sandbox)
        os.execve(command[0], command, env)  # noqa: S606 - an argv list, no shell
    except OSError as e:
        sys.stderr.write(f"ijp: cannot start {setup.executable}: {e.strerror}\n")
    return NOT_STARTED


def main(argv: list[str]) -> int:
    os.umask(0o077)  # what the job writes is its owner's alone
    if len(argv) == 3 and argv[1] == "--slurm":
        return exec_slurm(Path(argv[2]).resolve())
    if len(argv) != 2:
        sys.stderr.write("usage: runner.py [--slurm] JOBDIR\n")
        return 2
    return run(Path(argv[1]).resolve())


if __name__ == "__main__":
    sys.exit(main(sys.argv))
