"""Issue 10, point 8 (and issue 5, point 4): schemathesis, through its own command line
(``st run``), against the portal served live by waitress on a free port, with a real
bearer token: every operation of /api/v1/openapi.json except the one that revokes the
token, in all its phases (examples, boundary coverage, random fuzzing, stateful
sequences through the document's links). It checks that no response is a 5xx and every
response matches the document (status, content type, headers, body), that requests the
document forbids are refused, that undeclared methods get a 405 with Allow, and that
what the document allows is accepted, except where only the job type or the tag rules
can say (a submission must fit its job type; a tag's characters are Unicode letters,
which the document's regular expressions cannot name): there a 400/422 refusal is the
expected answer.

The portal has its own committed SQLite database (the generated submissions are real
rows; the scheduler is off, so none runs). ``IJP_FUZZ_SEED`` replays a run."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa

from ijpweb import main
from ijpweb.openapi import OPERATION_IDS

from ..conftest import ROOT, load_demo, migrate, portal_settings, serving

pytestmark = pytest.mark.once  # its own SQLite database
ST = Path(sys.executable).parent / "st"
MAX_EXAMPLES = 15  # per operation in the fuzzing phase: the whole run stays about a minute on a busy machine

CONFIG = """\
color = false

[checks]
# the token is real on purpose: a generated one would be refused, the real one accepted
ignored_auth.enabled = false

[[operations]]
# whether a submission fits its job type (inputs, option values) only the job type says
include-operation-id = "submit"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "422"]

[[operations]]
# a cursor is valid only as a page of this very list gave it out (signed), which JSON
# Schema cannot say: any other string is refused with 400
include-operation-id = "listJobs"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401"]

[[operations]]
# the same for the dataset search's cursor
include-operation-id = "searchDatasets"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401"]

[[operations]]
# and a dataset's datafiles' (of a dataset the user may not read: 404)
include-operation-id = "listDatasetDatafiles"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "404"]

[[operations]]
# a zip names datasets or datafiles (one of the two parameters, which the document cannot
# require), each one the user may read (404 otherwise), at most ijp.download.zip_max_files (413)
include-operation-id = "getZip"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "404", "413"]

[[operations]]
# a new dataset's investigation must be one the user may read (404), its type one of the
# facility's and its name a plain name (400), new in the investigation (409); the rules decide (403)
include-operation-id = "createDataset"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]

[[operations]]
# an upload's name goes with a raw body only, must be a plain file name and new in the
# dataset (409); a multipart form must hold a file part; the dataset must be readable (404)
include-operation-id = "uploadDatafiles"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "411", "413"]

[[operations]]
# tags are Unicode letters and digits and . _ - : @ + /, which JSON Schema cannot say
include-operation-id = "setJobTags"
checks.positive_data_acceptance.expected-statuses = ["2xx", "401", "403", "404", "409", "422"]

[[operations]]
# the same for several jobs' tags; and add or remove must name one (400 if both are empty)
include-operation-id = "tagJobs"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "422"]

[[operations]]
# since and until are read by Python's ISO 8601 parser: an RFC 3339 time it cannot read
# (a leap second, a year it cannot move to UTC) is refused with 400, naming it
include-operation-id = "exportJobs"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401"]
"""


@pytest.fixture(scope="module")
def live_portal(tmp_path_factory):
    """The portal on a free port with its own database; yields (url, bearer token)."""
    tmp = tmp_path_factory.mktemp("fuzz")
    settings = portal_settings(str(ROOT / "testing.ini"), tmp, f"sqlite:///{tmp / 'fuzz.sqlite'}")
    engine = sa.create_engine(settings["sqlalchemy.url"])
    migrate(engine)
    load_demo(engine, settings["ijp.filestore"])
    with serving(main({}, **settings)) as url:
        token = requests.post(
            url + "/api/v1/session", json={"username": "bob", "password": "bob-demo"}, timeout=30
        ).json()["token"]
        # so that job lists are not empty and the job operations meet a real job of bob's
        auth = {"Authorization": f"Bearer {token}"}
        requests.post(url + "/api/v1/submissions", json={"job_type": "Date"}, headers=auth, timeout=30)
        yield url, token
    engine.dispose()


@pytest.mark.skipif(
    not ST.exists(), reason="schemathesis' st command is not installed (pip install -e '.[testing]')"
)
def test_every_operation_keeps_to_its_document(live_portal, tmp_path):
    url, token = live_portal
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    seed = ["--seed", os.environ["IJP_FUZZ_SEED"]] if os.environ.get("IJP_FUZZ_SEED") else []
    proc = subprocess.run(
        [
            str(ST), "--config-file", str(config), "run", f"{url}/api/v1/openapi.json",
            "--header", f"Authorization: Bearer {token}",
            "--exclude-operation-id", "revokeToken",  # it would end the run's own token
            "--checks", "all", "--max-examples", str(MAX_EXAMPLES),
            # one worker: Python 3.11's ast is not thread-safe (CPython gh-106905), and
            # Hypothesis parses lambdas' sources while generating in each worker thread
            "--workers", "1",
            "--request-timeout", "30", "--report-dir", str(tmp_path / "report"), *seed,
        ],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )  # fmt: skip
    out = proc.stdout + proc.stderr
    found = [i for i in (out.find(" ERRORS "), out.find(" FAILURES ")) if i >= 0]
    start = min(found) if found else max(0, len(out) - 12000)
    assert proc.returncode == 0, out[start : start + 20000]
    # every operation but revokeToken (the 13 of /api/v1/admin answer bob's token 403)
    # every operation but revokeToken (the count from ijpweb/openapi.py: every part adds some)
    assert f"Selected: {len(OPERATION_IDS) - 1}/{len(OPERATION_IDS)}" in out, out[-3000:]
    # the token was never revoked: the run really was authenticated throughout
    assert requests.get(url + "/api/v1/session", headers={"Authorization": f"Bearer {token}"}, timeout=30).ok


def test_the_document_names_every_operation(live_portal):
    """Each operation has an operationId (clients and the run above name them), and a
    submission links to what can be done with its job."""
    url, _ = live_portal
    doc = requests.get(url + "/api/v1/openapi.json", timeout=30).json()
    ids = [op["operationId"] for path in doc["paths"].values() for op in path.values()]
    # (one each, and every id ijpweb/openapi.py names is an operation's: none left over)
    assert len(ids) == len(set(ids)) == len(OPERATION_IDS) and "revokeToken" in ids
    links = doc["paths"]["/api/v1/submissions"]["post"]["responses"]["201"]["links"]
    assert {link["operationId"] for link in links.values()} <= set(ids)
