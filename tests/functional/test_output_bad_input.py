"""Issue 13's "Bad input" paragraph, the parts no other file tests (part A): a job's output
files named with a newline, with HTML, with quotes and a semicolon are listed as text,
escaped, and downloaded under a Content-Disposition that no name can break (one header
line, a plain ASCII fallback, the name itself only percent-encoded); a zip of a job's
10,000 output files streams in memory far below its size. (The rest of the paragraph:
tests/functional/test_data.py: uploads over the limit, with a path in the name, into
another's dataset, corrupt TIFF and HDF5 previews; test_outputs.py: ``../`` names;
test_comments.py: comment text escaped.)"""

from __future__ import annotations

import io
import re
import tempfile
import tracemalloc
import zipfile
from urllib.parse import unquote

import webtest

from ijpweb.states import JobStatus

from ..conftest import make_testapp
from .test_outputs import run_job

HOSTILE = {
    "two\nlines.txt": b"a newline in my name",
    "cr\rreturn.txt": b"a carriage return in my name",
    "<img src=x onerror=alert(1)>.txt": b"html in my name",
    'q"; filename="evil.sh': b"quotes in my name",
    "semi;colon%20.txt": b"a semicolon and a percent",
    "caf\u00e9 \u65e5\u672c.txt": b"not ASCII",
}
WRITE = "".join(
    f'printf "%s" "${{{i + 1}}}" > "$JOB_OUTPUT_DIR/${{{i + 1 + len(HOSTILE)}}}"\n'
    for i in range(len(HOSTILE))
)


def _disposition(value: str) -> tuple[str, str]:
    """The ASCII fallback and the decoded filename* of a Content-Disposition."""
    m = re.fullmatch(r'attachment; filename="([ -~]*)"; filename\*=UTF-8\'\'([A-Za-z0-9%._~-]*)', value)
    assert m, f"not a safe Content-Disposition: {value!r}"
    return m[1], unquote(m[2])


def test_output_names_with_newlines_and_html_are_listed_escaped_and_downloaded_safely(
    app, tm, dbsession, backends
):
    args = (*(v.decode() for v in HOSTILE.values()), *HOSTILE)
    job = run_job(dbsession, backends, "db/carol", WRITE, args)
    assert job.status == JobStatus.COMPLETED, job.reason
    carol = make_testapp(app, tm, dbsession)
    carol.login("carol")
    page = carol.get(f"/jobs/{job.id}")
    listed = [tr.td.get_text() for tr in page.html.select("table.outputs tbody tr")]
    assert sorted(listed) == sorted(HOSTILE)  # each a name of its own, as text
    assert "<img src=x onerror" not in page.text and "&lt;img src=x onerror=alert(1)&gt;.txt" in page.text
    # each row's Download link leads to its own file
    for tr in page.html.select("table.outputs tbody tr"):
        assert carol.get(tr.select_one("a[download]")["href"]).body == HOSTILE[tr.td.get_text()]
    for name, body in HOSTILE.items():
        res = carol.get(f"/jobs/{job.id}/file", {"name": name})
        assert res.body == body
        assert res.headers["Content-Type"] == "application/octet-stream"
        assert res.headers["X-Content-Type-Options"] == "nosniff"
        fallback, full = _disposition(res.headers["Content-Disposition"])
        assert full == name  # the name itself, only percent-encoded
        assert not set(fallback) & set('"\\;%\r\n/')
    # in the zip too, each under its own name
    with zipfile.ZipFile(io.BytesIO(carol.get(f"/jobs/{job.id}/outputs.zip").body)) as z:
        assert {i.filename: z.read(i) for i in z.infolist()} == HOSTILE


MANY = 10_000
SIZE = 8192  # each file's bytes: 80 MB in all
MANY_FILES = f"""
i=0
while [ $i -lt {MANY} ]; do printf '%0{SIZE}d' $i > "$JOB_OUTPUT_DIR/f$i.dat"; i=$((i+1)); done
"""


def test_a_zip_of_10000_output_files_streams_in_bounded_memory(app, tm, dbsession, backends):
    job = run_job(dbsession, backends, "db/carol", MANY_FILES)
    assert job.status == JobStatus.COMPLETED, job.reason
    carol = make_testapp(app, tm, dbsession)
    carol.login("carol")
    req = webtest.TestRequest.blank(f"/jobs/{job.id}/outputs.zip")
    req.environ.update(carol.extra_environ)
    req.headers["Cookie"] = "; ".join(f"{c.name}={c.value}" for c in carol.cookiejar)
    with tempfile.TemporaryFile() as out:
        tracemalloc.start()
        try:
            res = req.get_response(app)
            assert res.status_code == 200, res.status
            for chunk in res.app_iter:  # read as a client would, chunk by chunk
                out.write(chunk)
            if hasattr(res.app_iter, "close"):
                res.app_iter.close()
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        out.seek(0)
        with zipfile.ZipFile(out) as z:
            infos = z.infolist()
            assert len(infos) == MANY
            assert z.read("f9999.dat") == b"%0*d" % (SIZE, 9999)
            assert sum(i.file_size for i in infos) == MANY * SIZE
    # the zip's 80 MB never were in memory at once (names and the central directory are)
    assert peak < 16 << 20, f"peak {peak / (1 << 20):.1f} MB"
