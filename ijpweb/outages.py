"""Outages logged once a minute, not once a second.

The background tasks run every second or few (ijpweb.scheduler): while the database or a
backend is down, each run fails the same way. :func:`failed` logs the first failure of a
task for a reason at once, in one line naming the reason, and the same failure again only
after ``interval`` seconds (60), saying how many repeats it left out meanwhile;
:func:`ok` logs once that the task works again. A failure that is not an outage (a bug:
any exception but the database's, a backend's or the operating system's) is logged with
its traceback, also at most once a minute for the same reason.

A reason is told apart from another by its text with the numbers taken out (a job id or
a count in it does not make a new reason).

No Pyramid here.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

from sqlalchemy import exc as sa_exc

from .batch import BatchError

log = logging.getLogger("ijpweb.outages")

INTERVAL = 60.0  # seconds between two lines for the same task and reason
MAX_REASON = 300


def reason(e: BaseException) -> str:
    """What went wrong, in one short line fit for the log and for staff: no traceback, no
    bound values (the engine hides them), no secret."""
    if isinstance(e, sa_exc.TimeoutError):
        return "the database: no connection free in the pool within its timeout"
    if isinstance(e, sa_exc.DBAPIError):
        orig = getattr(e, "orig", None)
        text = str(orig) if orig is not None else str(e)
        kind = (
            "did not answer" if isinstance(e, sa_exc.OperationalError | sa_exc.InterfaceError) else "failed"
        )
        return _line(f"the database {kind}: {text}")
    if isinstance(e, BatchError):
        return _line(str(e))
    if isinstance(e, OSError):
        return _line(f"{e.strerror or type(e).__name__}{f': {e.filename}' if e.filename else ''}")
    return _line(f"{type(e).__name__}: {e}")


def _line(text: str) -> str:
    first = next((t.strip() for t in text.splitlines() if t.strip()), "")
    return first[:MAX_REASON] or "no reason given"


def expected(e: BaseException) -> bool:
    """An outage (the database, a backend or the system failing), not a bug."""
    return isinstance(e, sa_exc.DBAPIError | sa_exc.TimeoutError | BatchError | OSError)


class Quiet:
    """Failures by (task, reason), logged at most once per ``interval`` seconds each."""

    def __init__(self, interval: float = INTERVAL, clock: Callable[[], float] = time.monotonic,
                 logger: logging.Logger = log):  # fmt: skip
        self.interval, self.clock, self.log = interval, clock, logger
        self._lock = threading.Lock()
        # (task, reason's key) -> [when last logged, repeats left out since, failures in all]
        self._seen: dict[tuple[str, str], list] = {}

    def failed(self, task: str, e: BaseException | str) -> None:
        """``task`` failed with ``e`` (an exception, or a reason's text)."""
        why = e if isinstance(e, str) else reason(e)
        key = (task, re.sub(r"\d+", "#", why))
        now = self.clock()
        with self._lock:
            seen = self._seen.get(key)
            if seen is not None and now - seen[0] < self.interval:
                seen[1] += 1
                seen[2] += 1
                return
            left_out = seen[1] if seen else 0
            self._seen[key] = [now, 0, (seen[2] if seen else 0) + 1]
        more = f" ({left_out} more time(s) in the last {self.interval:g} s)" if left_out else ""
        trace = not isinstance(e, str) and not expected(e)
        self.log.warning("%s failed: %s%s", task, why, more, exc_info=e if trace else None)

    def ok(self, task: str) -> None:
        """``task`` ran without failing: if it had failed, say once that it works again."""
        if not self._seen:  # the usual case: nothing to lock
            return
        with self._lock:
            gone = [k for k in self._seen if k[0] == task]
            failures = sum(self._seen.pop(k)[2] for k in gone)
        if gone:
            self.log.warning("%s works again (after %d failure(s))", task, failures)


QUIET = Quiet()


def failed(task: str, e: BaseException | str) -> None:
    QUIET.failed(task, e)


def ok(task: str) -> None:
    QUIET.ok(task)
