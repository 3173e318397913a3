"""The embedded catalog's password hashes: argon2id at OWASP's recommended minimum.

OWASP's Password Storage Cheat Sheet recommends argon2id with at least 19 MiB of memory,
2 iterations and 1 degree of parallelism (or one of its equivalent settings that trade
memory for iterations). That is what is used here, and not argon2-cffi's default (64 MiB,
3 iterations, 4 lanes: RFC 9106's "low memory" profile): on the 2-core machine the portal
was measured on, the default took 138 ms of both cores per login, so ten logins at once
took seconds and held request threads meanwhile; these parameters take about 20 ms of one
core (docs/capacity.md). A login verifies exactly one hash, and the argon2 binding releases
Python's lock while it hashes, so other requests go on meanwhile.

The parameters are written into every hash (``$argon2id$v=19$m=19456,t=2,p=1$...``), so
hashes made with other parameters (the earlier default, a future stronger one) still
verify; :func:`verify` says when a hash that verified should be replaced with one of the
current parameters, and the login does that (:meth:`EmbeddedCatalog.login`).
No Pyramid here.
"""

from __future__ import annotations

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MEMORY_KIB = 19 * 1024  # OWASP: at least 19 MiB
TIME_COST = 2  # iterations; OWASP: at least 2 with 19 MiB
PARALLELISM = 1  # lanes; OWASP: 1 (a login takes one core, not all of them)

HASHER = PasswordHasher(time_cost=TIME_COST, memory_cost=MEMORY_KIB, parallelism=PARALLELISM, type=Type.ID)

# Verifying against this keeps the time of "no such user" equal to "wrong password".
_DUMMY_HASH = HASHER.hash("not a password")


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def verify(stored: str | None, password: str) -> tuple[bool, str | None]:
    """Whether ``password`` matches ``stored`` (None: no such user, checked against a dummy
    hash all the same so that it takes as long), and, when it does and ``stored`` was made
    with other parameters than today's, the hash to store instead."""
    try:
        HASHER.verify(stored or _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False, None
    if stored is None:
        return False, None
    return True, (HASHER.hash(password) if HASHER.check_needs_rehash(stored) else None)
