"""The migrations build exactly the schema the models describe, on SQLite and on
PostgreSQL (a model change without its migration fails here)."""

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from ijpweb.models import Base


def test_the_migrated_database_matches_the_models(dbengine):
    with dbengine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
