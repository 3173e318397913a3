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

import ctypes

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


M_ARENA_MAX = -8  # glibc's mallopt parameter


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Keep glibc from holding a hash's memory once per request thread.

    argon2 allocates its 19 MiB with malloc, in the arena of the thread that hashes; glibc
    keeps it there for the next (its mmap threshold rises after the first free), so that a
    process whose 8 request threads each once verified a login held 8 x 19 MiB more for
    good (measured: 155 MiB). With at most ``arenas`` arenas it holds at most that many.
    Python's own small objects do not use these arenas, and other threads wait on them
    only while argon2 allocates. Called once at start, before the request threads exist;
    False where the C library is not glibc (nothing changed)."""
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_ARENA_MAX, arenas))
