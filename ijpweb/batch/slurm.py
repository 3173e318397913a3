"""The SLURM backend, through SLURM's commands (pyslurm does not build against the Slurm
Debian ships).

Each job gets a directory on the shared filesystem (see jobdirs.py) and runs through the
one job launcher (runner.py): on the node it takes the session from the job's directory
and replaces itself with the job's sandbox, the program's argv a list (never a shell).
``sbatch --parsable`` submits it with the portal's job id in the job name; harvesting
asks ``squeue`` once for every job it knows, and ``sacct -c`` (the job completion log:
it works without slurmdbd) for jobs that have left the queue or failed. A job missing
from both is Unknown, never assumed to have succeeded.

An interactive job (issue 14) is one ``sbatch`` of its own (never part of an array) with
``--time`` = its session's time limit: the launcher runs the desktop session's supervisor
(session.py) in the sandbox on the node, which writes ``desktop/state.json`` in the job's
directory on the shared filesystem once its VNC server answers; :meth:`states` reads it
(as untrusted, jobdirs.desktop_state). SLURM enforces the time limit (its TIMEOUT is the
session's normal end, COMPLETED); End session is ``end.json`` and one ``scancel``.
``desktops/<slurm id>`` marks the interactive jobs, counted against ``max_interactive``
with one ``squeue`` call.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from contextlib import suppress
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from ..states import JobStatus
from . import Batched, BatchError, BatchState, JobBusy, JobSpec
from .jobdirs import (
    DirOutputs,
    Place,
    clean_leftovers,
    desktop_record,
    desktop_state,
    ended_by_portal,
    fixed_hosts,
    interactive,
    prepare,
    private_dir,
    read_stream,
)
from .runner import (
    DEFAULT_BIND,
    DESKTOPS,
    END_RECORD,
    PRIVATE_ENV,
    desktop_secret,
    locked,
    read_json,
    write_json,
)
from .sandbox import Sandbox, describe, for_job

TIMEOUT = 60
# The job launcher is the one every backend uses (runner.py, the standard library only),
# run by SLURM as ``launch-<hash> --slurm JOBDIR``: it takes the session from the job's
# secret.json and replaces itself with the job's sandbox. SLURM runs a spooled copy.
RUNNER = Path(__file__).resolve().with_name("runner.py")
# The supervisor of an interactive job's session, which the launcher runs by path. The
# launcher finds it beside its own file, but SLURM runs a copy spooled on the node: the
# copy is told where the installed one is (the portal's Python and package are on the
# nodes, as the launcher's interpreter is), just before its main guard.
SESSION_SCRIPT = RUNNER.with_name("session.py")
MAIN_GUARD = '\nif __name__ == "__main__":'
# The launcher of job arrays (the array's manifest is the argument): task i runs the
# i-th job of the manifest, in that job's directory and with its stdout/stderr, through
# the launcher above; it first records its raw SLURM id there (sacct -c knows array
# tasks only by that id).
ARRAY_LAUNCHER = """#!{python} -IS
# ijpweb: run task $SLURM_ARRAY_TASK_ID of an array: the job its manifest names.
import json, os, sys
d = json.load(open(sys.argv[1]))[int(os.environ["SLURM_ARRAY_TASK_ID"])]
with open(os.path.join(d, "slurm.json"), "w") as fh:
    json.dump({{"job_id": os.environ["SLURM_JOB_ID"], "array_job_id": os.environ["SLURM_ARRAY_JOB_ID"],
               "task": os.environ["SLURM_ARRAY_TASK_ID"]}}, fh)
for fd, name in ((1, "stdout"), (2, "stderr")):
    os.dup2(os.open(os.path.join(d, name), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), fd)
