"""``ijp-admin`` as an operator runs it: a real process on its own database."""

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "python-icat"
ADMIN = [sys.executable, "-c", "import sys; from ijpweb.admin import main; sys.exit(main())"]


pytestmark = pytest.mark.once  # each test runs ijp-admin on its own SQLite file


@pytest.fixture
def ini(tmp_path):
    text = (ROOT / "testing.ini").read_text()
    text = text.replace("sqlite:///%(here)s/var/testing.sqlite", f"sqlite:///{tmp_path / 'admin.sqlite'}")
    text = text.replace("script_location = %(here)s/migrations", f"script_location = {ROOT / 'migrations'}")
    path = tmp_path / "admin.ini"
    path.write_text(text)
    subprocess.run([*ADMIN, str(path), "migrate"], check=True, capture_output=True)
    return path


def admin(ini, *args):
    return subprocess.run([*ADMIN, str(ini), *args], capture_output=True, text=True, cwd=ROOT)


def datasets(ini):
    engine = sa.create_engine(f"sqlite:///{ini.parent / 'admin.sqlite'}")
    with engine.connect() as c:
        return c.execute(sa.text("SELECT COUNT(*) FROM icat_dataset")).scalar()


def test_load_catalog_reports_what_it_loaded(ini):
    res = admin(ini, "load-catalog", str(DATA / "icatdump-5.0.xml"))
    assert res.returncode == 0, res.stderr
    assert "loaded 432 object(s)" in res.stdout
    assert "Dataset                      9" in res.stdout
    assert datasets(ini) == 9


def test_a_bad_file_loads_nothing(ini, tmp_path):
    text = (DATA / "icatdump-5.0.yaml").read_text()
    # break a reference near the end: everything before it must be rolled back
    broken = text.replace("Investigation_facility-(name-ESNF)_name-12100409=2DST", "Investigation_nope", 1)
    cut = broken.rfind("Investigation_nope")
    assert cut > len(text) // 2
    bad = tmp_path / "broken.yaml"
    bad.write_text(broken)
    res = admin(ini, "load-catalog", str(bad))
    assert res.returncode == 1
    assert "broken.yaml" in res.stderr and "no object with key 'Investigation_nope" in res.stderr
    assert "nothing was loaded" in res.stderr
    assert datasets(ini) == 0


def test_missing_file_is_one_clear_line(ini):
    res = admin(ini, "load-catalog", "/nonexistent.yaml")
    assert res.returncode == 1 and res.stderr.strip().endswith("No such file or directory")


def test_imported_users_get_a_password_from_stdin_and_can_log_in(ini):
    admin(ini, "load-catalog", str(DATA / "icatdump-5.0.yaml"))
    res = subprocess.run(
        [*ADMIN, str(ini), "set-password", "jdoe"], input="correct horse\n", capture_output=True, text=True
    )
    assert res.returncode == 0 and "password set for db/jdoe" in res.stdout
    assert "correct horse" not in " ".join(res.args)
    short = subprocess.run(
        [*ADMIN, str(ini), "set-password", "jdoe"], input="short\n", capture_output=True, text=True
    )
    assert short.returncode == 1 and "at least 8" in short.stderr

    from sqlalchemy.orm import Session

    from ijpweb.catalog import DatasetQuery
    from ijpweb.catalog.embedded import EmbeddedCatalog

    with Session(sa.create_engine(f"sqlite:///{ini.parent / 'admin.sqlite'}")) as db:
        catalog = EmbeddedCatalog(db)
        sid = catalog.login("db", {"username": "jdoe", "password": "correct horse"}).session_id
        assert catalog.user_name(sid) == "db/jdoe"
        # what ICAT 5 showed jdoe for this dump (python-icat's summary-5.jdoe)
        assert catalog.search_datasets(sid, DatasetQuery(per_page=100)).total == 6


def test_loading_a_dump_twice_is_refused_by_icats_unique_keys(ini):
    assert admin(ini, "load-catalog", str(DATA / "icatdump-5.0.yaml")).returncode == 0
    res = admin(ini, "load-catalog", str(DATA / "icatdump-5.0.xml"))
    assert res.returncode == 1 and "in the catalog already?" in res.stderr and "Traceback" not in res.stderr
    assert datasets(ini) == 9


def test_a_dump_may_reference_objects_already_in_the_catalog(ini, tmp_path):
    assert admin(ini, "load-catalog", str(DATA / "icatdump-5.0.yaml")).returncode == 0
    more = tmp_path / "more.yaml"
    more.write_text(
        "---\ndataset:\n  Dataset_new:\n    name: e999999\n    complete: false\n"
        "    investigation: Investigation_facility-(name-ESNF)_name-10100601=2DST_visitId-1=2E1=2DN\n"
        "    type: DatasetType_facility-(name-ESNF)_name-raw\n"
    )
    res = admin(ini, "load-catalog", str(more))
    assert res.returncode == 0, res.stderr
    assert datasets(ini) == 10
    more.write_text(more.read_text().replace("name-raw", "name-cooked").replace("e999999", "e999998"))
    res = admin(ini, "load-catalog", str(more))
    assert res.returncode == 1 and "DatasetType_facility-(name-ESNF)_name-cooked" in res.stderr


@pytest.mark.parametrize("name, total", [("icatdump-4.4.yaml", 324), ("icatdump-6.2.yaml", 439)])
def test_dumps_of_other_icat_versions_load(ini, name, total):
    res = admin(ini, "load-catalog", str(DATA / name))
    assert res.returncode == 0, res.stderr
    assert f"loaded {total} object(s)" in res.stdout
