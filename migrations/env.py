"""Alembic environment: the app's ini drives both the app and its schema."""

from alembic import context
from pyramid.paster import get_appsettings, setup_logging

from ijpweb.models import get_engine
from ijpweb.models.meta import Base
from ijpweb.settings import apply_environment

config = context.config
if config.config_file_name and not config.attributes.get("connection"):
    setup_logging(config.config_file_name)

target_metadata = Base.metadata


def run_migrations_online():
    connection = config.attributes.get("connection")
    if connection is not None:  # the test suite hands in its own connection (foreign keys off)
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()
        return
    settings = dict(get_appsettings(config.config_file_name))
    apply_environment(settings)
    engine = get_engine(settings)
    with engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            # SQLite rebuilds a table to change it (batch mode): with foreign keys on, dropping
            # the old table would delete the rows that refer to it. The setting is ignored
            # inside a transaction, so it goes off before the migrations begin.
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


def run_migrations_offline():
    settings = dict(get_appsettings(config.config_file_name))
    apply_environment(settings)
    context.configure(url=settings["sqlalchemy.url"], target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
