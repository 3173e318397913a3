"""The batch server's work, without Pyramid: who may do what to which job, and a small
table of its own mapping batch job ids to owners.

It speaks the original IJP batch protocol (ijp-formats.md §5) for any client, plus a
few extensions the portal uses: ``owner`` (a trusted portal submits for its users),
``clientRef`` with ``find`` (so a portal that crashed mid-submission learns which of
its jobs arrived, and nothing runs twice), ``states`` (every job's state in one call)
and ``offset``/``limit`` on output, ``outputs`` (a job's output files and output
variables, read through :mod:`ijpweb.outputs`: bounded, no symlink followed), and
``bulk`` (cancel or delete many jobs with one backend call).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa

from .. import outputs
from ..batch import STREAMS, BatchBackend, BatchError, BatchState, JobSpec
from ..batch.sandbox import needs_catalog
from ..ijpwords import STATUS_WORDS, IjpError
from ..inputs import InputError
from ..inputs import job_id as job_number
from ..models.jobs import utcnow
from ..planning import SESSION_ENV
from ..states import JobStatus

log = logging.getLogger(__name__)

# "outputs" (1): a job's output files listed (outputs/{id}), read by name and offset
# (outputfile/{id}) and its output variables' file (outputvars/{id})
# "bulk" (1): cancel or delete many jobs in one call (POST cancels, POST deletes, jobId
# repeated, at most MAX_BULK): {"results": {jobId: null (done) | {"code", "message"}}}
EXTENSIONS = ("owner", "clientRef", "find", "states", "offset", "outputs", "bulk")
MAX_BULK = 1000


def _job_number(job_id: str) -> int | None:
    """The row id a job id names, or None when it names none (not an id, or one that no
    column holds): unknown, like another user's job."""
    try:
        return job_number(job_id, "jobId")
    except InputError:
        return None


def forbidden() -> IjpError:
    return IjpError("ForbiddenException", "Job does not belong to you")


def _refused(answers, backend_id: str) -> IjpError | None:
    """The backend's answer for one job, as the protocol says a refusal."""
    error = answers.get(backend_id, BatchError("the backend did not answer for this job"))
    return None if error is None else IjpError("ParameterException", str(error))


def _one(answers: dict[str, IjpError | None], job_id: str) -> None:
    if (error := answers[job_id]) is not None:
        raise error


