"""Issue 13, point 1: the facility's name, logo and accent colour from the ini. A value
that cannot be used stops start-up with a message naming its key; an accent too light for
text on white is darkened (same hue) until it reaches WCAG AA's 4.5:1 for every text use."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ijpweb import branding
from ijpweb.branding import AA_TEXT, BrandingError, contrast, parse, parse_colour, text_colour
from ijpweb.proxy import SettingError
from ijpweb.settings import parse as parse_settings

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 32


def test_defaults():
    b = parse({})
    assert b.name == "ICAT Job Portal" and b.accent == "#0b5cad" and not b.accent_given and b.logo == b""
    assert contrast(parse_colour(b.text_accent)) >= AA_TEXT


@pytest.mark.parametrize(
    "value", ["red", "#12345", "#gggggg", "rgb(1,2,3)", "#0b5cad; }", "0b5cad", "#0b5cad00"]
)
def test_a_bad_accent_stops_startup_naming_the_key(value):
    with pytest.raises(BrandingError, match=r"^ijp\.site\.accent must be a CSS hex colour"):
        parse({"ijp.site.accent": value})
    # through the settings, as the portal starts: a SettingError like every other
    with pytest.raises(SettingError, match=r"ijp\.site\.accent"):
        parse_settings({"ijp.site.accent": value})


def test_a_dark_accent_is_kept_and_a_light_one_darkened_for_text():
    dark = parse({"ijp.site.accent": "#003366"})
    assert dark.accent == dark.text_accent == "#003366"
    light = parse({"ijp.site.accent": "#FFD700"})  # gold: 1.4:1 on white
    assert light.accent == "#ffd700"  # as given, for decoration
    assert light.text_accent != light.accent and contrast(parse_colour(light.text_accent)) >= AA_TEXT
    r, g, b = parse_colour(light.text_accent)
    assert r > g > b  # the same hue, darker
    short = parse({"ijp.site.accent": "#fc0"})
    assert short.accent == "#ffcc00"
    for b in (dark, light, short, parse({})):  # also on the pale tint behind secondary buttons
        assert contrast(parse_colour(b.text_accent), parse_colour(b.accent_soft)) >= AA_TEXT
    css = light.stylesheet
    assert f"--accent:{light.text_accent};" in css and "--accent-line:#ffd700;" in css


@given(st.tuples(*[st.integers(0, 255)] * 3))
def test_text_colour_always_reaches_aa(rgb):
    out = text_colour(rgb)
    assert contrast(out) >= AA_TEXT
    if contrast(rgb) >= AA_TEXT:
        assert out == rgb


@given(st.one_of(st.text(max_size=20), st.from_regex(r"#[0-9a-fA-F]{6}", fullmatch=True)))
def test_any_accent_text_is_a_colour_or_refused_by_name(text):
    try:
        b = parse({"ijp.site.accent": text})
    except BrandingError as e:
        assert str(e).startswith("ijp.site.accent ")
    else:
        assert b.accent.startswith("#") and len(b.accent) == 7 and ";" not in b.stylesheet.split("{")[0]
        assert contrast(parse_colour(b.text_accent), parse_colour(b.accent_soft)) >= AA_TEXT


def test_the_name(tmp_path):
    assert parse({"ijp.site.name": "  Diamond   Light Source "}).name == "Diamond Light Source"
    with pytest.raises(BrandingError, match="ijp.site.name"):
        parse({"ijp.site.name": "x" * 81})
    with pytest.raises(BrandingError, match="ijp.site.name"):
        parse({"ijp.site.name": "a\x1bb"})


def test_the_logo(tmp_path):
    good = tmp_path / "logo.png"
    good.write_bytes(PNG)
    b = parse({"ijp.site.logo": str(good)})
    assert b.logo == PNG and b.logo_type == "image/png"
    svg = tmp_path / "logo.svg"
    svg.write_text('<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"/>')
    assert parse({"ijp.site.logo": str(svg)}).logo_type == "image/svg+xml"
    fake = tmp_path / "fake.png"
    fake.write_bytes(b"<html>not a png")
    big = tmp_path / "big.png"
    big.write_bytes(PNG + b"\0" * branding.MAX_LOGO_BYTES)
    other = tmp_path / "logo.exe"
    other.write_bytes(PNG)
    for path, why in (
        (fake, "is not a PNG image"),
        (big, "is larger than 512 KB"),
        (other, "must be a .png, .jpg, .gif, .webp or .svg file"),
        (tmp_path / "missing.png", "cannot read"),
        (tmp_path, "must be a"),
    ):
        with pytest.raises(BrandingError, match=r"^ijp\.site\.logo") as e:
            parse({"ijp.site.logo": str(path)})
        assert why in str(e.value)
