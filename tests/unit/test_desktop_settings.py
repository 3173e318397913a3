"""ijp.desktop.* (issue 14): the time and geometry parsers, and the settings' refusals."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ijpweb import settings
from ijpweb.proxy import SettingError


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 5400),
        ("5:30", 330),
        ("8:00:00", 28800),
        ("1-2", 93600),
        ("1-2:30", 95400),
        ("2-00:00:05", 172805),
    ],
)
def test_sbatch_times(text, seconds):
    assert settings.sbatch_seconds(text) == seconds


@given(st.text(max_size=30))
def test_sbatch_seconds_reads_a_time_or_says_no(text):
    try:
        value = settings.sbatch_seconds(text)
    except ValueError as e:
        assert "is not a time" in str(e)
    else:
        assert value >= 0


@given(st.integers(0, 99999), st.integers(0, 99999))
def test_geometry_is_clamped(width, height):
    w, h = settings.parse_geometry(f"{width}x{height}")
    assert 640 <= w <= 3840 and 480 <= h <= 2160
    assert settings.clamp_geometry(f"{width}x{height}") == f"{w}x{h}"


@given(st.text(max_size=30))
def test_geometry_text_is_read_or_refused(text):
    try:
        w, h = settings.parse_geometry(text)
    except ValueError as e:
        assert "geometry must be WIDTHxHEIGHT" in str(e)
        assert settings.clamp_geometry(text) == "1280x800"
    else:
        assert 640 <= w <= 3840 and 480 <= h <= 2160


def test_defaults_and_spec():
    d = settings.parse({}).desktop
    assert (d.time_limit, d.ready_seconds, d.idle_minutes, d.max_per_user) == (28800, 60, 30, 2)
    assert (d.proxy, d.listen_host, d.listen_port, d.public_port) == ("embedded", "127.0.0.1", 6544, None)
    assert d.max_interactive == {"local": 4} and d.binds == {"local": "127.0.0.1"}
    assert d.spec({}) == {"time_limit": 28800, "geometry": "1280x800", "ready_timeout": 60}
    assert d.spec({"time": "30", "geometry": "2000x1000"})["time_limit"] == 1800


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("ijp.desktop.time_limit", "soon"),
        ("ijp.desktop.time_limit", "0"),
        ("ijp.desktop.max_per_user", "-1"),
        ("ijp.desktop.proxy", "apache"),
        ("ijp.desktop.listen", "6544"),
        ("ijp.desktop.public_port", "http"),
        ("ijp.batch.local.max_interactive", "many"),
        ("ijp.batch.local.desktop_bind", "a b"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(key, value):
    with pytest.raises(SettingError, match=key.replace(".", r"\.")):
        settings.parse({key: value})
