"""The original IJP REST API (``/ijp/rest/jm/...``, ijp-formats.md §4.2), so clients
written for it (its ``ijp`` command, the TopCAT plugin, scripts) work unchanged: a
catalog session id as ``sessionId``, the original's keys, date format, status words and
``{"code", "message"}`` errors.

Kept from the original: one submit is one job, with the client's parameters as argv.
Not copied: parameters the job type does not declare (the original passed any argument
to the program: ``date -f <file>`` read files). A parameter is accepted only as the job
type's form could produce it (:func:`ijpweb.planning.parse_argv`): ``--datasetIds`` and
``--datafileIds`` with ids the user can see, and declared options with values that the
form's validation accepts; anything else is a ParameterException naming the parameter.
Not copied either: CORS for every origin; the session id on the job's command line (a
client's ``--sessionId=...`` parameter is dropped, and the job gets the session in its
environment); a 500 for an unknown job type (400 here); status calls that reach the
batch system (they read the database, which the harvester keeps current); a status list
without end: ``status`` gives the newest :data:`MAX_STATUS` jobs (the original has no
paging to offer the rest; /api/v1/jobs pages through all of them).
"""

from __future__ import annotations

import sqlalchemy as sa
from pyramid.response import Response
from pyramid.view import view_config, view_defaults

from .. import inputs
from ..batch import BatchError
from ..catalog import CatalogError, QueryBusyError, QueryLimitError, SessionError
from ..families import FamilyError
from ..ijpwords import STATUS_WORDS, IjpError
from ..jobs.actions import JobActionError, cancel_job, delete_job, owned_job, read_output
from ..jobs.submission import SubmitError, SubmitRequest
from ..models import Job
from ..planning import PlanError, argv_fields, parse_argv, shown_name
from . import submit_jobs
from .desktop import desktop_url

MAX_OUTPUT = 16 << 20
MAX_STATUS = 10_000  # jobs in a status list, the newest (the original listed all)
# how a refused submission reads in the original's words (the rest are ParameterException)
SUBMIT_CODES = {
    "forbidden_family": "ForbiddenException",
    "not_visible": "ForbiddenException",
    "session_expired": "SessionException",
    "catalog_unavailable": "InternalException",
    "no_backend": "InternalException",
    "too_many_desktops": "ForbiddenException",
}


def _date(job: Job) -> str:
    return job.submitted_at.strftime("%Y-%m-%d %H:%M:%S")  # UTC


def _refused(jt, e: SubmitError) -> IjpError:
    """A refused submission as the original's error, naming the parameters at fault."""
    if e.code == "confirmation_required":
        return IjpError(
            "ParameterException",
            f"Job type {jt.name} takes one dataset or datafile per job: submit one job per input",
        )
    if e.code == "wrong_inputs":  # the job type's <inputs> rule: its own words
        return IjpError("ParameterException", str(e))
    if e.fields:
        return IjpError("ParameterException", "; ".join(argv_fields(jt, e.fields).values()))
    return IjpError(SUBMIT_CODES.get(e.code, "ParameterException"), str(e))