os.chdir(os.path.join(d, "work"))
os.execv({launcher!r}, [{launcher!r}, "--slurm", d])
"""
ID = re.compile(r"\d+(_\d+)?")  # a job, or a task of an array
# what the harvest asks squeue of every job: id, state, reason, start, end, and where it runs
SQUEUE_FORMAT = "%i|%T|%r|%S|%e|%D|%C|%N"
# finished jobs from the job completion log (it works without slurmdbd), then the ids;
# the longest list of ids given to one call (Linux refuses an argument over 128 KiB)
SACCT_ARGV = (
    "sacct",
    "-c",
    "-n",
    "-P",
    "-o",
    "JobID,State,ExitCode,Start,End,NNodes,AllocCPUS,NodeList",
    "-j",
)
SACCT_IDS_CHARS = 100_000  # (also the bound of one scancel's ids, each its own argument)
# scancel's error about one job: "scancel: error: Kill job error on job id 12: <why>"
SCANCEL_ERROR = re.compile(r"job id (\d+(?:_\d+)?)\b:?(.*)")
# squeue/sacct state -> (status, reason for the user)
STATES = {
    "PENDING": JobStatus.QUEUED,
    "CONFIGURING": JobStatus.QUEUED,
    "REQUEUED": JobStatus.QUEUED,
    "RESIZING": JobStatus.QUEUED,
    "RUNNING": JobStatus.RUNNING,
    "COMPLETING": JobStatus.RUNNING,
    "STAGE_OUT": JobStatus.RUNNING,
    "SUSPENDED": JobStatus.HELD,
    "STOPPED": JobStatus.HELD,
    "COMPLETED": JobStatus.COMPLETED,
    "CANCELLED": JobStatus.CANCELLED,
    "FAILED": JobStatus.FAILED,
    "OUT_OF_MEMORY": JobStatus.FAILED,
    "TIMEOUT": JobStatus.FAILED,
    "NODE_FAIL": JobStatus.FAILED,
    "BOOT_FAIL": JobStatus.FAILED,
    "DEADLINE": JobStatus.FAILED,
    "PREEMPTED": JobStatus.FAILED,
}
REASONS = {
    "OUT_OF_MEMORY": "out of memory",
    "TIMEOUT": "time limit reached",
    "NODE_FAIL": "node failure",
    "BOOT_FAIL": "node failed to boot",
    "DEADLINE": "deadline passed",
    "PREEMPTED": "preempted",
}
# a job SLURM itself ended (its session's supervisor only saw a signal)
SLURM_ENDS = frozenset(REASONS.values())
HELD_REASONS = ("JobHeldUser", "JobHeldAdmin")
ENDED = (JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED)
SBATCH_FLAGS = {"partition": "--partition", "account": "--account", "time": "--time",
                "cpus": "--cpus-per-task", "memory": "--mem", "gpus": "--gpus"}  # fmt: skip
# An interactive job: SLURM ends its session at ``--time`` (TIMEOUT, a normal end); the
# supervisor's own limit is this much later, a backstop (slurmctld looks at time limits
# every 30 s, then gives KillWait before SIGKILL).
SESSION_GRACE = 180
TIMEOUT_REASON = "the session's time limit was reached"


def sbatch_time(seconds: int) -> str:
    """A time limit in seconds as sbatch's ``D-HH:MM:SS``, in whole minutes rounded up (SLURM
    counts minutes), at least one."""
    minutes = max(1, -(-int(seconds) // 60))
    days, rest = divmod(minutes, 24 * 60)
    return f"{days}-{rest // 60:02d}:{rest % 60:02d}:00"


def launcher_text(python: str) -> str:
    """runner.py as SLURM's launcher: run by ``python -IS``, and told where the session's
    supervisor is (SLURM runs a spooled copy of the launcher, not beside it)."""
    text = RUNNER.read_text()
    if text.count(MAIN_GUARD) != 1 or "SESSION_SCRIPT" not in text:
        raise RuntimeError(
            "runner.py has not the one main guard and SESSION_SCRIPT the SLURM launcher expects"
        )
    where = (
        "\n# (the SLURM backend's launcher: SLURM runs a spooled copy of this file)\n"
        f"SESSION_SCRIPT = {str(SESSION_SCRIPT)!r}\n\n"
    )
    return f"#!{python} -IS\n" + text.replace(MAIN_GUARD, where + MAIN_GUARD)


def _time(text: str) -> datetime | None:
    """SLURM prints local time without a zone; 'Unknown'/'None' mean not yet."""
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        return None


class SlurmBackend(Batched, DirOutputs):
    sacct_ids_chars = SACCT_IDS_CHARS

    def __init__(
        self,
        name: str,
        root: str | os.PathLike,
        slurm_conf: str | None = None,
        sbatch_options: Sequence[str] = (),
        resources: Mapping[str, str] | None = None,
        path: Sequence[str] = (),
        session_in_argv: bool = False,
        python: str = sys.executable,
        job_prefix: str = "ijp",
        array_max: int = 1000,
        timeout: float = TIMEOUT,
        arrays: bool = True,
        sandbox: Sandbox | None = None,
        setting: str | None = None,
        max_interactive: int = 4,
        desktop_bind: str = DEFAULT_BIND,
    ):
        """``sandbox`` is checked here, on the submitting host (the nodes need bubblewrap
        as well: a job whose node has none fails, never runs unsandboxed). ``setting``:
        the prefix of this backend's settings, for error messages. ``max_interactive``:
        desktop sessions live at once (queued or running); ``desktop_bind``: the address
        their VNC servers listen on, which the portal's proxy must reach."""
        self.name = name
        # SLURM job names are <job_prefix>-<portal job id>; give each portal sharing a
        # cluster its own prefix, or they would find each other's jobs
        self.job_prefix = job_prefix
        self.timeout = timeout  # seconds a SLURM command may take
        self.arrays = arrays  # submit a submission's jobs as job arrays (submit_many)
        self.array_max = max(1, array_max)  # SLURM's MaxArraySize is 1001 by default
        self.root = Path(root).resolve()
        private_dir(self.root)
        (self.root / "by-slurm-id").mkdir(mode=0o700, exist_ok=True)
        (self.root / "arrays").mkdir(mode=0o700, exist_ok=True)
        self.desktops = self.root / DESKTOPS
        self.desktops.mkdir(mode=0o700, exist_ok=True)
        self.max_interactive = max(0, int(max_interactive))
        self.desktop_bind = desktop_bind
        # where a session's VNC server may be: this address on every node, or (a host name,
        # 0.0.0.0: None) the address of the node SLURM runs the job on (F5)
        self.desktop_fixed = fixed_hosts(desktop_bind)
        self.setting = setting or f"ijp.batch.{name}."
        clean_leftovers(self.root)
        # one launcher for every job (its directory is the argument), one for every
        # array (its manifest is the argument): written once
        self.launcher = self._script("launch", launcher_text(python))
        self.array_launcher = self._script(
            "launch-array", ARRAY_LAUNCHER.format(python=python, launcher=str(self.launcher))
        )
        self.env = dict(os.environ)
        if slurm_conf:
            self.env["SLURM_CONF"] = slurm_conf
        self.sbatch_options = list(sbatch_options)
        self.resources = dict(resources or {})  # defaults; a job type's <resources> win
        self.path = [str(p) for p in path]
        self.session_in_argv = session_in_argv
        self.sandbox = describe(sandbox or Sandbox(), self.path, self.root, setting or f"ijp.batch.{name}.")

    def _prepare(self, spec: JobSpec) -> Path:
        return prepare(self.root, spec, self.path, self.session_in_argv, for_job(self.sandbox, spec))[0]

    # --- commands ------------------------------------------------------------------------

    def _script(self, name: str, text: str) -> Path:
        """``text`` as an executable file named by its content (so a changed launcher
        never replaces one that queued jobs will still run)."""
        path = self.root / f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
        if not path.exists():
            tmp = self.root / f".{path.name}.{os.getpid()}"
            tmp.write_text(text)
            tmp.chmod(0o700)
            os.replace(tmp, path)
        return path

    def _exec(self, argv: list[str]) -> subprocess.CompletedProcess:
        """One SLURM command (argv a list, never a shell), within the backend's timeout."""
        try:
            return subprocess.run(
                argv, capture_output=True, text=True, env=self.env, timeout=self.timeout, check=False
            )
        except FileNotFoundError:
            raise BatchError(f"{argv[0]} is not installed on this host") from None
        except subprocess.TimeoutExpired:
            raise BatchError(f"{argv[0]} did not answer within {self.timeout:g} s") from None

    def _run(self, argv: list[str], ok_codes=(0,)) -> str:
        res = self._exec(argv)
        if res.returncode not in ok_codes:
            first = (res.stderr or res.stdout).strip().splitlines()
            raise BatchError(f"{argv[0]} failed: {first[-1] if first else f'exit {res.returncode}'}")
        return res.stdout

    def _options(self, spec: JobSpec) -> list[str]:
        wanted = {**self.resources, **spec.resources}
        if spec.interactive:  # its session's time limit (the job type's time, or the ini's)
            wanted["time"] = sbatch_time(desktop_record(spec, self.desktop_bind)["time_limit"])
        return [
            f"{flag}={wanted[key]}" for key, flag in SBATCH_FLAGS.items() if wanted.get(key)
        ] + self.sbatch_options

    def _dir(self, job_id: str) -> Path:
        if not ID.fullmatch(job_id):
            raise BatchError(f"no such SLURM job {job_id!r}")
        link = self.root / "by-slurm-id" / job_id
        if not link.exists():
            raise BatchError(f"SLURM job {job_id} is not one of this portal's")
        return link.resolve()

    def clean_leftovers(self) -> None:
        """Remove job directories a killed process left half-written (they may hold a
        session); the scheduler's purge calls it, as does each start."""
        clean_leftovers(self.root)

    # --- the protocol ------------------------------------------------------------------

    def submit(self, spec: JobSpec) -> str:
        if spec.interactive:
            return self._submit_interactive(spec)
        return self._sbatch(spec, self._prepare(spec))

    def _sbatch(self, spec: JobSpec, d: Path) -> str:
        out = self._run(
            [
                "sbatch",
                "--parsable",
                "--export=NONE",
                f"--job-name={self.job_prefix}-{spec.job_id}",
                f"--chdir={d / 'work'}",
                f"--output={d / 'stdout'}",
                f"--error={d / 'stderr'}",
                *self._options(spec),
                str(self.launcher),
                "--slurm",
                str(d),
            ]  # fmt: skip
        )
        slurm_id = out.strip().split(";")[0]
        if not slurm_id.isdigit():
            raise BatchError(f"sbatch gave no job id: {out.strip()[:200]!r}")
        self._link(slurm_id, spec.job_id)
        return slurm_id

    def _submit_interactive(self, spec: JobSpec) -> str:
        """An interactive job: one sbatch of its own, once fewer than ``max_interactive``
        of this backend's desktop sessions are live (queued or running: one ``squeue``
        call, under the lock of ``desktops/`` so that two portal processes cannot both take
        the last one); BatchError naming the limit beyond it, with nothing prepared. Its
        job directory gets the desktop's records (jobdirs.prepare), its spec.json the
        supervisor's time limit SESSION_GRACE after SLURM's ``--time``."""
        with locked(self.desktops):
            live = self._live_desktops()
            if live >= self.max_interactive:
                most = self.max_interactive
                raise BatchError(
                    f"the SLURM backend {self.name} runs at most {most} desktop session"
                    f"{'s' if most != 1 else ''} at once ({self.setting}max_interactive); "
                    "end one or try again later"
                )
            limit = desktop_record(spec, self.desktop_bind)["time_limit"]
            supervised = replace(spec, desktop={**(spec.desktop or {}), "time_limit": limit + SESSION_GRACE})
            d = prepare(
                self.root,
                supervised,
                self.path,
                self.session_in_argv,
                for_job(self.sandbox, spec),
                desktop_bind=self.desktop_bind,
            )[0]
            slurm_id = self._sbatch(spec, d)
            _mark(self.desktops / slurm_id)
        return slurm_id

    def _live_desktops(self) -> int:
        """This backend's desktop sessions that SLURM still holds (pending, running,
        completing...): the ``desktops/`` markers among the ids ``squeue`` lists, one call."""
        marked = {n for n in _names(self.desktops) if ID.fullmatch(n)}
        if not marked:
            return 0
        return len(marked.intersection(self._run(["squeue", "-h", "-o", "%i"]).split()))

    def _desktop_ids(self) -> set[str]:
        return set(_names(self.desktops))

    def desktop_password(self, job_id: str) -> str:
        """The VNC password of an interactive job's session, from its directory on the
        shared filesystem (for the portal's proxy); BatchError if it has none."""
        password = desktop_secret(self._dir(job_id))
        if not password:
            raise BatchError(f"SLURM job {job_id} has no desktop")
        return password

    def _link(self, slurm_id: str, portal_id: int) -> None:
        """``by-slurm-id/<slurm id>`` -> the job's directory: output is read through it."""
        with suppress(FileExistsError, FileNotFoundError):  # FileNotFound: no such job here
            os.symlink(Path("..") / str(portal_id), self.root / "by-slurm-id" / slurm_id)

    def submit_many(self, specs: Sequence[JobSpec]) -> dict[int, str]:
        """Submit the jobs as one job array (one sbatch call, up to ``array_max`` jobs);
        their ids are ``<array id>_<task>``. The array's name points at its manifest,
        so find() recognises its tasks after a crash. Interactive jobs are never put in an
        array: each is one sbatch (:meth:`submit`); those refused (max_interactive) are left
        out of the answer, or, when none was taken, the first refusal is raised."""
        if any(s.interactive for s in specs):
            return self._submit_each(specs)
        if len(specs) == 1:
            return {specs[0].job_id: self.submit(specs[0])}
        out: dict[int, str] = {}
        groups: dict[tuple, list[JobSpec]] = {}  # one array per set of resources
        for spec in specs:
            groups.setdefault(tuple(sorted(spec.resources.items())), []).append(spec)
        for group in groups.values():
            for start in range(0, len(group), self.array_max):
                out.update(self._submit_array(group[start : start + self.array_max]))
        return out

    def _submit_each(self, specs: Sequence[JobSpec]) -> dict[int, str]:
        out: dict[int, str] = {}
        refused: BatchError | None = None
        batch = [s for s in specs if not s.interactive]
        if batch:
            out.update(self.submit_many(batch))
        for spec in specs:
            if not spec.interactive:
                continue
            try:
                out[spec.job_id] = self.submit(spec)
            except JobBusy:  # left for later, all of them: find() then sees those taken
                raise
            except BatchError as e:
                refused = refused or e
        if refused is not None and not out:
            raise refused
        return out

    def _submit_array(self, specs: Sequence[JobSpec]) -> dict[int, str]:
        dirs = [str(self._prepare(spec)) for spec in specs]
        token = f"{specs[0].job_id}-{len(specs)}"
        arrays = self.root / "arrays"
        manifest = arrays / f"{token}.json"
        manifest.write_text(json.dumps(dirs))
        out = self._run(
            [
                "sbatch",
                "--parsable",
                "--export=NONE",
                f"--array=0-{len(specs) - 1}",
                f"--job-name={self.job_prefix}-array-{token}",
                f"--chdir={arrays}",
                "--output=/dev/null",
                f"--error={arrays / token}-%a.err",
                *self._options(specs[0]),
                str(self.array_launcher),
                str(manifest),
            ]  # fmt: skip
        )
        array_id = out.strip().split(";")[0]
        if not array_id.isdigit():
            raise BatchError(f"sbatch gave no job id: {out.strip()[:200]!r}")
        ids = {spec.job_id: f"{array_id}_{i}" for i, spec in enumerate(specs)}
        for portal_id, slurm_id in ids.items():
            self._link(slurm_id, portal_id)
        return ids

    def _array_tasks(self, name: str, task: str) -> int | None:
        """The portal job that task ``task`` of the array named ``name`` runs."""
        token = name[len(self.job_prefix) + len("-array-") :]
        try:
            dirs = json.loads((self.root / "arrays" / f"{token}.json").read_text())
            return int(Path(dirs[int(task)]).name)
        except (OSError, ValueError, IndexError):
            return None

    def find(self, job_ids: Sequence[int]) -> dict[int, str]:
        """By job name (``<job_prefix>-<portal id>``): squeue for the queue, sacct -c for the rest."""
        # a job is given its directory before sbatch sees it: without one, SLURM cannot
        # hold it, and SLURM need not be asked (the usual case: a fan-out costs no calls)
        job_ids = [i for i in job_ids if (self.root / str(i)).is_dir()]
        if not job_ids:
            return {}
        wanted = {f"{self.job_prefix}-{i}": i for i in job_ids}
        found: dict[int, str] = {}
        arrays = f"{self.job_prefix}-array-"
        for line in self._run(["squeue", "-h", "-r", "-t", "all", "-o", "%i|%j"]).splitlines():
            slurm_id, _, name = line.partition("|")
            if name in wanted:
                found[wanted[name]] = slurm_id
            elif name.startswith(arrays) and "_" in slurm_id:
                portal_id = self._array_tasks(name, slurm_id.partition("_")[2])
                if portal_id in job_ids:
                    found[portal_id] = slurm_id
        for i in job_ids:  # array tasks that started and left the queue recorded themselves
            if i not in found and (rec := read_json(self.root / str(i) / "slurm.json")):
                found[i] = f"{rec['array_job_id']}_{rec['task']}"
        rest = [n for n, i in wanted.items() if i not in found]
        if rest:
            text = self._run(
                ["sacct", "-c", "-n", "-P", "-o", "JobID,JobName", f"--name={','.join(rest)}"],
                ok_codes=(0, 1),
            )
            for line in text.splitlines():
                slurm_id, _, name = line.partition("|")
                if name in wanted and slurm_id.isdigit():
                    found.setdefault(wanted[name], slurm_id)
        for portal_id, slurm_id in found.items():
            self._link(slurm_id, portal_id)
            if "_" not in slurm_id and interactive(self.root / str(portal_id)):
                _mark(self.desktops / slurm_id)  # (its submit may have ended before it was marked)
        return found

    def estimate(self, spec: JobSpec) -> float | None:
        """Minutes until the job could start, roughly: 0 with idle CPUs, else the
        number of jobs waiting ahead of it."""
        alloc_idle = self._run(["sinfo", "-h", "-o", "%C"]).split("/")
        if len(alloc_idle) >= 2 and alloc_idle[1].isdigit() and int(alloc_idle[1]) > 0:
            return 0.0
        pending = self._run(["squeue", "-h", "-t", "PENDING", "-o", "%i"]).split()
        return float(len(pending) + 1)

    def states(self, ids: Sequence[str]) -> dict[str, BatchState]:
        wanted = {i for i in ids if ID.fullmatch(i)}
        out: dict[str, BatchState] = {
            i: BatchState(JobStatus.UNKNOWN, reason="not a SLURM job id") for i in ids if i not in wanted
        }
        if not wanted:
            return out
        # One call for the whole queue (cheaper than naming thousands of ids); -r lists
        # each task of an array on its own line. A queue holds many alike jobs (a pending
        # array's tasks): each distinct line after the id is read once per call.
        queue: dict[str, BatchState] = {}
        failed: list[str] = []
        read: dict[str, BatchState | None] = {}
        desktops = wanted.intersection(self._desktop_ids())  # the interactive ones
        ends: dict[str, str] = {}  # theirs: when SLURM's time limit ends them (squeue's %e)
        for line in self._run(["squeue", "-h", "-r", "-t", "all", "-o", SQUEUE_FORMAT]).splitlines():
            i, _, rest = line.partition("|")
            if i not in wanted:
                continue
            if i in desktops:
                ends[i] = rest.split("|")[3] if rest.count("|") >= 3 else ""
            if rest in read:
                state = read[rest]
            else:
                parts = rest.split("|")
                state = read[rest] = (
                    _placed(self._from_squeue(*parts[:4]), *parts[4:]) if len(parts) == 7 else None
                )
            if state is not None:
                queue[i] = state
                if state.status is JobStatus.FAILED:
                    failed.append(i)
        # a job that left the queue, or failed, is read from the job completion log
        need_sacct = [*wanted.difference(queue), *failed]
        # sacct -c knows an array task only by its raw id, which the task recorded
        raw = {i: self._raw_id(i) for i in need_sacct}
        finished = self._sacct([r for r in raw.values() if r]) if need_sacct else {}
        out.update(queue)
        for i in need_sacct:
            if raw[i] in finished:
                out[i] = finished[raw[i]]
            elif i in queue:  # failed, and not in the completion log yet: as squeue says
                continue
            elif "_" in i and self._cancelled(i):
                out[i] = BatchState(JobStatus.CANCELLED, None, "cancelled before it started")
            else:
                out[i] = BatchState(
                    JobStatus.UNKNOWN, reason="SLURM knows no such job (not in squeue or sacct)"
                )
        resolved: dict[str, frozenset[str]] = {}  # node -> its addresses, for this call
        for i in desktops:
            out[i] = self._session(i, out[i], ends.get(i, ""), resolved)
        return out

    def _place(self, state: BatchState, resolved: dict[str, frozenset[str]]) -> Place:
        """Where a running session's VNC server may be, as the portal decides: the bind's
        address when it is one, else the addresses of the node SLURM runs the job on
        (squeue's %N: one node), resolved on this host (once per ``resolved``, a states()
        call). A job on no one node, or a node that does not resolve, may be nowhere."""
        if self.desktop_fixed is not None:
            return Place(self.desktop_fixed)
        node = state.hosts or ""
        if not _one_node(node):
            return Place(frozenset())
        if node not in resolved:
            resolved[node] = node_addresses(node)
        names = frozenset({node.lower()}) if resolved[node] else frozenset()
        return Place(resolved[node], names, everywhere=self.desktop_bind in ("0.0.0.0", "::"))  # noqa: S104

    def _session(
        self, slurm_id: str, state: BatchState, end: str, resolved: dict[str, frozenset[str]] | None = None
    ) -> BatchState:
        """An interactive job's state: running, with its desktop once ``desktop/state.json``
        is there and valid (its end: SLURM's, from squeue); ended as the session ended
        (jobdirs.desktop_state). Its end by SLURM's time limit (TIMEOUT) and by End session
        or the idle timeout (``end.json``, then scancel: CANCELLED) are normal ends,
        COMPLETED with the reason; only a real cancel stays CANCELLED."""
        try:
            d = self._dir(slurm_id)
        except BatchError:
            return state
        if state.status in ENDED and (by_portal := ended_by_portal(d, state)) is not None:
            return by_portal
        if state.status is JobStatus.FAILED and state.reason == REASONS["TIMEOUT"]:
            return replace(state, status=JobStatus.COMPLETED, exit_code=None, reason=TIMEOUT_REASON)
        if state.status is JobStatus.FAILED and state.reason in SLURM_ENDS:
            return state  # (out of memory, node failure, preempted: SLURM's words, not the signal's)
        place = self._place(state, {} if resolved is None else resolved)
        state = desktop_state(d, state, self.desktop_bind, place)
        if state.desktop is not None and (at := _time(end)) is not None:
            state = replace(state, desktop=replace(state.desktop, ends_at=at))
        return state

    def _raw_id(self, slurm_id: str) -> str | None:
        if "_" not in slurm_id:
            return slurm_id
        rec = read_json(self.root / "by-slurm-id" / slurm_id / "slurm.json")
        return rec["job_id"] if rec else None

    def _cancelled(self, slurm_id: str) -> bool:
        return (self.root / "by-slurm-id" / slurm_id / "cancelled").exists()

    @staticmethod
    def _from_squeue(state: str, reason: str, start: str, end: str) -> BatchState:
        state = state.split()[0]
        status = STATES.get(state, JobStatus.UNKNOWN)
        if status == JobStatus.QUEUED and reason in HELD_REASONS:
            status = JobStatus.HELD
        started = _time(start) if status != JobStatus.QUEUED else None
        if status == JobStatus.COMPLETED:
            return BatchState(status, 0, None, started, _time(end))
        if status == JobStatus.CANCELLED:
            return BatchState(status, None, "cancelled", started, _time(end))
        why = None if status in (JobStatus.QUEUED, JobStatus.RUNNING) or reason in ("None", "") else reason
        if status == JobStatus.FAILED and state in REASONS:  # as the completion log's
            why = REASONS[state]
        if status == JobStatus.UNKNOWN:
            why = f"SLURM state {state}"
        return BatchState(status, None, why, started)

    def _sacct(self, ids: list[str]) -> dict[str, BatchState]:
        """Finished jobs from the job completion log (``sacct -c``): one call for all, or
        one per SACCT_IDS_CHARS of ids when many left the queue together (the kernel
        refuses one argument longer than 128 KiB)."""
        out: dict[str, BatchState] = {}
        text = "\n".join(
            self._run([*SACCT_ARGV, batch], ok_codes=(0, 1))
            for batch in id_lists(sorted(ids), self.sacct_ids_chars)
        )
        for line in text.splitlines():
            parts = line.split("|")
            if len(parts) != 8 or not parts[0].isdigit():
                continue
            job, state, code, start, end = parts[:5]
            state = state.split()[0]
            status = STATES.get(state, JobStatus.UNKNOWN)
            exit_code, signal_ = (
                (int(x) for x in code.split(":")) if re.fullmatch(r"\d+:\d+", code) else (None, 0)
            )
            if status == JobStatus.COMPLETED:
                out[job] = BatchState(status, 0, None, _time(start), _time(end))
            elif status == JobStatus.CANCELLED:
                out[job] = BatchState(status, None, "cancelled", _time(start), _time(end))
            elif status == JobStatus.FAILED:
                reason = REASONS.get(state) or (
                    f"killed by signal {signal_}" if signal_ else f"exit code {exit_code}"
                )
                if exit_code == 127 and state == "FAILED":
                    reason = "program not found or not executable"
                out[job] = BatchState(status, exit_code, reason, _time(start), _time(end))
            else:
                out[job] = BatchState(status, None, f"SLURM state {state}", _time(start))
            out[job] = _placed(out[job], *parts[5:])
        return out

    def read(self, job_id: str, stream: str, offset: int = 0, limit: int = 65536) -> bytes:
        return read_stream(self._dir(job_id), stream, offset, limit)

    def cancel_many(self, job_ids: Sequence[str]) -> dict[str, BatchError | None]:
        """One ``scancel`` for all of them, the ids as its arguments (one call per
        SACCT_IDS_CHARS of them, as sacct's lists). scancel says nothing of a job that has
        ended or left the queue (exit 0: cancelled, as far as the portal is concerned);
        when it fails, the jobs it names in its errors are the ones refused, or all of them
        when it names none."""
        out: dict[str, BatchError | None] = {}
        ours: list[str] = []
        for job_id in dict.fromkeys(job_ids):
            try:
                d = self._dir(job_id)
            except BatchError as e:
                out[job_id] = e
                continue
            (d / "cancelled").touch()  # an array task cancelled while pending leaves no record
            (d / PRIVATE_ENV).unlink(missing_ok=True)  # its session, if it has not started: not needed
            ours.append(job_id)
        out.update(self._scancel_all(ours))
        return out

    def end_sessions(
        self, job_ids: Sequence[str], reason: str, failed: bool = False
    ) -> dict[str, BatchError | None]:
        """End interactive jobs' sessions (End session, the idle timeout) as cancel_many()
        cancels jobs: ``end.json`` with ``reason`` in each job's directory (unless it was
        cancelled or ended already), then one ``scancel`` for them all (SIGTERM to the
        session's supervisor, which records its end and stops everything it started;
        SLURM's KillWait, then SIGKILL). They end COMPLETED with that reason, or FAILED with
        it when ``failed`` (the portal's backstop for a desktop that never became ready).
        A batch job among them is refused (BatchError), the others ended."""
        out: dict[str, BatchError | None] = {}
        ours: list[str] = []
        at = datetime.now(UTC).isoformat()
        for job_id in dict.fromkeys(job_ids):
            try:
                d = self._dir(job_id)
            except BatchError as e:
                out[job_id] = e
                continue
            if not interactive(d):
                out[job_id] = BatchError(
                    f"SLURM job {job_id} is a batch job: it has no desktop session to end"
                )
                continue
            if not (d / "cancelled").exists() and not (d / END_RECORD).exists():
                record = {"reason": str(reason)[:300], "at": at} | ({"failed": True} if failed else {})
                write_json(d / END_RECORD, record)
            (d / PRIVATE_ENV).unlink(missing_ok=True)
            ours.append(job_id)
        out.update(self._scancel_all(ours))
        return out

    def _scancel_all(self, ours: list[str]) -> dict[str, BatchError | None]:
        out: dict[str, BatchError | None] = {}
        failed: BatchError | None = None
        for batch in id_batches(ours, self.sacct_ids_chars):
            if failed is None:
                try:
                    out.update(self._scancel(batch))
                    continue
                except BatchError as e:  # (SLURM does not answer: not asked again for the rest)
                    failed = e
            out.update(dict.fromkeys(batch, failed))
        return out

    def _scancel(self, ids: list[str]) -> dict[str, BatchError | None]:
        res = self._exec(["scancel", *ids])
        if res.returncode == 0:
            return dict.fromkeys(ids)
        lines = (res.stderr or res.stdout).strip().splitlines()
        named: dict[str, BatchError | None] = {}
        for line in lines:
            if (m := SCANCEL_ERROR.search(line)) and m[1] in ids:
                named[m[1]] = BatchError(f"scancel: {m[2].strip() or 'refused'}")
        if not named:
            raise BatchError(f"scancel failed: {lines[-1] if lines else f'exit {res.returncode}'}")
        return dict.fromkeys(ids) | named

    def delete_many(self, job_ids: Sequence[str]) -> dict[str, BatchError | None]:
        """Whether each has ended is asked of SLURM once for them all (:meth:`states`)."""
        out: dict[str, BatchError | None] = {}
        dirs: dict[str, Path] = {}
        for job_id in dict.fromkeys(job_ids):
            try:
                dirs[job_id] = self._dir(job_id)
            except BatchError as e:
                out[job_id] = e
        states = self.states(list(dirs)) if dirs else {}
        for job_id, d in dirs.items():
            state = states[job_id]
            if state.status.live:
                out[job_id] = BatchError(
                    f"SLURM job {job_id} has not ended ({state.status}); cancel it first"
                )
                continue
            try:
                shutil.rmtree(d)
            except OSError as e:
                out[job_id] = BatchError(f"SLURM job {job_id}'s files could not be removed ({e.strerror})")
                continue
            (self.root / "by-slurm-id" / job_id).unlink(missing_ok=True)
            (self.desktops / job_id).unlink(missing_ok=True)
            out[job_id] = None
        return out

    # --- the cluster's nodes (the operator's console) --------------------------------------

    def nodes(self) -> list[Node]:
        """Every node of the cluster with its state, CPUs and load (one ``sinfo`` call);
        BatchError when SLURM does not answer. The harvester records them each cycle."""
        return parse_sinfo(self._run(["sinfo", "--noheader", "--Node", f"--format={SINFO_FORMAT}"]))

    def probe(self) -> None:
        """Whether the controller answers (``scontrol ping``, cheaper than listing the
        nodes); BatchError with its first line if not."""
        out = self._run(["scontrol", "ping"], ok_codes=(0, 1))
        first = next((line.strip() for line in out.splitlines() if line.strip()), "no answer")
        if " is UP" not in out:
            raise BatchError(f"scontrol ping: {first}")

    def drain(self, node: str, reason: str) -> None:
        """Let ``node`` finish its jobs and take no new ones (``scontrol update ...
        State=DRAIN``); BatchError with SLURM's answer when refused (the portal's account
        needs to be a SLURM operator or administrator for it)."""
        self._run(["scontrol", "update", f"NodeName={node_name(node)}", "State=DRAIN",
                   f"Reason={drain_reason(reason)}"])  # fmt: skip

    def resume(self, node: str) -> None:
        """Give a drained node back to the scheduler (``State=RESUME``)."""
        self._run(["scontrol", "update", f"NodeName={node_name(node)}", "State=RESUME"])


