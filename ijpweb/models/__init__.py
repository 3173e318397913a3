"""The database: engine and per-request session (the Pyramid cookiecutter's wiring)."""

import zope.sqlalchemy
from pyramid.settings import asbool
from sqlalchemy import engine_from_config, event
from sqlalchemy.orm import configure_mappers, sessionmaker

from ..catalog import icatdb  # noqa: E402, F401  (the embedded ICAT's tables join the metadata)
from .audit import AuditEntry  # noqa: F401
from .catalog import CatalogSession, DbCredential, PreparedData  # noqa: F401
from .comments import JobComment  # noqa: F401
from .desktops import Desktop, DesktopToken  # noqa: F401
from .health import BackendHealth  # noqa: F401
from .jobs import Job, JobTag, Submission, WebSession, as_utc, user_tags, utcnow  # noqa: F401
from .logins import LoginFailure, PendingLogout  # noqa: F401
from .meta import Base  # noqa: F401

configure_mappers()


def get_engine(settings, prefix="sqlalchemy."):
    # hide_parameters: an error's message (and so the log) never shows bound values, which
    # include catalog session ids and token hashes
    # (SQLAlchemy converts pool_size, max_overflow and pool_timeout from the ini's text
    # itself, but not pool_pre_ping: "false" would be true)
    extra = {}
    if prefix + "pool_pre_ping" in settings:
        extra["pool_pre_ping"] = asbool(settings[prefix + "pool_pre_ping"])
    engine = engine_from_config(settings, prefix, hide_parameters=True, **extra)
    # A write waits up to ijp.db.busy_seconds (10) for a lock another holds (a catalog
    # create holds it for at most ijp.catalog.query_seconds), then fails as a 503 with
    # Retry-After (views/errors.py) instead of holding its thread for ever.
    busy_ms = round(1000 * min(3600.0, max(0.0, float(settings.get("ijp.db.busy_seconds", 10)))))
    if engine.dialect.name == "postgresql":

        @event.listens_for(engine, "connect")
        def _pg_lock_timeout(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute(f"SET lock_timeout = {busy_ms:d}")
            cur.close()
            dbapi_conn.commit()  # (a SET in a transaction rolled back would be undone)

    if engine.dialect.name == "sqlite":
        # Several threads (requests, the harvester) share one file: wait, then fail.

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={busy_ms:d}")
            cur.close()

    return engine


def get_session_factory(engine):
    return sessionmaker(bind=engine, expire_on_commit=False)


def get_tm_session(session_factory, transaction_manager, request=None):
    dbsession = session_factory(info={"request": request})
    # "changed" from the start: the catalog writes through SQLAlchemy Core, which
    # zope.sqlalchemy cannot see, and would otherwise roll back at commit.
    zope.sqlalchemy.register(
        dbsession,
        transaction_manager=transaction_manager,
        initial_state=zope.sqlalchemy.datamanager.STATUS_CHANGED,
    )
    return dbsession


def includeme(config):
    settings = config.get_settings()
    settings["tm.manager_hook"] = "pyramid_tm.explicit_manager"
    # pyramid_tm would look up the login of every request (to name it in the transaction,
    # which nothing reads) outside the error views, so that a database it cannot reach
    # then is waitress's 500, not a 503: security.identify_early does it inside them
    settings["tm.annotate_user"] = "false"
    config.include("pyramid_tm")
    config.include("pyramid_retry")

    dbengine = settings.get("dbengine") or get_engine(settings)
    session_factory = get_session_factory(dbengine)
    config.registry["dbengine"] = dbengine
    config.registry["dbsession_factory"] = session_factory

    def dbsession(request):
        # hook to share the dbsession fixture in testing
        dbsession = request.environ.get("app.dbsession")
        if dbsession is None:
            dbsession = get_tm_session(session_factory, request.tm, request=request)
        return dbsession

    config.add_request_method(dbsession, reify=True)


def upgrade(engine, ini: str, revision: str = "head", script_location: str | None = None) -> None:
    """Migrate ``engine``'s database with the migrations ``ini`` names, as migrations/env.py
    does for ``ijp-admin migrate``: on SQLite foreign keys go off while tables are rebuilt
    (outside the transaction, where SQLite ignores the setting), then back as they were."""
    import alembic.command
    import alembic.config

    cfg = alembic.config.Config(ini)
    if script_location:
        cfg.set_main_option("script_location", script_location)
    with engine.connect() as conn:
        sqlite = conn.dialect.name == "sqlite"
        if sqlite:
            was = conn.exec_driver_sql("PRAGMA foreign_keys").scalar()
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        with conn.begin():
            cfg.attributes["connection"] = conn
            alembic.command.upgrade(cfg, revision)
        if sqlite:
            conn.exec_driver_sql(f"PRAGMA foreign_keys={'ON' if was else 'OFF'}")
            conn.commit()