@view_defaults(require_csrf=False)  # no cookies: every call carries its sessionId
class JobManagement:
    def __init__(self, request):
        self.request = request

    def _call(self, work):
        try:
            return work()
        except IjpError as e:
            err = e
        except SessionError as e:
            err = IjpError("SessionException", str(e))
        except QueryLimitError as e:  # the catalog's limits: too much (400), busy (429), too long (503)
            self.request.tm.doom()
            code = "ParameterException" if e.status == 400 else "InternalException"
            resp = Response(json_body={"code": code, "message": str(e)}, status=e.status)
            if e.status != 400:
                resp.headers["Retry-After"] = "2"
            return resp
        except (CatalogError, BatchError) as e:
            err = IjpError("InternalException", str(e))
        self.request.tm.doom()
        resp = Response(json_body=err.body())
        resp.status = err.status
        return resp

    def _user(self) -> tuple[str, str]:
        sid = self.request.params.get("sessionId")
        if not sid:
            raise IjpError("SessionException", "sessionId must not be null")
        sid = inputs.text(sid, "sessionId", 1000)
        return self.request.catalog.user_name(sid), sid

    def _job(self) -> Job:
        user, _ = self._user()
        try:
            job = owned_job(
                self.request.dbsession, user, inputs.job_id(self.request.matchdict["job_id"], "jobId")
            )
        except inputs.InputError:  # no job has such an id: the original's answer for any other's
            job = None
        if job is None:  # the one ownership rule (the pages' and /api/v1's)
            raise IjpError("ForbiddenException", "Job does not belong to you")
        return job

    @view_config(route_name="jm.jobtypes", request_method="GET", renderer="json")
    def jobtypes(self):
        return self._call(lambda: [jt.name for jt in self.request.jobtypes.all()])

    @view_config(route_name="jm.jobtype", request_method="GET", renderer="json")
    def jobtype(self):
        def work():
            jt = self.request.jobtypes.get(self.request.matchdict["name"])
            if jt is None:
                raise IjpError("ParameterException", f"Job type {self.request.matchdict['name']} not known")
            return jt.to_ijp_json()

        return self._call(work)

    @view_config(route_name="jm.submit", request_method="POST", renderer="json")
    def submit(self):
        return self._call(self._submit)

    def _submit(self):
        request = self.request
        user, sid = self._user()
        name = request.POST.get("jobName", "")
        jt = request.jobtypes.get(name)
        if jt is None:
            raise IjpError("ParameterException", f"Job type {shown_name(name)} not known")
        try:
            request.registry["ijp.families"].check(jt.family, user)
        except FamilyError as e:
            raise IjpError("ForbiddenException", str(e)) from None
        try:
            given = parse_argv(jt, request.POST.getall("parameter"), max_length=request.ijp.max_value_length)
        except PlanError as e:
            raise IjpError("ParameterException", str(e)) from None
        req = SubmitRequest(jt.name, given.dataset_ids, given.datafile_ids, given.values, "single",
                            strict=True, from_argv=True)  # fmt: skip
        try:
            sub = submit_jobs(request, req, user, sid)
        except SubmitError as e:
            if e.code == "catalog_busy":
                raise QueryBusyError(str(e)) from None
            raise _refused(jt, e) from None
        if jt.interactive:
            # the original answered an interactive submission with RDP credentials (host,
            # account, password); here the desktop opens in the browser: its page's URL (README)
            return {"jobId": sub.jobs[0].id, "url": desktop_url(request, sub.jobs[0].id)}
        return {"jobId": sub.jobs[0].id}

    @view_config(route_name="jm.status", request_method="GET", renderer="json")
    def status(self):
        def work():
            user, _ = self._user()
            # the columns it shows, no Job objects (nor their tags), the newest MAX_STATUS
            columns = (Job.id, Job.job_type, Job.submitted_at, Job.status, Job.provenance_id)
            rows = self.request.dbsession.execute(
                sa.select(*columns).where(Job.owner == user).order_by(Job.id.desc()).limit(MAX_STATUS)
            )
            return [
                {
                    "jobId": j.id,
                    "name": j.job_type,
                    "date": _date(j),
                    "status": STATUS_WORDS[j.status],
                    "provenanceId": j.provenance_id or 0,
                }
                for j in rows
            ]

        return self._call(work)

    @view_config(route_name="jm.status.one", request_method="GET", renderer="json")
    def status_one(self):
        def work():
            j = self._job()
            return {"jobId": j.id, "name": j.job_type, "date": _date(j), "status": STATUS_WORDS[j.status]}

        return self._call(work)

    def _read(self, stream: str):
        job = self._job()
        chunks, offset = [], 0
        while offset < MAX_OUTPUT:
            data = read_output(self.request.backends, job, stream, offset, 1 << 20)
            chunks.append(data)
            offset += len(data)
            if len(data) < 1 << 20:
                break
        return {"output": b"".join(chunks).decode("utf-8", errors="replace")}

    @view_config(route_name="jm.output", request_method="GET", renderer="json")
    def output(self):
        return self._call(lambda: self._read("stdout"))

    @view_config(route_name="jm.error", request_method="GET", renderer="json")
    def error(self):
        return self._call(lambda: self._read("stderr"))

    def _act(self, action):
        job = self._job()
        try:
            action(self.request.dbsession, self.request.backends, job)
        except JobActionError as e:
            raise IjpError("ParameterException", str(e)) from None
        return Response(status=204)

    @view_config(route_name="jm.cancel", request_method="POST")
    def cancel(self):
        return self._call(lambda: self._act(cancel_job))

    @view_config(route_name="jm.delete", request_method="DELETE")
    def delete(self):
        return self._call(lambda: self._act(delete_job))

    @view_config(route_name="jm.provenance", request_method="POST", renderer="json")
    def provenance(self):
        def work():
            job = self._job()
            try:
                job.provenance_id = inputs.whole_number(
                    self.request.POST.get("provenanceId", ""), "provenanceId", 0, inputs.MAX_ID
                )
            except inputs.InputError as e:
                raise IjpError("ParameterException", e.message) from None
            return {"jobId": job.id, "provenanceId": job.provenance_id}

        return self._call(work)
