"""Issue 11, point 1: the ``ijp`` command against a portal mounted at a path
(``ijp.prefix = /ijp``): the URL it is given is the base, and every call goes to
``<url>/api/v1/...``. (Through Apache: tests/integration/test_apache.py.)"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ijpweb import main
from ijpweb.models import get_engine

from ..conftest import ROOT, free_port, load_demo, migrate, portal_settings, serving

IJP = shutil.which("ijp", path=str(Path(sys.executable).parent))

pytestmark = [
    pytest.mark.once,  # the portal under test has its own SQLite database
    pytest.mark.skipif(IJP is None, reason="the ijp console script is not installed (pip install -e .)"),
]


@pytest.fixture(scope="module")
def portal(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cliprefix")
    port = free_port()
    settings = portal_settings(
        str(ROOT / "testing.ini"), tmp, f"sqlite:///{tmp / 'portal.sqlite'}",
        **{"ijp.scheduler.enabled": "true", "ijp.harvest.seconds": "0.3", "ijp.prefix": "/facility/ijp"},
    )  # fmt: skip
    engine = get_engine(settings)
    migrate(engine)
    load_demo(engine, settings["ijp.filestore"])
    app = main({}, dbengine=engine, **settings)
    with serving(app, port=port) as url:
        yield url
        app.registry["ijp.scheduler"].shutdown(wait=False)
    engine.dispose()


def test_the_command_takes_a_base_url_with_a_path(portal, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("IJP_")} | {
        "IJP_CONFIG_DIR": str(tmp_path)
    }

    def ijp(*args, stdin="", expect=0):
        proc = subprocess.run([IJP, *args], input=stdin, capture_output=True, text=True, timeout=120, env=env)
        assert proc.returncode == expect, (args, proc.stdout, proc.stderr)
        return proc

    base = portal + "/facility/ijp"
    # without the portal's path there is no API there, and the message says what to give
    wrong = ijp(
        "login", "--url", portal, "db", "username", "bob", "password", "-", stdin="bob-demo\n", expect=4
    )
    assert wrong.stderr == (
        f"ijp: there is no ijpweb API at {portal}/api/v1 (the portal answered 404 Not Found): "
        "give the portal's URL with its path, e.g. https://host/ijp\n"
    )
    out = ijp("login", "--url", base + "/", "db", "username", "bob", "password", "-", stdin="bob-demo\n")
    assert out.stdout.startswith(f"Logged in to {base} as db/bob until ")
    assert "Date" in ijp("jobtype").stdout
    sub = ijp("submit", "Date")
    job_id = sub.stdout.split(":")[1].split()[0]
    assert "Completed" in ijp("status", job_id, "--watch", "--interval", "0.3").stdout
    assert ijp("output", job_id).stdout.strip()
    assert json.loads(ijp("session", "--json").stdout)["url"] == base
    ijp("delete", job_id)
    ijp("logout")
