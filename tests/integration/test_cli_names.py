"""`ijp download` never saves a hidden file or an option-like name under a name another
member chose (carol's finding 8): carol uploads ``.bash_profile`` into LMF-2026-003, which
bob shares; bob downloads it into his home directory and gets ``_bash_profile``, told so
on stderr. Run as a user runs it (the console script, against the portal on waitress)."""

import pytest
import sqlalchemy as sa

from ijpweb.catalog.icatdb import TABLES as T
from ijpweb.cli import _safe_name

from .test_cli import IJP, ijp  # noqa: F401 - the fixture
from .test_cli_data import _files, _login

pytestmark = pytest.mark.skipif(
    IJP is None, reason="the ijp console script is not installed (pip install -e .)"
)


@pytest.mark.parametrize(
    "name, saved",
    [(".bash_profile", "_bash_profile"), (".ssh", "_ssh"), ("..bashrc", "__bashrc"), (".git", "_git"),
     ("-rf", "_rf"), ("a/../.profile", "_profile"), ("report\u202efdp.exe", "reportfdp.exe"),
     ("x\x1b[2Jy", "x[2Jy"), ("..", "datafile-1"), ("plain.txt", "plain.txt")],
)  # fmt: skip
def test_a_downloaded_name_is_never_hidden_nor_an_option(name, saved):
    assert _safe_name(name, "datafile-1") == saved


@pytest.mark.once
def test_bob_downloads_carols_dotfile_as_a_plain_name(ijp, live_server, tmp_path):  # noqa: F811
    _url, engine = live_server
    _login(ijp, "carol")
    profile = tmp_path / ".bash_profile"
    profile.write_text("echo carol was here\n")
    ds, inv = T["Dataset"], T["Investigation"]
    with engine.connect() as conn:
        ds_id = conn.execute(
            sa.select(sa.func.min(ds.c.id))
            .join(inv, ds.c.investigation_id == inv.c.id)
            .where(inv.c.name == "LMF-2026-003")
        ).scalar_one()
    ijp("upload", str(ds_id), str(profile))
    ((df_id, _),) = _files(engine, "LMF-2026-003", ".bash_profile")
    _login(ijp, "bob")
    home = tmp_path / "home"
    home.mkdir()
    done = ijp("download", str(df_id), "-o", str(home))
    assert [p.name for p in home.iterdir()] == ["_bash_profile"]
    assert done.stdout.strip() == str(home / "_bash_profile")
    assert "'.bash_profile' is saved as '_bash_profile'" in done.stderr
