"""The migrations build exactly the schema the models describe, on SQLite and on
PostgreSQL (a model change without its migration fails here)."""

import json
from datetime import UTC, datetime

import alembic.command
import alembic.config
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from ijpweb.models import Base, get_engine

from ..conftest import ROOT, migrate


def test_the_migrated_database_matches_the_models(dbengine):
    with dbengine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def _autoincrement(conn) -> dict[str, bool]:
    rows = conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'table'").all()
    return {name: "AUTOINCREMENT" in sql for name, sql in rows if not name.startswith(("sqlite_", "alembic"))}


def test_ids_are_never_reused_where_the_models_say_so(dbengine):
    """compare_metadata does not see SQLite's AUTOINCREMENT: compare it here. On
    PostgreSQL those tables' ids come from a sequence, which never gives an id twice."""
    wanted = {t.name: bool(t.dialect_options["sqlite"]["autoincrement"]) for t in Base.metadata.sorted_tables}
    with dbengine.connect() as conn:
        if dbengine.dialect.name == "sqlite":
            assert _autoincrement(conn) == wanted
        else:
            serial = sa.text("SELECT pg_get_serial_sequence(:t, 'id')")
            unsequenced = [
                t for t, w in wanted.items() if w and conn.execute(serial, {"t": t}).scalar() is None
            ]
            assert unsequenced == []
    assert wanted["job"] and wanted["submission"] and wanted["icat_dataset"] and wanted["icat_datafile"]
    assert not wanted["web_session"]  # string ids: nothing to reuse


NOW = datetime(2026, 11, 30, tzinfo=UTC)


def _fill(conn) -> None:
    """Rows as a portal at the previous revision would hold them: a submission, jobs with
    tags (which cascade on delete), and a catalog with datasets and datafiles."""
    conn.execute(sa.text(
        "INSERT INTO submission (id, owner, job_type, mode, created_at) VALUES (1, 'db/bob', 'Date', 'each', :t)"
    ), {"t": NOW})  # fmt: skip
    for i in (1, 2, 3):
        conn.execute(sa.text(
            "INSERT INTO job (id, submission_id, owner, job_type, dataset_ids, datafile_ids, options, argv,"
            " backend, status, submitted_at) VALUES (:i, 1, 'db/bob', 'Date', '[]', '[]', '{}', '[]', 'local',"
            " 'Completed', :t)"
        ), {"i": i, "t": NOW})  # fmt: skip
        conn.execute(
            sa.text("INSERT INTO job_tag (job_id, tag, owner) VALUES (:i, 'run', 'db/bob')"), {"i": i}
        )
    conn.execute(sa.text("INSERT INTO icat_facility (id, name) VALUES (1, 'LMF')"))
    conn.execute(sa.text(
        "INSERT INTO icat_investigation (id, name, title, \"visitId\", facility_id) VALUES (1, 'I', 'T', 'v', 1)"
    ))  # fmt: skip
    conn.execute(sa.text("INSERT INTO icat_dataset_type (id, name, facility_id) VALUES (1, 'confocal', 1)"))
    for i in (1, 2):
        conn.execute(sa.text(
            "INSERT INTO icat_dataset (id, name, complete, investigation_id, type_id) VALUES (:i, :n, 0, 1, 1)"
        ), {"i": i, "n": f"ds{i}"})  # fmt: skip
        conn.execute(sa.text(
            "INSERT INTO icat_datafile (id, name, dataset_id) VALUES (:i, 'f', :i)"
        ), {"i": i})  # fmt: skip