# sinfo, one line per node and partition: name, state (long, with SLURM's flag suffixes such
# as * not responding), CPUs allocated/idle/other/total, CPU load, and the reason it is
# drained or down (free text, last: it may hold the separator)
SINFO_FORMAT = "%N|%T|%C|%O|%E"
NODE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MAX_REASON = 200


@dataclass(frozen=True)
class Node:
    name: str
    state: str  # as sinfo says it, lower case: idle, mixed, allocated, drained, down*, ...
    cpus_alloc: int | None
    cpus_total: int | None
    load: float | None
    reason: str = ""

    @property
    def drained(self) -> bool:
        """Drained or draining: taking no new jobs."""
        return "drain" in self.state

    def as_dict(self) -> dict:
        return asdict(self)


def _whole(text: str) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) < 10 else None


def parse_sinfo(text: str) -> list[Node]:
    """sinfo's lines in SINFO_FORMAT as nodes, each once (a node of two partitions is
    listed twice), in sinfo's order. A line that does not parse is skipped: a node whose
    name could not be named to scontrol is left out rather than guessed."""
    out: dict[str, Node] = {}
    for line in text.splitlines():
        parts = line.split("|", 4)
        if len(parts) != 5:
            continue
        name, state, cpus, load, reason = (p.strip() for p in parts)
        if not _one_node(name) or name in out or not state or len(state) > 32:
            continue
        counts = cpus.split("/")
        alloc, total = (_whole(counts[0]), _whole(counts[3])) if len(counts) == 4 else (None, None)
        try:
            cpu_load = float(load) if load.isascii() else None
        except ValueError:
            cpu_load = None
        if cpu_load is not None and not 0 <= cpu_load < 1e9:  # nan, inf, nonsense
            cpu_load = None
        reason = "" if reason.lower() in ("none", "(null)") else reason
        out[name] = Node(
            name, state.lower(), alloc, total, cpu_load, "".join(c for c in reason if c.isprintable())[:300]
        )
    return list(out.values())


