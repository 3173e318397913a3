"""The BatchBackend seam: where jobs run. Implementations are chosen in the ini
(``ijp.batch.<name>.type = local``); the harvester asks each for the state of all its
live jobs in one call per cycle."""

from __future__ import annotations

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

    def cancel(self, job_id: str) -> None: ...

    def delete(self, job_id: str) -> None:
        """Remove the job's files; only once it has ended."""


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
    config.registry["ijp.backends"] = backends_from_settings(settings)
    config.add_request_method(lambda r: r.registry["ijp.backends"], "backends", reify=True)
