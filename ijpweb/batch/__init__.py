"""The BatchBackend seam: where jobs run. Implementations are chosen in the ini
(``ijp.batch.<name>.type = local``); the harvester asks each for the state of all its
live jobs in one call per cycle."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from ..states import JobStatus


class BatchError(Exception):
    """A backend refused or failed; the message is fit to show a user."""


class JobBusy(BatchError):
    """Another process (or thread) is preparing this job right now: nothing was done, and
    the job is to be tried again later (when the backend holds it, or does not)."""


@dataclass(frozen=True)
class JobSpec:
    """What a backend needs to run one job."""

    job_id: int
    owner: str
    executable: str
    args: tuple[str, ...]  # as shown to users: the session id only as a stand-in
    env: Mapping[str, str] = field(default_factory=dict)  # secrets travel here
    interactive: bool = False
    family: str | None = None
    # what a cluster should allocate: partition, account, time, cpus, memory, gpus
    resources: Mapping[str, str] = field(default_factory=dict)
    # whether the job talks to the catalog (ICAT/IDS): its sandbox keeps the network
    network: bool = False
    # an interactive job's desktop (issue 14): {"time_limit": seconds, "geometry": "WxH",
    # "ready_timeout": seconds}; None for a batch job
    desktop: Mapping[str, object] | None = None


@dataclass(frozen=True)
class DesktopInfo:
    """Where an interactive job's VNC server listens, once it answered (the launcher's
    ``desktop/state.json``, checked): for the portal's proxy only, never shown to users."""

    host: str
    port: int
    ready_at: datetime | None = None
    ends_at: datetime | None = None  # when the session's time limit ends it


@dataclass(frozen=True)
class BatchState:
    status: JobStatus
    exit_code: int | None = None
    reason: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # where it ran, where the backend knows: node count, cores allocated, host names
    nodes: int | None = None
    cores: int | None = None
    hosts: str | None = None
    # an interactive job's desktop, once its VNC server answers (None: not yet, or batch)
    desktop: DesktopInfo | None = None


class BatchBackend(Protocol):
    name: str

    def submit(self, spec: JobSpec) -> str:
        """Start (or queue) the job; return the backend's id for it."""

    def find(self, job_ids: Sequence[int]) -> dict[int, str]:
        """Which of these portal jobs the backend holds already, with its ids for them
        (every backend job carries the portal's job id), in one pass."""

    def estimate(self, spec: JobSpec) -> float | None:
        """Minutes until the job would start, or None when unknown."""

    def states(self, ids: Sequence[str]) -> dict[str, BatchState]:
        """The state of each of ``ids``, in one pass over the backend."""

    def read(self, job_id: str, stream: str, offset: int = 0, limit: int = 65536) -> bytes:
        """Bytes of ``stdout`` or ``stderr`` from ``offset``."""

    def cancel_many(self, job_ids: Sequence[str]) -> dict[str, BatchError | None]:
        """Cancel each of ``job_ids`` in one pass over the backend (one ``scancel``, one
        request to a batch server): for each, None (cancelled, or it had ended already) or
        the BatchError saying why not. BatchError when the backend cannot be asked at all
        (then that is every job's answer)."""

    def cancel(self, job_id: str) -> None:
        """cancel_many() of one job (:class:`Batched`): BatchError if it was not cancelled."""

    def delete_many(self, job_ids: Sequence[str]) -> dict[str, BatchError | None]:
        """Remove each job's files, only once it has ended, in one pass (its answers as
        cancel_many's)."""

    def delete(self, job_id: str) -> None:
        """delete_many() of one job (:class:`Batched`)."""


class Batched:
    """A backend's cancel and delete of one job, as its cancel_many() and delete_many() of
    one: one way to do each, whether one job is cancelled or a page of them."""

    def cancel(self, job_id: str) -> None:
        _one(self.cancel_many([job_id]), job_id)

    def delete(self, job_id: str) -> None:
        _one(self.delete_many([job_id]), job_id)


def _one(answers: Mapping[str, BatchError | None], job_id: str) -> None:
    error = answers.get(job_id, BatchError(f"the backend did not answer for job {job_id}"))
    if error is not None:
        raise error


class ArrayBackend(BatchBackend, Protocol):
    """A backend that can take many jobs in one call (SLURM job arrays)."""

    arrays: bool  # whether to use submit_many

    def submit_many(self, specs: Sequence[JobSpec]) -> dict[int, str]:
        """Submit all of ``specs``; return the backend id for each portal job id."""


STREAMS = ("stdout", "stderr")


def includeme(config):
    """Build the configured backends once and keep them in the registry (ijpweb.scheduler
    runs the background work on them)."""
    from .registry import backends_from_settings

    settings = config.registry.settings["ijp"]
    backends = backends_from_settings(settings)
    check_sockets(backends, settings.sockets)
    config.registry["ijp.backends"] = backends
    config.add_request_method(lambda r: r.registry["ijp.backends"], "backends", reify=True)


def check_sockets(backends: Mapping[str, BatchBackend], sockets: Sequence[str]) -> None:
    """Refuse to start (ValueError naming the setting) where a backend's sandbox would show
    jobs a directory holding one of the portal's own Unix sockets: a read-only bind does not
    stop connect(), and a connection on it is the trusted proxy (ijp.trusted_proxies = unix)."""
    from .sandbox import exposed_sockets, python_dirs

    ours = {os.path.realpath(p) for p in python_dirs()}
    for name, backend in backends.items():
        described = getattr(backend, "sandbox", None)
        if not isinstance(described, Mapping):
            continue  # (a remote backend's jobs run on another host)
        path = {os.path.realpath(p) for p in getattr(backend, "path", ())}
        for sock, shown in exposed_sockets(described, sockets):
            if shown in path:
                where = f"ijp.batch.{name}.path: {shown}, a job type program directory,"
            elif shown in ours:
                where = f"ijp.batch.{name}: the portal's Python environment {shown}, which every job sees,"
            elif shown in {os.path.realpath(p) for p in described.get("read_only", ())}:
                where = f"ijp.batch.{name}.read_only: {shown}"
            else:
                where = f"ijp.batch.{name}: the system directory {shown}, which every job sees,"
            raise ValueError(
                f"{where} holds the portal's Unix socket {sock} (unix_socket of a [server:...] section, "
                "or ijp.sockets): every job could connect to it, and a connection on it is the trusted "
                "proxy; put the socket in a directory no job sees (/run/ijpweb, as production.ini)"
            )
