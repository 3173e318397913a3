"""Issue 13, point 9: the comment text and comment id parsers (ijpweb.jobs.comments), by
property: any input is either taken as plain, bounded, non-blank text (or an id in range)
or refused naming the field; and what the OpenAPI document's schema for a comment's text
accepts is exactly what the portal takes."""

import jsonschema_rs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ijpweb.inputs import MAX_ID, InputError
from ijpweb.jobs.comments import CommentNotFound, clean_text, comment_id
from ijpweb.models.comments import MAX_COMMENT_LENGTH
from ijpweb.openapi import COMMENT_TEXT

SCHEMA = jsonschema_rs.validator_for(COMMENT_TEXT)
TEXTS = st.one_of(
    st.text(max_size=50),
    st.text(alphabet=st.sampled_from(" \t\r\n\x00\x07\x85\u00a0\u2028\ufeffab<>&"), max_size=30),
    st.integers(MAX_COMMENT_LENGTH - 2, MAX_COMMENT_LENGTH + 2).map(lambda n: "x" * n),
)


@given(TEXTS)
def test_text_is_taken_or_refused_by_name(raw):
    try:
        text = clean_text(raw)
    except InputError as e:
        assert e.field == "text" and e.status == 400
        return
    assert text.strip() and len(text) <= MAX_COMMENT_LENGTH and "\r" not in text
    assert not any(ord(c) < 32 and c not in "\t\n" for c in text)


@given(TEXTS)
def test_the_document_says_what_the_portal_takes(raw):
    try:
        clean_text(raw)
        taken = True
    except InputError:
        taken = False
    if any("\ud800" <= c <= "\udfff" for c in raw):
        return  # (not Unicode: no JSON body can carry it)
    assert SCHEMA.is_valid(raw) == taken, repr(raw)


@pytest.mark.parametrize("raw", [None, 5, b"bytes", ["list"]])
def test_text_must_be_text(raw):
    with pytest.raises(InputError, match="^text must be text$"):
        clean_text(raw)


def test_line_ends_and_edges():
    assert clean_text("a\r\nb\rc") == "a\nb\nc"
    assert clean_text("\n\nkept  \n") == "kept  "
    assert clean_text("<b>x</b> & y") == "<b>x</b> & y"  # stored as written; pages escape it


@given(st.one_of(st.text(max_size=25), st.integers(), st.none(), st.booleans(), st.floats()))
def test_a_comment_id_is_an_id_or_not_found(raw):
    try:
        value = comment_id(raw)
    except CommentNotFound:
        return
    assert isinstance(value, int) and 1 <= value <= MAX_ID


@pytest.mark.parametrize("raw", ["0", "-1", "1.0", "１２", " ", "", str(MAX_ID + 1), "1e3", True])
def test_not_ids(raw):
    with pytest.raises(CommentNotFound):
        comment_id(raw)
