"""Issue 13, point 1: a strict Content-Security-Policy on the portal's pages (scripts and
styles from its own origin only, nothing inline, no framing), and templates that need no
more: no inline <script>, no event-handler or style= attribute, no hx-on, no js: values.
(tests/browser/test_design.py checks in Chromium that no page breaks it.)"""

import re
from pathlib import Path

import pytest

from ijpweb.proxy import CONTENT_SECURITY_POLICY

from .test_console import make_job

TEMPLATES = Path(__file__).resolve().parents[2] / "ijpweb" / "templates"
STATIC = Path(__file__).resolve().parents[2] / "ijpweb" / "static"


def _directives(header: str) -> dict[str, list[str]]:
    out = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


def test_the_policy_is_strict():
    d = _directives(CONTENT_SECURITY_POLICY)
    assert d["script-src"] == ["'self'"] and d["style-src"] == ["'self'"] and d["default-src"] == ["'self'"]
    assert (
        d["object-src"] == ["'none'"] and d["frame-ancestors"] == ["'none'"] and d["base-uri"] == ["'self'"]
    )
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY and "'unsafe-eval'" not in CONTENT_SECURITY_POLICY


@pytest.mark.parametrize(
    "path", ["/login", "/", "/datasets", "/jobs", "/submit", "/console", "/no/such/page"]
)
def test_every_page_carries_it(alice, path):
    res = alice.get(path, status="*")
    assert res.content_type == "text/html"
    assert res.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


def test_a_job_page_and_its_comments_carry_it(alice, dbsession):
    job = make_job(dbsession, "db/alice")
    for path in (f"/jobs/{job.id}", f"/jobs/{job.id}/comments"):
        assert alice.get(path).headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    frag = alice.htmx("GET", "/")
    assert frag.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY


def test_htmx_adds_no_inline_style(testapp):
    page = testapp.get("/login").text
    config = re.search(r'<meta name="htmx-config" content=\'([^\']*)\'', page).group(1)
    assert '"includeIndicatorStyles":false' in config
    css = (STATIC / "ijp.css").read_text()
    assert ".htmx-indicator" in css and ".htmx-request .htmx-indicator" in css


INLINE = [
    (re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I), "an inline <script>"),
    (re.compile(r"\sstyle\s*=", re.I), "a style= attribute"),
    (re.compile(r"<style\b", re.I), "a <style> element"),
    (re.compile(r"\son[a-z]+\s*=", re.I), "an event-handler attribute"),
    (re.compile(r"\shx-on\b|\shx-on:", re.I), "an hx-on attribute (htmx evaluates it)"),
    (re.compile(r"javascript:|=\s*['\"]js:", re.I), "a javascript:/js: value"),
]


def test_no_template_needs_more_than_the_policy():
    found = []
    for path in sorted(TEMPLATES.rglob("*.jinja2")):
        text = re.sub(r"\{#.*?#\}", "", path.read_text(), flags=re.S)  # (comments say what is not there)
        for pattern, what in INLINE:
            for m in pattern.finditer(text):
                line = text.count("\n", 0, m.start()) + 1
                found.append(f"{path.relative_to(TEMPLATES)}:{line}: {what}")
    assert not found, "\n".join(found)


def test_the_check_can_fail(tmp_path):
    bad = '<button onclick="x()">a</button><div style="color:red"></div><script>alert(1)</script>'
    hits = [what for pattern, what in INLINE if pattern.search(bad)]
    assert hits == ["an inline <script>", "a style= attribute", "an event-handler attribute"]
