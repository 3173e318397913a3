"""Issue 13, point 1: a facility's name, logo and accent colour from the ini, on every
page (header, titles), the accent served as /brand.css and the logo at /brand/logo;
a bad value stops the portal's start naming its key."""

import pytest

from ijpweb import main
from ijpweb.proxy import SettingError

from ..conftest import ROOT, TestApp, portal_settings

INI = str(ROOT / "testing.ini")
SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script></svg>'


def _settings(app_settings, tmp, **extra):
    s = portal_settings(INI, tmp, app_settings["sqlalchemy.url"], **extra)
    s["ijp.batch.local.dir"] = app_settings["ijp.batch.local.dir"]
    s["ijp.filestore"] = app_settings["ijp.filestore"]
    s["ijp.scheduler.enabled"] = "false"
    return s


@pytest.fixture(scope="module")
def branded(app_settings, dbengine, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("branded")
    logo = tmp / "logo.svg"
    logo.write_bytes(SVG)
    settings = _settings(app_settings, tmp, **{"ijp.site.name": "Lund <Microscopy> Facility",
                                              "ijp.site.logo": str(logo), "ijp.site.accent": "#ffd700"})  # fmt: skip
    return TestApp(main({}, dbengine=dbengine, **settings), extra_environ={"HTTP_HOST": "example.com"})


def test_the_facility_on_every_page(branded):
    login = branded.get("/login")
    assert "Lund &lt;Microscopy&gt; Facility" in login.text and "<Microscopy>" not in login.text
    assert "<title>Log in · Lund &lt;Microscopy&gt; Facility</title>" in login.text
    assert '<img src="http://example.com/brand/logo" alt="">' in login.text
    css_link = 'href="http://example.com/brand.css?v=%23ffd700"'
    assert css_link in login.text
    css = branded.get("/brand.css?v=%23ffd700")
    assert css.content_type == "text/css" and "--accent-line:#ffd700;" in css.text
    assert "--accent:#ffd700" not in css.text  # too light for text: darkened
    assert "max-age=86400" in css.headers["Cache-Control"]
    logo = branded.get("/brand/logo")
    assert logo.body == SVG and logo.content_type == "image/svg+xml"
    assert "sandbox" in logo.headers["Content-Security-Policy"] and "default-src 'none'" in logo.headers[
        "Content-Security-Policy"]  # fmt: skip
    assert logo.headers["X-Content-Type-Options"] == "nosniff"
    # the logo is the file read at start: no path from the request reaches the disk
    branded.get("/brand/logo/../../etc/passwd", status=404)
    assert branded.get("/brand/logo", {"path": "/etc/passwd"}).body == SVG


def test_without_branding_the_default(testapp):
    page = testapp.get("/login")
    assert "<title>Log in · ICAT Job Portal</title>" in page.text and "/brand.css" not in page.text
    assert "/brand/logo" not in page.text
    testapp.get("/brand/logo", status=404)
    assert "--accent:#0b5cad" in testapp.get("/brand.css").text


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("ijp.site.accent", "hotpink", "ijp.site.accent must be a CSS hex colour"),
        ("ijp.site.accent", "#fff;}body{display:none", "ijp.site.accent must be a CSS hex colour"),
        ("ijp.site.logo", "/etc/passwd", "ijp.site.logo must be a .png"),
        ("ijp.site.logo", "/nonexistent/logo.png", "ijp.site.logo: cannot read"),
    ],
)
def test_a_bad_value_stops_the_start(app_settings, dbengine, tmp_path, key, value, message):
    with pytest.raises(SettingError) as e:
        main({}, dbengine=dbengine, **_settings(app_settings, tmp_path, **{key: value}))
    assert str(e.value).startswith(message)
