"""Who runs the background work when several portal processes share one database.

On PostgreSQL each periodic task that must run once (the harvest, the catalog sessions'
keep-alive, the purges) has a leader: the process that holds the task's session-level
advisory lock, ``pg_try_advisory_lock(key)``, on a connection of its own that it keeps
open. Every process with the scheduler enabled tries to take the locks it lacks once a
second (:meth:`Leaders.campaign`); a leader that dies (even by SIGKILL) loses its
connection, PostgreSQL releases its locks, and another process takes them on its next
try. The connection asks the server to probe it with TCP keepalives, so that the locks of
a leader whose host vanished are released within about half a minute too.

Holding the lead is checked once, before each run; the run itself is fenced: its
transaction first takes the task's transaction-level advisory lock (:func:`fence`, a key
space of its own) and skips the run when another transaction holds it. So a leader whose
lock connection dropped in the middle of a run (a network blip, a DBA's
``pg_terminate_backend``, a pooler's idle timeout) finishes that run alone: the new
leader's runs are skipped until it ends.

The submitter runs in every such process instead, and claims the jobs it hands over
(:func:`claim_jobs`): a transaction-level advisory lock per job, ``pg_try_advisory_xact_lock``,
skipping jobs another process holds. A row lock (``FOR UPDATE SKIP LOCKED``) would claim
them as well, but it would be held while the backend is called (seconds for a chunk of
``sbatch`` calls) and make a user's cancel of one of those jobs wait for it; an advisory
lock is seen by submitters alone. It ends with the transaction, or with a killed
process's connection, so a job is never left claimed.

Lock keys are derived from the task's name and ``ijp.scheduler.namespace`` (a SHA-256,
stable across processes, versions and hosts). Advisory locks belong to one database:
portals in different databases of one server never meet; portals sharing one database
need namespaces of their own.

On SQLite there can be one portal process only; it leads everything (:class:`OneProcess`).

No Pyramid here: it takes an SQLAlchemy engine.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterable, Sequence

import sqlalchemy as sa

log = logging.getLogger(__name__)

# how often an unreachable database is reported while the locks cannot be tried
QUIET_SECONDS = 60.0
# the server probes an idle lock connection after this many seconds, then every
# KEEPALIVE_INTERVAL seconds, KEEPALIVE_COUNT times, before it gives up on a vanished leader
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 10, 5, 3


def _signed(digest: bytes, size: int) -> int:
    return int.from_bytes(digest[:size], "big", signed=True)


def lock_key(namespace: str, task: str) -> int:
    """The 64-bit advisory lock key of ``task`` (``pg_try_advisory_lock(bigint)``)."""
    return _signed(hashlib.sha256(f"{namespace}\0task\0{task}".encode()).digest(), 8)


def claim_class(namespace: str) -> int:
    """The first of the two 32-bit keys of a job's claim (``pg_try_advisory_xact_lock(int,
    int)``, the job id the second; a key space apart from the tasks' 64-bit keys)."""
    return _signed(hashlib.sha256(f"{namespace}\0job-claim".encode()).digest(), 4)


def fence_keys(namespace: str, task: str) -> tuple[int, int]:
    """The two 32-bit keys of a led task's fence (``pg_try_advisory_xact_lock(int, int)``,
    taken by the task's own transaction): a class apart from the jobs' claims, and a key
    space apart from the leaders' 64-bit session locks (which it must not conflict with:
    the leader holds its task's one while the task runs)."""
    cls = _signed(hashlib.sha256(f"{namespace}\0task-fence".encode()).digest(), 4)
    return cls, _signed(hashlib.sha256(f"{namespace}\0task-fence\0{task}".encode()).digest(), 4)


def fence(db, namespace: str, task: str) -> bool:
    """Whether this transaction may run the led ``task``: on PostgreSQL, whether it got the
    task's fence, a transaction-level advisory lock held until it ends. A leader that lost
    its lead while a run of the task was under way (its lock connection dropped) still
    holds the fence in that run's transaction: the new leader's runs are skipped until it
    ends, so the task never runs twice at once. Outside PostgreSQL (one process) always."""
    if not is_postgresql(db.get_bind()):
        return True
    cls, key = fence_keys(namespace, task)
    return bool(
        db.execute(sa.text("SELECT pg_try_advisory_xact_lock(:cls, :key)"), {"cls": cls, "key": key}).scalar()
    )


def is_postgresql(bind) -> bool:
    return bind.dialect.name == "postgresql"


