"""IDS locations carry a digest keyed by a server secret

Revision ID: a10c0de5e002
Revises: a10c0de5e001
Create Date: 2026-11-30 07:00:01

A revision must work with the code of the previous release too: add before you drop.

No schema change: the embedded IDS now serves a datafile only if its location is
``"<path> <digest>"``, the digest an HMAC-SHA256 of ``"<id> <path>"`` under the IDS key
(ijpweb.catalog.ids). This rewrites the locations the IDS itself wrote before, those
equal to the datafile's own store path ``NNNN/<id>`` (IDS put, the demo loader), with
their digest. Any other location (given by a client through /icat/entityManager, or
loaded from a dump) is left as it is, so it stays unusable: it may have been forged.

The key is read as the portal reads it, from the ini this runs with: ``IJP_IDS_KEY``,
else ``ijp.ids.key``, else the file ``ijp.ids.key_file`` (created 0600 if missing, as
development.ini has it). It is needed only when there are locations to rewrite; then,
without one, this stops and says so. Run ``ijp-admin <ini> migrate`` with the same
environment as the portal. Downgrading strips the digests this key made.
"""

import hashlib
import hmac
import re

import sqlalchemy as sa
from alembic import context, op

revision = "a10c0de5e002"
down_revision = "a10c0de5e001"
branch_labels = None
depends_on = None

datafile = sa.table("icat_datafile", sa.column("id", sa.BigInteger), sa.column("location", sa.String))
BATCH = 5000


def _key() -> bytes:
    from pyramid.paster import get_appsettings

    from ijpweb.catalog.ids import server_key
    from ijpweb.settings import apply_environment, parse

    name = context.config.config_file_name
    settings = dict(get_appsettings(name)) if name else {}
    apply_environment(settings)
    s = parse(settings)
    try:
        return server_key(s.ids_key, s.ids_key_file)
    except ValueError as e:
        raise RuntimeError(f"cannot sign the existing datafile locations: {e}") from None


def _digest(key: bytes, datafile_id: int, path: str) -> str:
    return hmac.new(key, f"{datafile_id} {path}".encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()


def _rows(conn):
    """(id, location) of the datafiles with a location, in batches by id."""
    last = 0
    while True:
        rows = conn.execute(
            sa.select(datafile.c.id, datafile.c.location)
            .where(datafile.c.id > last, datafile.c.location.is_not(None))
            .order_by(datafile.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def _rewrite(candidate, change) -> None:
    """Set ``change(key, id, location)`` (unless None) as the location of every datafile
    for which ``candidate(id, location)`` holds; the key is read at the first one."""
    conn = op.get_bind()
    key = None
    for rows in _rows(conn):
        updates = []
        for datafile_id, location in rows:
            if not candidate(datafile_id, location):
                continue
            key = key or _key()
            if (new := change(key, datafile_id, location)) is not None:
                updates.append({"b_id": datafile_id, "b_location": new})
        if updates:
            conn.execute(
                datafile.update()
                .where(datafile.c.id == sa.bindparam("b_id"))
                .values(location=sa.bindparam("b_location")),
                updates,
            )


def _written_by_the_ids(datafile_id, location) -> bool:
    """The store path put and the demo loader gave a datafile (its own id's)."""
    return location == f"{datafile_id // 1000:04d}/{datafile_id}"


def _sign(key, datafile_id, location):
    return f"{location} {_digest(key, datafile_id, location)}"


def _has_digest(datafile_id, location) -> bool:
    path, _, given = location.rpartition(" ")
    return bool(path) and re.fullmatch(r"[0-9a-f]{64}", given, re.ASCII) is not None


def _unsign(key, datafile_id, location):
    path, _, given = location.rpartition(" ")
    return path if hmac.compare_digest(given, _digest(key, datafile_id, path)) else None


def upgrade():
    _rewrite(_written_by_the_ids, _sign)


def downgrade():
    _rewrite(_has_digest, _unsign)
