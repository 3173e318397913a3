"""A remote batch server speaking the IJP batch protocol (``<url>/batch/...``): the
project's own ``ijp-batchserver`` or an original one (ijp.unixbatch and friends).

Every call carries ``sessionId`` and ``icatUrl``. The session is the portal's own ICAT
login (``username``, with the password in the environment variable ``password_env``),
so harvesting, output and deletion work after the user's session has gone; the
user's session travels only to the job, as ``jobSessionId`` in a POST body.

With ``ijp-batchserver`` (it lists its extensions at ``/batch/version``) the portal also
uses ``owner``, ``clientRef`` + ``find`` (nothing lost or run twice after a crash),
``states`` (one call per harvest), output ``offset``, ``outputs`` (a job's output
files and variables) and ``bulk`` (cancel or delete many jobs in one call). Against an
original server it falls back to one ``status`` call per job, and cannot recover a crash mid-submission.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from datetime import datetime

from .. import outputs as outs
from ..ijpwords import FROM_WORDS
from ..planning import SESSION_ENV
from ..states import JobStatus
from . import Batched, BatchError, BatchState, JobSpec

STATUSES = {s.value: s for s in JobStatus}
BULK_IDS = 500  # job ids in one call of the "bulk" extension (the batch server takes up to 1000)
ONE_TIMEOUT = 10.0  # seconds for each cancel or delete of one job (an original server)
ONE_BY_ONE_SECONDS = 30.0  # and for all of them, one after another


class Unreachable(BatchError):
    """The batch server cannot be used at all: it did not answer (no connection, a
    timeout), or the portal cannot log in to the ICAT its calls need."""


def _ts(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class RemoteBackend(Batched):
    def __init__(
        self,
        name: str,
        url: str,
        icat_url: str,
        username: str,
        password: str,
        authenticator: str = "db",
        timeout: float = 30.0,
        job_prefix: str = "ijp",
    ):
        self.name = name
        self.url = url.rstrip("/") + "/batch/"
        self.icat_url = icat_url.rstrip("/")
        self.authenticator = authenticator
        self.username = username
        self._password = password
        self.timeout = timeout
        self.job_prefix = job_prefix
        self._session: str | None = None
        self._extensions: frozenset[str] | None = None
        self._lock = threading.Lock()

    # --- HTTP ----------------------------------------------------------------------------

    def _login(self) -> str:
        body = json.dumps(
            {
                "plugin": self.authenticator,
                "credentials": [{"username": self.username}, {"password": self._password}],
            }
        )
        data = urllib.parse.urlencode({"json": body}).encode()
        try:
            with urllib.request.urlopen(  # noqa: S310 - a configured URL
                f"{self.icat_url}/icat/session", data=data, timeout=self.timeout
            ) as resp:
                return json.load(resp)["sessionId"]
        except urllib.error.HTTPError as e:
            raise Unreachable(
                f"{self.name}: the portal cannot log in to ICAT as {self.username}: {_message(e)}"
            ) from None
        except (OSError, ValueError, KeyError) as e:
            raise Unreachable(f"{self.name}: cannot reach ICAT at {self.icat_url}: {e}") from None

    def _sid(self, renew: bool = False) -> str:
        with self._lock:
            if renew or self._session is None:
                self._session = self._login()
            return self._session

    def _call(self, method: str, path: str, params=(), *, raw: bool = False, output: bool = False,
              timeout: float | None = None):  # fmt: skip
        """One protocol call; a SessionException renews the portal's login once. With
        ``output`` (the outputs extension), a name refused or not found is an
        OutputError of its kind. ``timeout``: at most the backend's own. A server that
        does not answer is :class:`Unreachable`."""
        timeout = self.timeout if timeout is None else min(timeout, self.timeout)
        for attempt in (0, 1):
            fields = [("sessionId", self._sid(renew=attempt == 1)), ("icatUrl", self.icat_url), *params]
            query = urllib.parse.urlencode(fields)
            if method == "POST":
                req = _request(self.url + path, data=query.encode(), method="POST")
            else:
                req = _request(f"{self.url}{path}?{query}", method=method)
            try:
                with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - see _request
                    body = resp.read()
                    return body if raw else (json.loads(body) if body else None)
            except urllib.error.HTTPError as e:
                message, code = _message(e, with_code=True)
                if code == "SessionException" and attempt == 0:
                    continue
                if output and code == "NotFoundException":
                    raise outs.OutputError(message) from None
                if output and code == "ParameterException":
                    raise outs.BadName(message) from None
                raise BatchError(f"{self.name}: {message}") from None
            except (OSError, ValueError) as e:
                raise Unreachable(f"{self.name}: batch server at {self.url} did not answer: {e}") from None
        raise AssertionError("unreachable")

    def _has(self, extension: str) -> bool:
        if self._extensions is None:
            try:
                req = _request(self.url + "version")
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 - see _request
                    self._extensions = frozenset(json.load(resp).get("extensions", ()))
            except urllib.error.HTTPError:  # an original server has no /version
                self._extensions = frozenset()
            except (OSError, ValueError) as e:
                raise BatchError(f"{self.name}: batch server at {self.url} did not answer: {e}") from None
        return extension in self._extensions

    def probe(self) -> None:
        """Whether the batch server answers (its version; BatchError if not). The
        harvester asks when no job is live."""
        try:
            with urllib.request.urlopen(_request(self.url + "version"), timeout=self.timeout):  # noqa: S310 - see _request
                pass
        except urllib.error.HTTPError:  # an original server has no /version: it answered
            pass
        except OSError as e:
            raise BatchError(f"{self.name}: batch server at {self.url} did not answer: {e}") from None

    def _ref(self, job_id: int) -> str:
        return f"{self.job_prefix}-{job_id}"

    # --- the protocol ------------------------------------------------------------------

    def submit(self, spec: JobSpec) -> str:
        params = [("executable", spec.executable), *(("parameter", a) for a in spec.args)]
        params += [("interactive", "true" if spec.interactive else "false"), ("family", spec.family or "")]
        if self._has("owner"):
            params += [("owner", spec.owner), ("clientRef", self._ref(spec.job_id))]
            if SESSION_ENV in spec.env:
                params.append(("jobSessionId", spec.env[SESSION_ENV]))
        reply = self._call("POST", "submit", params)
        if not isinstance(reply, dict) or not reply.get("jobId"):
            raise BatchError(f"{self.name}: the batch server gave no job id")
        return str(reply["jobId"])

    def find(self, job_ids: Sequence[int]) -> dict[int, str]:
        if not job_ids or not self._has("find"):
            return {}
        by_ref = {self._ref(i): i for i in job_ids}
        reply = self._call("POST", "find", [("clientRef", r) for r in by_ref])
        return {by_ref[ref]: str(jid) for ref, jid in reply.items() if ref in by_ref}

    def estimate(self, spec: JobSpec) -> float | None:
        params = [("executable", spec.executable), *(("parameter", a) for a in spec.args)]
        params += [("interactive", "false"), ("family", spec.family or "")]
        reply = self._call("GET", "estimate", params)
        time = reply.get("time") if isinstance(reply, dict) else None
        return float(time) if isinstance(time, int | float) else None

    def states(self, ids: Sequence[str]) -> dict[str, BatchState]:
        if not ids:
            return {}
        if self._has("states"):
            reply = self._call("POST", "states", [("jobId", i) for i in ids])
            out = {}
            for i in ids:
                st = reply.get(i) or {"status": "Unknown", "reason": "not reported by the batch server"}
                status = STATUSES.get(st.get("status"), JobStatus.UNKNOWN)
                if status == JobStatus.SUBMITTING:
                    status = JobStatus.QUEUED
                out[i] = BatchState(
                    status,
                    st.get("exitCode"),
                    st.get("reason"),
                    _ts(st.get("startedAt")),
                    _ts(st.get("finishedAt")),
                )
            return out
        out = {}
        for i in ids:  # an original server: one call per job
            try:
                status = FROM_WORDS.get(self._call("GET", f"status/{_q(i)}").get("status"), JobStatus.UNKNOWN)
                out[i] = BatchState(status)
            except BatchError as e:
                out[i] = BatchState(JobStatus.UNKNOWN, reason=str(e))
        return out

    def read(self, job_id: str, stream: str, offset: int = 0, limit: int = 65536) -> bytes:
        path = f"{'output' if stream == 'stdout' else 'error'}/{_q(job_id)}"
        if self._has("offset"):
            return self._call("GET", path, [("offset", str(offset)), ("limit", str(limit))], raw=True)
        return self._call("GET", path, raw=True)[offset : offset + limit]

    # --- outputs (the batch server's "outputs" extension) ---------------------------------

    @property
    def outputs(self) -> bool:
        """Whether the batch server offers output files and variables (ijp-batchserver
        does; an original server does not)."""
        return self._has("outputs")

    def output_files(self, job_id: str, limit: int = outs.MAX_LISTED) -> outs.Listing:
        if not self.outputs:
            raise outs.NoOutput("this batch server does not offer output files")
        reply = self._call("GET", f"outputs/{_q(job_id)}", [("limit", str(limit))])
        try:
            listed = [
                outs.OutputFile(str(f["name"]), int(f["size"]), datetime.fromisoformat(f["modified"]))
                for f in reply["files"][:limit]
            ]
            # (a server of an older version lists names that are not UTF-8: counted, not shown)
            files = tuple(f for f in listed if outs.showable(f.name))
            unnamed = int(reply.get("unnamed", 0)) + len(listed) - len(files)
            return outs.Listing(files, int(reply["total"]) - (len(listed) - len(files)), int(reply["totalSize"]),
                                int(reply.get("others", 0)), bool(reply.get("more")), unnamed)  # fmt: skip
        except (KeyError, TypeError, ValueError) as e:
            raise BatchError(
                f"{self.name}: the batch server's list of output files is not readable: {e}"
            ) from None

    def read_output_file(self, job_id: str, name: str, offset: int, limit: int) -> bytes:
        outs.check_name(name)
        params = [("name", name), ("offset", str(offset)), ("limit", str(limit))]
        return self._call("GET", f"outputfile/{_q(job_id)}", params, raw=True, output=True)

    def open_output(self, job_id: str, name: str):
        """The output file as a file object reading it from the batch server by offset
        (one request per MB). Its first read is made here: a name not found is an
        OutputError at once."""
        if not self.outputs:
            raise outs.NoOutput("this batch server does not offer output files")
        raw = _RemoteFile(self, job_id, name)
        raw.first = self.read_output_file(job_id, name, 0, READ_CHUNK)
        return io.BufferedReader(raw, READ_CHUNK)

    def output_zip_entries(self, job_id: str):
        for f in self.output_files(job_id, outs.MAX_ZIPPED).files:
            try:
                fh = self.open_output(job_id, f.name)
            except outs.OutputError:
                continue
            yield f.name, (lambda fh=fh: fh)

    def output_vars(self, job_id: str) -> outs.OutputVars | None:
        if not self.outputs:
            return None
        data = self._call("GET", f"outputvars/{_q(job_id)}", raw=True)
        return outs.parse_vars(data) if data else None

    # --- cancel and delete: many jobs in one call (the batch server's "bulk" extension) -----

    def cancel_many(self, job_ids: Sequence[str]) -> dict[str, BatchError | None]:
        return self._many("cancels", job_ids, lambda i: self._call(
            "POST", f"cancel/{_q(i)}", timeout=ONE_TIMEOUT))  # fmt: skip

    def delete_many(self, job_ids: Sequence[str]) -> dict[str, BatchError | None]:
        return self._many("deletes", job_ids, lambda i: self._call(
            "DELETE", f"delete/{_q(i)}", timeout=ONE_TIMEOUT))  # fmt: skip

    def _many(self, path: str, job_ids: Sequence[str], one) -> dict[str, BatchError | None]:
        """With the "bulk" extension (ijp-batchserver), one call per BULK_IDS jobs, each
        job answered on its own. Against an original server, one call per job, each with a
        short timeout and all within ONE_BY_ONE_SECONDS: a server that does not answer at
        all is not asked again for the others, and those left when the time is up are
        answered "not tried", never held for minutes."""
        ids = list(dict.fromkeys(job_ids))
        out: dict[str, BatchError | None] = {}
        if self._has("bulk"):
            for n in range(0, len(ids), BULK_IDS):
                part = ids[n : n + BULK_IDS]
                reply = self._call("POST", path, [("jobId", i) for i in part])
                results = reply.get("results") if isinstance(reply, dict) else None
                if not isinstance(results, dict):
                    raise BatchError(f"{self.name}: the batch server's answer to {path} is not readable")
                for i in part:
                    said = results.get(i, {"message": "the batch server did not answer for this job"})
                    out[i] = None if said is None else BatchError(f"{self.name}: {_said(said)}")
            return out
        deadline = time.monotonic() + ONE_BY_ONE_SECONDS
        stop: BatchError | None = None
        for i in ids:
            if stop is None and time.monotonic() > deadline:
                stop = BatchError(f"{self.name}: not tried: the batch server took over "
                                  f"{ONE_BY_ONE_SECONDS:g} s for the others; try again")  # fmt: skip
            if stop is not None:
                out[i] = stop
                continue
            try:
                one(i)
                out[i] = None
            except Unreachable as e:
                out[i] = stop = e
            except BatchError as e:
                out[i] = e
        return out


READ_CHUNK = 1 << 20


class _RemoteFile(io.RawIOBase):
    """An output file on the batch server, read by offset as it is consumed."""

    def __init__(self, backend: RemoteBackend, job_id: str, name: str):
        self.backend, self.job_id, self.name = backend, job_id, name
        self.pos = 0
        self.first: bytes | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buf) -> int:
        if self.first is not None and self.pos == 0:
            data, self.first = self.first, None
        else:
            data = self.backend.read_output_file(
                self.job_id, self.name, self.pos, min(len(buf), READ_CHUNK) or 1
            )
        data = data[: len(buf)]
        buf[: len(data)] = data
        self.pos += len(data)
        return len(data)


def _request(url: str, data: bytes | None = None, method: str | None = None) -> urllib.request.Request:
    """A request to a configured URL, whose scheme from_settings checked is http(s)."""
    return urllib.request.Request(url, data=data, method=method)  # noqa: S310


def _q(job_id: str) -> str:
    return urllib.parse.quote(job_id, safe="")


def _said(error) -> str:
    """A job's error in a "bulk" answer ({"code", "message"}), as a bounded line."""
    message = error.get("message") if isinstance(error, dict) else None
    return str(message)[:500] if message else "refused"


def _message(e: urllib.error.HTTPError, with_code: bool = False):
    try:
        body = json.load(e)
        message, code = body.get("message") or str(e.code), body.get("code")
    except ValueError:
        message, code = f"HTTP {e.code}", None
    return (message, code) if with_code else message


def from_settings(name: str, opts: Mapping[str, str]) -> RemoteBackend:
    env = opts.get("password_env", "IJP_BATCH_PASSWORD")
    password = os.environ.get(env)
    if not password:
        raise ValueError(f"ijp.batch.{name}: the portal's ICAT password must be in ${env}")
    for key in ("url", "icat_url", "username"):
        if not opts.get(key):
            raise ValueError(f"ijp.batch.{name}.{key} is required for a remote backend")
        if key != "username" and urllib.parse.urlsplit(opts[key]).scheme not in ("http", "https"):
            raise ValueError(f"ijp.batch.{name}.{key} must be an http or https URL")
    return RemoteBackend(
        name,
        opts["url"],
        opts["icat_url"],
        opts["username"],
        password,
        authenticator=opts.get("authenticator", "db"),
        timeout=float(opts.get("timeout", 30)),
        job_prefix=opts.get("job_prefix", "ijp"),
    )