def claim_jobs(db, namespace: str, job_ids: Sequence[int], limit: int) -> list[int]:
    """Claim up to ``limit`` of ``job_ids`` (in their order) for this transaction: the ones
    no other transaction claims. The claims end with the transaction. Outside PostgreSQL
    (one process) the first ``limit``."""
    if not job_ids or limit <= 0:
        return []
    if not is_postgresql(db.get_bind()):
        return list(job_ids[:limit])
    # The function scan yields the ids in order and the LIMIT stops it: no id after the
    # last one returned is tried, so none is claimed and left unused.
    claimed = db.execute(
        sa.text(
            "SELECT t.id FROM unnest(CAST(:ids AS integer[])) AS t(id) "
            "WHERE pg_try_advisory_xact_lock(:cls, t.id) LIMIT :limit"
        ),
        {"ids": list(job_ids), "cls": claim_class(namespace), "limit": limit},
    ).scalars()
    return sorted(claimed)


class OneProcess:
    """SQLite: this process leads every task (there is no other)."""

    def __init__(self, tasks: Iterable[str]):
        self.tasks = tuple(tasks)

    def campaign(self) -> dict[str, bool]:
        return self.leading()

    def holds(self, task: str) -> bool:
        return task in self.tasks

    def leading(self) -> dict[str, bool]:
        return dict.fromkeys(self.tasks, True)

    def close(self) -> None:
        pass


class Leaders:
    """The advisory locks of ``tasks`` in PostgreSQL, held on one connection of this
    process's own while it leads them (see the module's text)."""

    def __init__(self, engine, namespace: str, tasks: Iterable[str]):
        self.engine = engine
        self.namespace = namespace
        self.keys = {task: lock_key(namespace, task) for task in tasks}
        self._conn = None
        self._held: set[str] = set()
        self._mutex = threading.Lock()
        self._quiet_until = 0.0
        self.name = f"ijpweb leader {socket.gethostname()}:{os.getpid()}"

    def holds(self, task: str) -> bool:
        """Whether this process leads ``task`` (as of the last campaign: no database call)."""
        return task in self._held

    def leading(self) -> dict[str, bool]:
        return {task: task in self._held for task in self.keys}

    def campaign(self) -> dict[str, bool]:
        """Check that the locks held are still held (their connection is alive) and try to
        take the others; return what this process leads now."""
        with self._mutex:
            try:
                if self._conn is None:
                    self._conn = self._connect()
                elif self._held:
                    self._conn.exec_driver_sql("SELECT 1")
                for task, key in self.keys.items():
                    if task in self._held:
                        continue
                    if self._conn.execute(
                        sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": key}
                    ).scalar():
                        self._held.add(task)
                        log.info("this process (%s) now leads the background task %s", self.name, task)
            except Exception as e:  # noqa: BLE001 - the database is down or the connection broke
                self._lost(e)
            return self.leading()

    def _connect(self):
        conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        # who holds the locks shows in pg_stat_activity; a vanished host's are released
        conn.execute(sa.text("SELECT set_config('application_name', :name, false)"), {"name": self.name[:63]})
        for setting, value in (
            ("tcp_keepalives_idle", KEEPALIVE_IDLE),
            ("tcp_keepalives_interval", KEEPALIVE_INTERVAL),
            ("tcp_keepalives_count", KEEPALIVE_COUNT),
        ):
            conn.execute(sa.text("SELECT set_config(:s, :v, false)"), {"s": setting, "v": str(value)})
        return conn

    def _lost(self, error: Exception) -> None:
        if self._held:
            log.warning(
                "this process no longer leads %s: its database connection failed (%s)",
                ", ".join(sorted(self._held)),
                type(error).__name__,
            )
        elif time.monotonic() >= self._quiet_until:
            log.warning(
                "the background tasks' leadership cannot be tried: the database does not answer (%s); "
                "trying again every second, reported once a minute",
                type(error).__name__,
            )
            self._quiet_until = time.monotonic() + QUIET_SECONDS
        self._held.clear()
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.invalidate()
                conn.close()
            except Exception:  # noqa: BLE001, S110 - it is being thrown away
                pass

    def close(self) -> None:
        """Give up every lead at once (a clean stop): another process takes over on its next try."""
        with self._mutex:
            conn, self._conn = self._conn, None
            self._held.clear()
            if conn is not None:
                # released now (the server would release them only once it noticed the
                # connection closed), and closed for real, not returned to the pool: a
                # pooled connection would keep the session's locks for whoever used it next
                with contextlib.suppress(Exception):  # (closing it releases them too)
                    conn.exec_driver_sql("SELECT pg_advisory_unlock_all()")
                try:
                    conn.invalidate()
                    conn.close()
                except Exception:  # noqa: BLE001, S110 - stopping
                    pass
