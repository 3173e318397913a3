"""ijpweb.inputs, the bounded parsing every face uses (issue 10, point 7): property tests
that any text gives either a value in range or an InputError naming the field, never
another exception (an OverflowError, a RecursionError, a UnicodeError)."""

import json
from urllib.parse import quote_from_bytes

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ijpweb import inputs
from ijpweb.inputs import MAX_ID, MAX_JOB_ID, InputError

# strings with lone surrogates and NULs among other characters (st.text never makes a
# surrogate): JSON can write both, and a form or a query can send their bytes
STRINGS = st.lists(st.characters() | st.sampled_from(["\ud800", "\udfff", "\x00"]), max_size=8).map("".join)
# JSON values, nested, with such strings as values and keys
SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | STRINGS
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(STRINGS, inner, max_size=4),
    max_leaves=30,
)


def depth(value) -> int:
    if isinstance(value, list):
        return 1 + max((depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((depth(v) for v in value.values()), default=0)
    return 0


def is_text(s: str) -> bool:
    return "\x00" not in s and not any(0xD800 <= ord(c) <= 0xDFFF for c in s)


def all_text(value) -> bool:
    if isinstance(value, str):
        return is_text(value)
    if isinstance(value, list):
        return all(all_text(v) for v in value)
    if isinstance(value, dict):
        return all(is_text(k) and all_text(v) for k, v in value.items())
    return True


@given(st.text(max_size=40))
def test_any_text_is_a_number_in_range_or_an_error_naming_the_field(raw):
    try:
        value = inputs.ident(raw, "datasetId")
    except InputError as e:
        assert e.field == "datasetId" and e.message.startswith("datasetId must be a whole number")
        assert e.status == 400
    else:
        assert 1 <= value <= MAX_ID and raw.strip().lstrip("+").lstrip("0") == str(value)


@given(st.integers())
def test_whole_numbers_round_trip_within_their_range(n):
    for parse, low, high in (
        (inputs.ident, 1, MAX_ID),
        (inputs.job_id, 1, MAX_JOB_ID),
        (inputs.offset, 0, MAX_ID),
    ):
        for raw in (n, str(n), float(n) if abs(n) < 2**52 else n):
            if low <= n <= high:
                assert parse(raw, "x") == n
            else:
                with pytest.raises(InputError):
                    parse(raw, "x")


def test_what_is_not_a_whole_number():
    for raw in (True, False, None, 1.5, "1.0", "1e3", "0x10", "١٢", "", " ", "1 2", "--1", [1], "9" * 101):
        with pytest.raises(InputError, match="x must be a whole number from 1 to"):
            inputs.ident(raw, "x")
    assert inputs.ident(" +07 ", "x") == 7 and inputs.ident(7.0, "x") == 7


@given(st.lists(st.integers(min_value=-5, max_value=2**64), max_size=8))
def test_id_lists(ids):
    raw = ",".join(map(str, ids))
    if all(1 <= i <= MAX_ID for i in ids):
        assert inputs.id_list(raw, "datasets") == ids
        assert inputs.json_ids(ids, "datasets") == ids
    else:
        with pytest.raises(InputError):
            inputs.id_list(raw, "datasets")
        with pytest.raises(InputError):
            inputs.json_ids(ids, "datasets")
    with pytest.raises(InputError):
        inputs.json_ids([str(i) for i in ids] or "1", "datasets")  # text is not a JSON id


def test_id_lists_are_bounded():
    with pytest.raises(InputError, match="at most 3 ids"):
        inputs.id_list("1,2,3,4", "x", max_items=3)
    with pytest.raises(InputError, match="at most 3 ids"):
        inputs.json_ids([1, 2, 3, 4], "x", max_items=3)


@given(JSON_VALUES)
def test_json_is_read_when_shallow_and_text_and_refused_naming_where_otherwise(value):
    document = json.dumps(value)  # lone surrogates are written as \\udxxx escapes
    # what the document means: two escapes that form a pair (a high surrogate, then a low
    # one, even if drawn apart) are one character in JSON, not two lone surrogates
    meant = json.loads(document)
    assert inputs.json_depth(document) == depth(value)
    try:
        got = inputs.loads(document, "body", max_depth=3)
    except InputError as e:
        assert depth(value) > 3 or not all_text(meant), e.message
        assert e.message.startswith(e.field)
    else:
        assert depth(value) <= 3 and all_text(meant) and got == meant


@given(STRINGS | st.text(max_size=200) | st.binary(max_size=200))
def test_any_document_is_a_value_or_an_input_error(document):
    try:
        inputs.loads(document, "body")
    except InputError as e:
        assert e.status == 400 and "body" in e.field and e.message.startswith(e.field)


def test_json_limits():
    assert inputs.loads("[" * 32 + "]" * 32, "b") is not None
    with pytest.raises(InputError, match="b nests arrays and objects more than 32 deep"):
        inputs.loads("[" * 33 + "]" * 33, "b")
    with pytest.raises(InputError, match="more than 32 deep"):
        inputs.loads("[" * 100_000, "b")  # never parsed: no RecursionError
    assert inputs.loads('["[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["]', "b") == [
        "[" * 38
    ]  # brackets in a string
    with pytest.raises(InputError, match="larger than 10 bytes") as e:
        inputs.loads("[" + "1," * 10 + "1]", "b", max_bytes=10)
    assert e.value.status == 413
    for bad in ("NaN", "[Infinity]", "-Infinity", "{", "\ufeff{}", "1" * 5000, b"\xff"):
        with pytest.raises(InputError, match="^b is not"):
            inputs.loads(bad, "b")
    with pytest.raises(InputError, match=r"^tags\[1\] contains a lone surrogate"):
        inputs.loads('["a", "\\ud800"]', "b", root="tags")
    with pytest.raises(InputError, match="^a key of options contains a NUL"):
        inputs.loads('{"options": {"\\u0000": 1}}', "b", root="")


@given(STRINGS)
def test_text(value):
    try:
        assert inputs.text(value, "name", max_length=5) == value
    except InputError as e:
        assert not is_text(value) or len(value) > 5, e.message
    else:
        assert is_text(value)


def test_text_says_what_is_wrong():
    with pytest.raises(InputError, match="^tag contains a NUL character at position 1$"):
        inputs.text("a\x00", "tag")
    with pytest.raises(InputError, match="^tag contains a lone surrogate"):
        inputs.text("\udc80", "tag")
    with pytest.raises(InputError, match="^tag is longer than 2 characters$"):
        inputs.text("abc", "tag", 2)
    with pytest.raises(InputError, match="^tag must be text$"):
        inputs.text(5, "tag")


@given(st.lists(st.tuples(STRINGS, st.binary(max_size=5)), max_size=5))
def test_the_field_that_is_not_utf8_is_found(pairs):
    query = "&".join(
        quote_from_bytes(k.encode("utf-8", "surrogatepass")) + "=" + quote_from_bytes(v) for k, v in pairs
    )
    expected = None
    for k, v in pairs:
        try:
            k.encode("utf-8")
        except UnicodeEncodeError:
            expected = "a parameter name"
            break
        try:
            v.decode("utf-8")
        except UnicodeDecodeError:
            expected = k
            break
    assert inputs.undecodable_field(query) == expected
