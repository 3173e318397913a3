"""Login throttling: repeated failed logins for one user name or from one client address
slow down, then lock for a while.

From the ``slow_after``-th failure within ``window`` on, the next attempt must wait 2, 4,
8... seconds (at most a minute); at ``max_failures`` for a user name (or
``max_address_failures`` for an address) it is locked for ``lock``. A locked or waiting
attempt is refused before the password is looked at, with a message that says until
when. A successful login clears its user name's count (not its address's: an attacker
with an account of their own could otherwise reset it between guesses).

The counts live in the database (``login_failure``), so that every portal process
sharing it counts together. A failure is written in a transaction of its own once the
request's has ended (the request's may be rolled back: an error response, and on SQLite
it may hold the only write lock). No Pyramid here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from .catalog import AuthenticationError
from .models import LoginFailure, as_utc, utcnow

MAX_DELAY = 60  # seconds between attempts while slowed down, at most


@dataclass(frozen=True)
class Policy:
    max_failures: int = 5  # for one user name within the window: locked (0: not counted)
    max_address_failures: int = 20  # from one client address (0: not counted)
    window: timedelta = timedelta(minutes=15)
    lock: timedelta = timedelta(minutes=15)
    slow_after: int = 3  # failures after which each next attempt waits


class LoginThrottled(AuthenticationError):
    """Refused without trying: too many failed logins. ``retry_at`` says when to try again."""

    def __init__(self, message: str, retry_at: datetime):
        super().__init__(message)
        self.retry_at = retry_at

    def seconds(self, now: datetime | None = None) -> int:
        """Whole seconds until ``retry_at`` (at least 1), for a Retry-After header."""
        left = (self.retry_at - (now or utcnow())).total_seconds()
        return max(1, int(left + 0.999))


def _bounded(kind: str, value: str) -> str:
    """``kind:value``, or ``kind#<sha-256>`` for a value too long for the column (or one
    the database cannot store, such as a lone surrogate)."""
    try:
        value.encode("utf-8")
        if len(value) <= 250:
            return f"{kind}:{value}"
    except UnicodeEncodeError:
        pass
    return f"{kind}#" + hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def user_key(authenticator: str, username: str) -> str:
    return _bounded("user", f"{authenticator}/{username}")


def keys(policy: Policy, authenticator: str, username: str, address: str | None) -> list[tuple[str, int]]:
    """The counters a login attempt touches, each with the failures that lock it."""
    out = []
    if policy.max_failures > 0:
        out.append((user_key(authenticator, username), policy.max_failures))
    if policy.max_address_failures > 0 and address:
        out.append((_bounded("addr", address), policy.max_address_failures))
    return out


def delay(policy: Policy, failures: int) -> timedelta:
    """How long to wait after the last of ``failures`` failures before the next attempt."""
    if failures < policy.slow_after:
        return timedelta(0)
    return timedelta(seconds=min(2 ** (failures - policy.slow_after + 1), MAX_DELAY))


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def _in(seconds: float) -> str:
    seconds = max(1, int(seconds + 0.999))
    if seconds < 120:
        return f"{seconds} seconds"
    return f"{(seconds + 59) // 60} minutes"


def check(db, policy: Policy, counters: Sequence[tuple[str, int]], now: datetime | None = None) -> bool:
    """Raise :class:`LoginThrottled` if any of ``counters`` is locked or must still wait
    (saying the longest wait); return whether any of them has failures on record (a
    success then clears its user's)."""
    now = now or utcnow()
    names = {key: ("this user name" if key.startswith("user") else "your address") for key, _ in counters}
    rows = db.execute(sa.select(LoginFailure).where(LoginFailure.key.in_(list(names)))).scalars().all()
    refusals = []
    for row in rows:
        what = names[row.key]
        locked = as_utc(row.locked_until) if row.locked_until else None
        if locked and now < locked:
            message = (
                f"too many failed logins for {what}: logins are locked until {_when(locked)}; "
                f"try again in {_in((locked - now).total_seconds())}"
            )
            refusals.append((locked, row.key.startswith("user"), message))
            continue
        if as_utc(row.first_at) < now - policy.window:
            continue  # an old count: forgotten at the next failure
        retry = as_utc(row.last_at) + delay(policy, row.failures)
        if now < retry:
            message = (
                f"too many failed logins for {what}: wait {_in((retry - now).total_seconds())} "
                f"before the next attempt (at {_when(retry)})"
            )
            refusals.append((retry, row.key.startswith("user"), message))
    if refusals:
        retry, _, message = max(refusals)
        raise LoginThrottled(message, retry)
    return bool(rows)


def record_failure(
    engine, policy: Policy, counters: Sequence[tuple[str, int]], now: datetime | None = None
) -> None:
    """Count a failed login on each counter, in a transaction of its own (committed at
    once), locking those that reach their limit; and forget counts nobody has added to
    for longer than a window and a lock."""
    now = now or utcnow()
    for key, limit in counters:
        for _ in range(5):  # another process may count the same key at the same moment
            try:
                with engine.begin() as conn:
                    if _count(conn, policy, key, limit, now):
                        break
            except sa.exc.IntegrityError:  # it inserted the row first: count on it
                continue
    with engine.begin() as conn:
        stale = now - max(policy.window, policy.lock) - timedelta(minutes=1)
        conn.execute(sa.delete(LoginFailure).where(LoginFailure.last_at < stale))


def _count(conn, policy: Policy, key: str, limit: int, now: datetime) -> bool:
    table = LoginFailure.__table__
    row = conn.execute(sa.select(table).where(table.c.key == key)).first()
    if row is None:
        locked = now + policy.lock if limit <= 1 else None
        conn.execute(
            sa.insert(LoginFailure).values(
                key=key, failures=1, first_at=now, last_at=now, locked_until=locked
            )
        )
        return True
    locked = as_utc(row.locked_until) if row.locked_until else None
    still_locked = locked is not None and now < locked
    fresh = as_utc(row.first_at) < now - policy.window and not still_locked
    failures = 1 if fresh else row.failures + 1
    values = {"failures": failures, "last_at": now}
    if fresh:
        values.update(first_at=now, locked_until=None)
    if failures >= limit and not still_locked:
        values["locked_until"] = now + policy.lock
    done = conn.execute(
        sa.update(LoginFailure)
        .where(LoginFailure.key == key, LoginFailure.failures == row.failures)
        .values(**values)
    ).rowcount
    return done == 1


def clear(db, authenticator: str, username: str) -> None:
    """A successful login: its user name's failures are forgotten."""
    db.execute(sa.delete(LoginFailure).where(LoginFailure.key == user_key(authenticator, username)))