metadata = sa.MetaData()
batch_jobs = sa.Table(
    "batch_job",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("owner", sa.String(255), nullable=False, index=True),
    sa.Column("submitted_by", sa.String(255), nullable=False, index=True),
    sa.Column("client_ref", sa.String(255)),
    sa.Column("backend_job_id", sa.String(64)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.UniqueConstraint("submitted_by", "client_ref", name="uq_batch_job_client_ref"),
)


@dataclass(frozen=True)
class Caller:
    user: str  # the ICAT user name behind the sessionId
    portal: bool  # a trusted portal: it may submit for its users and act on what it submitted


class BatchServer:
    def __init__(
        self,
        engine: sa.Engine,
        backend: BatchBackend,
        portals: Iterable[str] = (),
        executables: Iterable[str] = (),
        programs_path: Sequence[str] = (),
    ):
        self.engine = engine
        self.backend = backend
        self.portals = frozenset(portals)
        self.executables = frozenset(executables)
        self.programs_path = os.pathsep.join(programs_path)
        metadata.create_all(engine)  # the server's own small database: one table

    def caller(self, user: str) -> Caller:
        return Caller(user, user in self.portals)

    # --- checks --------------------------------------------------------------------------

    def _check_executable(self, executable: str) -> None:
        """Only the facility's programs: a name listed in ``executables`` or found in the
        backend's program directories; never a path."""
        if not executable:
            raise IjpError("ParameterException", "No executable was specified")
        listed = executable in self.executables or (
            self.programs_path and shutil.which(executable, path=self.programs_path) is not None
        )
        if "/" in executable or not listed:
            raise IjpError("ParameterException", f"{executable!r} is not one of this batch server's programs")

    def _row(self, conn, caller: Caller, job_id: str):
        row = None
        if (number := _job_number(job_id)) is not None:
            row = conn.execute(sa.select(batch_jobs).where(batch_jobs.c.id == number)).first()
        if row is None or caller.user not in (row.owner, row.submitted_by):
            raise forbidden()  # unknown and not yours look the same
        return row

    def _visible(self, caller: Caller):
        return sa.or_(batch_jobs.c.owner == caller.user, batch_jobs.c.submitted_by == caller.user)

    def _spec(self, job_id: int, owner: str, executable: str, parameters, family, session) -> JobSpec:
        """The job knows no job type here: it keeps the network where its argv carries the
        catalog's flags (the session or URLs, as a portal's planning puts them)."""
        env = {SESSION_ENV: session} if session else {}
        network = needs_catalog(parameters)
        return JobSpec(job_id, owner, executable, tuple(parameters), env, False, family, network=network)

    # --- the protocol ----------------------------------------------------------------------

    def submit(
        self,
        caller: Caller,
        session_id: str,
        executable: str,
        parameters: Sequence[str],
        *,
        interactive: bool = False,
        family: str | None = None,
        owner: str | None = None,
        client_ref: str | None = None,
        job_session: str | None = None,
    ) -> str:
        if interactive:
            raise IjpError("ParameterException", "Interactive jobs are not supported by this batch server")
        self._check_executable(executable)
        if owner and owner != caller.user and not caller.portal:
            raise IjpError("ForbiddenException", f"{caller.user} may not submit jobs for {owner}")
        owner = owner or caller.user
        with self.engine.begin() as conn:
            row = None
            if client_ref:
                row = conn.execute(
                    sa.select(batch_jobs).where(
                        batch_jobs.c.submitted_by == caller.user, batch_jobs.c.client_ref == client_ref
                    )
                ).first()
            if row is not None and row.backend_job_id:
                return str(row.id)  # the same job again: it is there already
            resubmit = row is not None  # a half-done submit (a crash): the backend may hold it
            if row is None:
                job_id = conn.execute(
                    batch_jobs.insert().values(
                        owner=owner,
                        submitted_by=caller.user,
                        client_ref=client_ref or None,
                        created_at=utcnow(),
                    )
                ).inserted_primary_key[0]
            else:
                job_id = row.id
        # The row is committed before the backend is called, and the backend job carries
        # its id: after a crash, find() below recovers it rather than running it twice.
        # The job gets the session it was given for it; a direct caller's own, as the original
        # server did; never a portal's own login (a job would act as the portal).
        session = job_session or (None if caller.portal else session_id)
        spec = self._spec(job_id, owner, executable, parameters, family, session)
        try:
            backend_id = (
                self.backend.find([job_id]).get(job_id) if resubmit else None
            ) or self.backend.submit(spec)
        except BatchError as e:
            try:
                backend_id = self.backend.find([job_id]).get(job_id)
            except BatchError:
                backend_id = None
            if backend_id is None:
                with self.engine.begin() as conn:
                    conn.execute(batch_jobs.delete().where(batch_jobs.c.id == job_id))
                raise IjpError("InternalException", f"the job could not be submitted: {e}") from None
        with self.engine.begin() as conn:
            conn.execute(
                batch_jobs.update().where(batch_jobs.c.id == job_id).values(backend_job_id=backend_id)
            )
        log.info("job %s for %s submitted as %s", job_id, owner, backend_id)
        return str(job_id)

    def estimate(self, caller: Caller, executable: str, parameters: Sequence[str], family=None) -> int:
        """Whole minutes until the job could start (never the original's constant 0)."""
        self._check_executable(executable)
        try:
            minutes = self.backend.estimate(self._spec(0, caller.user, executable, parameters, family, None))
        except BatchError as e:
            raise IjpError("InternalException", f"no estimate: {e}") from None
        if minutes is None:
            raise IjpError("InternalException", "the backend cannot estimate this job")
        return math.ceil(minutes)

    def states(self, caller: Caller, job_ids: Sequence[str]) -> dict[str, BatchState]:
        """Every job's state in one backend call; ids not visible to the caller are Unknown."""
        wanted = [n for n in map(_job_number, job_ids) if n is not None]
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(batch_jobs).where(batch_jobs.c.id.in_(wanted), self._visible(caller))
            ).all()
        backend_ids = [r.backend_job_id for r in rows if r.backend_job_id]
        try:
            by_backend = self.backend.states(backend_ids) if backend_ids else {}
        except BatchError as e:
            log.warning("backend did not answer: %s", e)
            by_backend = {}
        out = {
            i: BatchState(JobStatus.UNKNOWN, reason="not a job of yours on this batch server")
            for i in job_ids
        }
        for r in rows:
            if not r.backend_job_id:
                out[str(r.id)] = BatchState(JobStatus.SUBMITTING, reason="being submitted")
            else:
                out[str(r.id)] = by_backend.get(
                    r.backend_job_id, BatchState(JobStatus.UNKNOWN, reason="the backend did not answer")
                )
        return out

    def status(self, caller: Caller, job_id: str) -> str:
        with self.engine.connect() as conn:
            self._row(conn, caller, job_id)
        return STATUS_WORDS[self.states(caller, [job_id])[job_id].status]

    def read(self, caller: Caller, job_id: str, stream: str, offset: int = 0, limit: int = 1 << 20) -> bytes:
        if stream not in STREAMS:
            raise IjpError("ParameterException", f"no such stream {stream!r}")
        with self.engine.connect() as conn:
            row = self._row(conn, caller, job_id)
        if not row.backend_job_id:
            return b""
        try:
            return self.backend.read(row.backend_job_id, stream, offset, limit)
        except BatchError as e:
            raise IjpError("InternalException", str(e)) from None

    def _backend_id(self, caller: Caller, job_id: str) -> str | None:
        with self.engine.connect() as conn:
            return self._row(conn, caller, job_id).backend_job_id

    def output_files(self, caller: Caller, job_id: str, limit: int) -> outputs.Listing:
        backend_id = self._backend_id(caller, job_id)
        if not backend_id:
            return outputs.Listing((), 0, 0)
        try:
            return self.backend.output_files(backend_id, limit)
        except BatchError as e:
            raise IjpError("InternalException", str(e)) from None

    def read_output_file(self, caller: Caller, job_id: str, name: str, offset: int, limit: int) -> bytes:
        """``limit`` bytes of the output file ``name`` from ``offset``."""
        backend_id = self._backend_id(caller, job_id)
        try:
            if not backend_id:
                raise outputs.OutputError("no such output file")
            with self.backend.open_output(backend_id, name) as fh:
                if offset >= os.fstat(fh.fileno()).st_size:
                    return b""
                fh.seek(offset)
                return fh.read(limit)
        except outputs.BadName as e:
            raise IjpError("ParameterException", str(e)) from None
        except outputs.OutputError as e:
            raise IjpError("NotFoundException", str(e)) from None
        except BatchError as e:
            raise IjpError("InternalException", str(e)) from None

    def output_vars(self, caller: Caller, job_id: str) -> bytes:
        """The output variables the job wrote, as ``OUT_NAME=value`` lines (parsed and
        bounded here; the portal parses them again): empty when none."""
        backend_id = self._backend_id(caller, job_id)
        try:
            found = self.backend.output_vars(backend_id) if backend_id else None
        except BatchError as e:
            raise IjpError("InternalException", str(e)) from None
        if found is None:
            return b""
        return "".join(f"{n}={v}\n" for n, v in found.values).encode()

    def _rows(self, caller: Caller, job_ids: Sequence[str]) -> dict[str, sa.Row]:
        """The caller's rows of ``job_ids``, by the id as given (one query)."""
        numbers = {i: n for i in job_ids if (n := _job_number(i)) is not None}
        if not numbers:
            return {}
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(batch_jobs).where(
                    batch_jobs.c.id.in_(sorted(set(numbers.values()))), self._visible(caller)
                )
            ).all()
        by_number = {r.id: r for r in rows}
        return {i: by_number[n] for i, n in numbers.items() if n in by_number}

    def cancel(self, caller: Caller, job_id: str) -> None:
        _one(self.cancel_many(caller, [job_id]), job_id)

    def delete(self, caller: Caller, job_id: str) -> None:
        _one(self.delete_many(caller, [job_id]), job_id)

    def cancel_many(self, caller: Caller, job_ids: Sequence[str]) -> dict[str, IjpError | None]:
        """Cancel each of the caller's jobs ``job_ids`` in one backend call: for each, None
        or why not (another user's job is refused as one that does not exist). A backend
        that does not answer is a BatchError (every job's answer)."""
        rows = self._rows(caller, job_ids)
        out: dict[str, IjpError | None] = {}
        asked: dict[str, str] = {}  # backend id -> job id
        for i in dict.fromkeys(job_ids):
            row = rows.get(i)
            if row is None:
                out[i] = forbidden()
            elif not row.backend_job_id:
                out[i] = IjpError("ParameterException", f"Job {i} is still being submitted")
            else:
                asked[row.backend_job_id] = i
        answers = self.backend.cancel_many(list(asked)) if asked else {}
        for backend_id, i in asked.items():
            out[i] = _refused(answers, backend_id)
        return out

    def delete_many(self, caller: Caller, job_ids: Sequence[str]) -> dict[str, IjpError | None]:
        """Delete each of the caller's jobs ``job_ids`` that has ended (the original's rule),
        its files too: their states asked of the backend once, and one backend call for
        those that have ended; their rows go in one statement."""
        rows = self._rows(caller, job_ids)
        unique = list(dict.fromkeys(job_ids))
        held = [i for i in unique if i in rows and rows[i].backend_job_id]
        states = self.states(caller, held) if held else {}
        out: dict[str, IjpError | None] = {}
        asked: dict[str, str] = {}
        gone: list[int] = []
        for i in unique:
            row = rows.get(i)
            if row is None:
                out[i] = forbidden()
            elif not row.backend_job_id:
                out[i] = None
                gone.append(row.id)
            elif states[i].status.live:
                out[i] = IjpError("ParameterException", f"Job {i} is {STATUS_WORDS[states[i].status]}")
            else:
                asked[row.backend_job_id] = i
        answers = self.backend.delete_many(list(asked)) if asked else {}
        for backend_id, i in asked.items():
            out[i] = _refused(answers, backend_id)
            if out[i] is None:
                gone.append(rows[i].id)
        if gone:
            with self.engine.begin() as conn:
                conn.execute(batch_jobs.delete().where(batch_jobs.c.id.in_(gone)))
        return out

    def list(self, caller: Caller) -> list[str]:
        with self.engine.connect() as conn:
            ids = conn.scalars(
                sa.select(batch_jobs.c.id).where(self._visible(caller)).order_by(batch_jobs.c.id)
            )
            return [str(i) for i in ids]

    def find(self, caller: Caller, client_refs: Sequence[str]) -> dict[str, str]:
        """Which of the caller's client references have a job here, with its id. A row
        left half-done by a crash is completed from the backend when it holds the job,
        and left out otherwise (a submit with the same reference then finishes it)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(batch_jobs).where(
                    batch_jobs.c.submitted_by == caller.user, batch_jobs.c.client_ref.in_(list(client_refs))
                )
            ).all()
        half = [r.id for r in rows if not r.backend_job_id]
        held = self.backend.find(half) if half else {}
        if held:
            with self.engine.begin() as conn:
                for job_id, backend_id in held.items():
                    conn.execute(
                        batch_jobs.update().where(batch_jobs.c.id == job_id).values(backend_job_id=backend_id)
                    )
        return {r.client_ref: str(r.id) for r in rows if r.backend_job_id or r.id in held}