def _one_node(name: str) -> bool:
    """One node's name (never a host list such as node[1-4] or a,b, an option, or ALL)."""
    return bool(NODE_NAME.fullmatch(name)) and name.upper() != "ALL"


def node_addresses(node: str) -> frozenset[str]:
    """A node's IPv4 addresses as this host resolves its name (the supervisor's x11vnc runs
    -noipv6); none when it does not resolve."""
    try:
        infos = socket.getaddrinfo(node, None, socket.AF_INET, socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return frozenset()
    return frozenset(str(info[4][0]) for info in infos)


def node_name(name: str) -> str:
    """A node's name as scontrol may be given it: one node, never a host list or an option."""
    if not isinstance(name, str) or not _one_node(name):
        raise ValueError("must be one node's name: 1 to 64 letters, digits, dots, dashes or underscores")
    return name


def drain_reason(reason: str) -> str:
    """Why a node is drained, as scontrol records it: required, printable, one line."""
    if not isinstance(reason, str) or not reason.strip():
        raise ValueError("is required: SLURM records why a node is drained")
    reason = reason.strip()
    if len(reason) > MAX_REASON:
        raise ValueError(f"must be at most {MAX_REASON} characters")
    if not reason.isprintable() or any(0xD800 <= ord(c) <= 0xDFFF for c in reason):
        raise ValueError("must be printable characters on one line")
    return reason


def id_batches(ids: Sequence[str], chars: int) -> list[list[str]]:
    """``ids`` in runs of at most ``chars`` characters each, counting one separator between
    two (an id longer than that goes alone), in order: the bound of one command's ids."""
    out: list[list[str]] = []
    batch: list[str] = []
    length = 0
    for i in ids:
        if batch and length + 1 + len(i) > chars:
            out.append(batch)
            batch, length = [], 0
        length += len(i) + (1 if batch else 0)
        batch.append(i)
    if batch:
        out.append(batch)
    return out


def id_lists(ids: Sequence[str], chars: int) -> list[str]:
    """``ids`` as comma-separated lists of at most ``chars`` characters each (an id longer
    than that goes alone), in order."""
    return [",".join(batch) for batch in id_batches(ids, chars)]


def _placed(state: BatchState, nodes: str, cores: str, hosts: str) -> BatchState:
    """Add where a job ran (squeue's %D %C %N, sacct's NNodes AllocCPUS NodeList), once it has
    started: before that these are only what it asked for."""
    if state.started_at is None or not nodes.isdigit():
        return state
    hosts = "" if hosts in ("", "None assigned", "(null)") else hosts
    cores_ = int(cores) if cores.isdigit() else None
    return replace(state, nodes=int(nodes), cores=cores_, hosts=hosts[:1024] or None)  # the column's size


def from_settings(name: str, opts: Mapping[str, str], setting: str | None = None) -> SlurmBackend:
    from ..settings import asbool, aslist
    from .sandbox import from_settings as sandbox_from_settings

    return SlurmBackend(
        name,
        opts["dir"],
        slurm_conf=opts.get("slurm_conf") or None,
        sbatch_options=aslist(opts.get("sbatch_options", "")),
        resources={key: opts[key] for key in SBATCH_FLAGS if opts.get(key)},
        path=aslist(opts.get("path", "")),
        session_in_argv=asbool(opts.get("session_in_argv", "false")),
        python=opts.get("python", sys.executable),
        job_prefix=opts.get("job_prefix", "ijp"),
        array_max=int(opts.get("array_max", 1000)),
        timeout=float(opts.get("timeout", TIMEOUT)),
        arrays=asbool(opts.get("arrays", "true")),
        sandbox=sandbox_from_settings(opts, setting or f"ijp.batch.{name}."),
        setting=setting,
        max_interactive=int(opts.get("max_interactive", 4)),
        desktop_bind=opts.get("desktop_bind", "").strip() or DEFAULT_BIND,
    )


def _names(d: Path) -> list[str]:
    try:
        return os.listdir(d)
    except FileNotFoundError:
        return []


def _mark(path: Path) -> None:
    with suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
