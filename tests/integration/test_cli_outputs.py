"""Issue 13, point 4: a job's output files and variables from the ``ijp`` command, run as
a user runs it against the portal served by waitress. The demo job type "Scan summary"
writes a CSV, a PNG, a JSON and a text file, and four output variables."""

import io
import zipfile

# ijp: the fixture; pytestmark: its portal is its own, and the ijp script must be installed
from .test_cli import _json, ijp, pytestmark  # noqa: F401


def test_outputs_listed_and_downloaded(ijp, tmp_path):  # noqa: F811 - the fixture
    ijp("login", "--url", ijp.url, "db", "username", "bob", "password", "-", stdin="bob-demo\n")
    sub = ijp("submit", "Scan summary", "--option", "Points=50")
    job = sub.stdout.split(":")[1].split()[0]
    assert "Completed" in ijp("status", job, "--watch", "--interval", "0.2").stdout

    listing = ijp("outputs", job).stdout.splitlines()
    assert listing[0].split() == ["NAME", "SIZE", "(BYTES)", "MODIFIED", "(UTC)"]
    names = [line.split()[0] for line in listing[1:5]]
    assert names == ["report.txt", "scan.csv", "summary.json", "images/scan.png"]
    assert any(line.split()[:2] == ["OUT_POINTS", "50"] for line in listing)
    data = _json(ijp("outputs", job, "--json"))
    assert data["output_vars"]["OUT_POINTS"] == "50" and data["output_files_total"] == 4

    # one file to stdout, one to a file; all as a zip
    csv = ijp("output", job, "scan.csv").stdout
    assert csv.startswith("angle,intensity,background\n") and csv.count("\n") == 51
    ijp("output", job, "images/scan.png", "-o", str(tmp_path / "scan.png"))
    assert (tmp_path / "scan.png").read_bytes().startswith(b"\x89PNG")
    ijp("output", job, "--all", "-o", str(tmp_path / "all.zip"))
    with zipfile.ZipFile(tmp_path / "all.zip") as z:
        assert sorted(z.namelist()) == sorted(names) and z.read("scan.csv").decode() == csv
    with zipfile.ZipFile(io.BytesIO((tmp_path / "all.zip").read_bytes())) as z:
        assert z.testzip() is None

    # refusals: one line, an exit status by kind, no file left behind
    bad = ijp("output", job, "../../etc/passwd", "-o", str(tmp_path / "x"), expect=1)
    assert (
        bad.stderr.startswith("ijp: name cannot have '.', '..' or empty path components")
        and not (tmp_path / "x").exists()
    )
    assert "no such output file" in ijp("output", job, "nothing.txt", expect=4).stderr
    assert "not both" in ijp("output", job, "scan.csv", "--all", expect=2).stderr
    assert "--follow" in ijp("output", job, "scan.csv", "-f", expect=2).stderr
    ijp("logout")
    ijp("login", "db", "username", "carol", "password", "-", stdin="carol-demo\n")
    assert ijp("outputs", job, expect=4).stderr.startswith("ijp: ")
    ijp("output", job, "scan.csv", expect=4)
    ijp("output", job, "--all", "-o", str(tmp_path / "c.zip"), expect=4)
    assert not (tmp_path / "c.zip").exists()
