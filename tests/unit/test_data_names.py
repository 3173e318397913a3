"""The names data in and out deals with (part X), for any text: an upload's accepted name
is one plain component; a zip entry never leads out of the folder it is unpacked in; a
name the portal sends in Content-Disposition comes back to `ijp download` as one plain
component it may create."""

import posixpath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ijpweb.catalog import DataError
from ijpweb.catalog.ids import check_file_name, has_control, zip_entry
from ijpweb.cli import _disposition_name, _safe_name
from ijpweb.views.ids import _disposition

names = st.text(min_size=0, max_size=300)


@given(names)
def test_an_accepted_upload_name_is_one_plain_component(name):
    try:
        got = check_file_name(name)
    except DataError as e:
        assert e.field == "name" and e.status == 400 and e.message.startswith("name ")
        return
    assert got == name and 0 < len(name) <= 255
    assert "/" not in name and "\\" not in name and name not in (".", "..") and not has_control(name)


@pytest.mark.parametrize("name", ["../x", "a/b", "a\\b", "nul\x00x", "x" * 256, ".", "..", "", "line\nbreak"])
def test_the_attacks_names_are_refused(name):
    with pytest.raises(DataError):
        check_file_name(name)


@given(names, names, names)
def test_a_zip_entry_stays_inside_its_folder(investigation, dataset, name):
    entry = zip_entry(investigation, dataset, name)
    parts = entry.split("/")
    assert len(parts) == 3 and all(p and p not in (".", "..") for p in parts)
    assert not entry.startswith("/") and "\\" not in entry and not has_control(entry)
    assert posixpath.normpath(entry) == entry


@given(names)
def test_a_downloaded_name_is_one_component_the_cli_may_create(name):
    header = _disposition(name)
    header.encode("latin-1")  # a header value a server can send
    got = _safe_name(_disposition_name(header), "fallback")
    assert got and "/" not in got and got not in (".", "..") and all(c.isprintable() for c in got)
