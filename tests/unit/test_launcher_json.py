"""The launcher reads and writes its records with _json, json's C part, directly (json's
own import compiles regular expressions: milliseconds every job would pay): the same
documents as the json module, in both directions, and the same refusals."""

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ijpweb.batch import runner

# what the records hold: spec.json's nested argv, environment and sandbox, started.json's
# numbers; any text (escapes, surrogate-free unicode), floats but not NaN (NaN != NaN)
values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=30,
)


@given(values)
def test_documents_read_and_write_as_the_json_module_does(value):
    assert runner.dumps(value) == json.dumps(value)
    assert runner.loads(json.dumps(value)) == value
    assert runner.loads(json.dumps(value, indent=2).encode()) == value  # bytes, whitespace (bwrap's info)


@given(st.text())
def test_any_text_is_refused_as_json_refuses_it_or_read_alike(text):
    try:
        expected = json.loads(text)
    except ValueError:
        with pytest.raises(ValueError):
            runner.loads(text)
    else:
        got = runner.loads(text)
        assert got == expected or (isinstance(got, float) and math.isnan(got) and math.isnan(expected))


@pytest.mark.parametrize("text", ["", " ", '{"a": 1', '{"a": 1} x', "[1,]", "nul", '"\\x"'])
def test_broken_records_are_value_errors(text):
    """A half-written record (read_json: None, "not there yet") must not be taken for data."""
    with pytest.raises(ValueError):
        runner.loads(text)


def test_what_json_cannot_write_is_refused():
    with pytest.raises(TypeError, match="set is not JSON serializable"):
        runner.dumps({"a": {1, 2}})


def test_broken_records_are_value_errors_in_a_launcher_too():
    """In a launcher json itself is not loaded, through which _json reports a broken
    document: still a ValueError (bwrap's info comes in pieces; records are read while
    they are written)."""
    import subprocess
    import sys

    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import runner; "
        "assert 'json' not in sys.modules\n"
        "for text in ['{\"child-pid\": 1', '[1,]', '{\"a\": 1} x', '']:\n"
        "    try: runner.loads(text)\n"
        "    except ValueError: pass\n"
        "    else: raise SystemExit(f'{text!r} was read')\n"
        "print(runner.loads(b'{\\n  \"child-pid\": 12\\n}')['child-pid'])"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code, str(runner.__file__).rsplit("/", 1)[0]],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and done.stdout == "12\n", done.stderr