def test_the_rebuild_keeps_every_row_and_ids_are_not_reused_after_it(tmp_path):
    """The SQLite rebuild on a database with data: nothing cascades away, and afterwards
    the id of a deleted last row does not come back."""
    engine = get_engine({"sqlalchemy.url": f"sqlite:///{tmp_path / 'old.sqlite'}"})  # foreign keys on
    migrate(engine, revision="6a1e2b7c9d04")
    with engine.begin() as conn:
        _fill(conn)
        assert not _autoincrement(conn)["job"]
    migrate(engine, revision="a10c0de5e001")
    with engine.begin() as conn:
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1  # as it was
        marks = _autoincrement(conn)
        assert marks["job"] and marks["submission"] and marks["icat_datafile"] and not marks["job_tag"]
        count = lambda t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar()  # noqa: E731
        assert [count(t) for t in ("submission", "job", "job_tag", "icat_dataset", "icat_datafile")] == [
            1,
            3,
            3,
            2,
            2,
        ]
        indexes = {
            r[0] for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE tbl_name = 'job'")
        }
        assert {"ix_job_owner_id", "ix_job_backend_status", "ix_job_submission_id"} <= indexes
        # the foreign keys still work (and cascade): delete the last job and dataset
        conn.execute(sa.text("DELETE FROM job WHERE id = 3"))
        assert count("job_tag") == 2
        conn.execute(sa.text("DELETE FROM icat_dataset WHERE id = 2"))
        assert count("icat_datafile") == 1
        new_job = conn.execute(sa.text(
            "INSERT INTO job (submission_id, owner, job_type, dataset_ids, datafile_ids, options, argv, backend,"
            " status, submitted_at) VALUES (1, 'db/carol', 'Date', '[]', '[]', '{}', '[]', 'local', 'Submitting',"
            " :t) RETURNING id"
        ), {"t": NOW}).scalar()  # fmt: skip
        new_ds = conn.execute(sa.text(
            "INSERT INTO icat_dataset (name, complete, investigation_id, type_id) VALUES ('ds3', 0, 1, 1) RETURNING id"
        )).scalar()  # fmt: skip
    assert (new_job, new_ds) == (4, 3)  # not 3 and 2 again
    engine.dispose()


def test_the_rebuild_refuses_to_run_with_foreign_keys_on(tmp_path):
    """Run with foreign keys on, a rebuild would delete every row that refers to the rebuilt
    table (SQLite's DROP TABLE cascades): it stops instead, and nothing changes."""
    engine = get_engine({"sqlalchemy.url": f"sqlite:///{tmp_path / 'on.sqlite'}"})
    migrate(engine, revision="6a1e2b7c9d04")
    with engine.begin() as conn:
        _fill(conn)
    cfg = alembic.config.Config(str(ROOT / "testing.ini"))
    with engine.begin() as conn, pytest.raises(RuntimeError, match="foreign keys"):
        conn.execute(sa.text("UPDATE job SET owner = owner"))  # in a transaction: the PRAGMA cannot apply
        cfg.attributes["connection"] = conn
        alembic.command.upgrade(cfg, "a10c0de5e001")
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM job_tag")).scalar() == 3
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "6a1e2b7c9d04"
    engine.dispose()


def test_stored_lone_surrogates_are_replaced(tmp_path):
    """A job recorded with a lone surrogate in an option (before every face refused it)
    gets U+FFFD instead, so its page can be written; other text is left as it was."""
    engine = get_engine({"sqlalchemy.url": f"sqlite:///{tmp_path / 'old.sqlite'}"})
    migrate(engine, revision="a10c0de5e002")
    with engine.begin() as conn:
        _fill(conn)
        conn.execute(sa.text(
            "UPDATE job SET options = :o, argv = :a WHERE id = 2"
        ), {"o": '{"Name": "x\\ud800y", "Pair": "\\ud83d\\ude00", "\\udfff": 1}',
            "a": '["--name", "x\\ud800y", "\\ud55c"]'})  # fmt: skip
    migrate(engine)
    with engine.begin() as conn:
        rows = dict(conn.execute(sa.text("SELECT id, options FROM job")).all())
        argv = conn.execute(sa.text("SELECT argv FROM job WHERE id = 2")).scalar()
    options = json.loads(rows.pop(2))
    assert options == {"Name": "x\ufffdy", "Pair": "\U0001f600", "\ufffd": 1}
    assert json.loads(argv) == ["--name", "x\ufffdy", "\ud55c"]  # a valid pair and Hangul kept
    assert set(rows.values()) == {"{}"}  # the other jobs untouched
    engine.dispose()
