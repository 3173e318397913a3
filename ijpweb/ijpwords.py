"""The original IJP's words, shared by everything that speaks its protocols (the
/ijp/rest/jm API, ijp-batchserver and the remote backend): its status words and its
error codes with their HTTP statuses (ijp-formats.md §4.2 and §5.1)."""

from __future__ import annotations

from .states import JobStatus

# our statuses in the original's words: it has no Submitting, Running or Failed
STATUS_WORDS = {
    JobStatus.SUBMITTING: "Queued",
    JobStatus.QUEUED: "Queued",
    JobStatus.RUNNING: "Executing",
    JobStatus.HELD: "Held",
    JobStatus.COMPLETED: "Completed",
    JobStatus.FAILED: "Completed",
    JobStatus.CANCELLED: "Cancelled",
    JobStatus.UNKNOWN: "Unknown",
}
# and back, for what an original server reports
FROM_WORDS = {
    "Queued": JobStatus.QUEUED,
    "Executing": JobStatus.RUNNING,
    "Held": JobStatus.HELD,
    "Completed": JobStatus.COMPLETED,
    "Cancelled": JobStatus.CANCELLED,
    "Unknown": JobStatus.UNKNOWN,
}
ERROR_STATUS = {
    "ParameterException": 400,
    "SessionException": 403,
    "ForbiddenException": 403,
    "NotFoundException": 404,  # (ijp-batchserver's outputs extension: no such output file)
    "InternalException": 500,
}


class IjpError(Exception):
    """An error as the original reports it: ``{"code", "message"}`` with its HTTP status."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message

    @property
    def status(self) -> int:
        return ERROR_STATUS[self.code]

    def body(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}
