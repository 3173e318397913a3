"""The condition language: examples from the original, errors, and a property-based
check of the parser against an independent reference evaluation of random trees."""

import contextlib
import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ijpweb.conditions import ConditionError, evaluate, is_true, parse


@pytest.mark.parametrize(
    "source, values, expected",
    [
        ("age > 21  && True", {"age": 25}, True),  # the original's own tests
        (
            "float + double + integer + long == 136.0",
            {"float": 1.0, "double": 2.0, "integer": 33, "long": 100},
            True,
        ),
        ("numBeadFiles>0 && numChannels>1", {"numBeadFiles": 2, "numChannels": 2}, True),
        ("numChannels == 3 && numHdfFiles > 500", {"numChannels": 3, "numHdfFiles": 501}, True),
        ("numChannels == 3", {"numChannels": 3.0}, False),  # Long(3).equals(Double(3.0)) is false
        ("x == null", {"x": None}, True),
        ("x != null", {"x": 1}, True),
        ("s == 'it''s'", {"s": "it's"}, True),
        ("7 / 2 == 3", {}, True),
        ("-7 / 2 == -3", {}, True),  # truncation toward zero
        ("-7 % 3 == -1", {}, True),  # the sign of the dividend
        ("7.0 / 2 == 3.5", {}, True),
        ("1e3 == 1000.0", {}, True),
        ("!(1 > 2) || False", {}, True),
        ("(n - 1) * 2 >= 4", {"n": 3}, True),
        ("n-1 == 2", {"n": 3}, True),  # binary minus after an operand
        ("9223372036854775807 + 1 < 0", {}, True),  # Java long wraps
        ("False && x > 1", {}, False),  # short-circuit: x is never looked up
        ("True || x > 1", {}, True),
    ],
)
def test_examples(source, values, expected):
    assert evaluate(source, values) is expected


@pytest.mark.parametrize(
    "source, message",
    [
        ("a = 1", "'=' is not an operator"),
        ("a >", "unexpected end"),
        ("a > 1 b", "trailing material"),
        ("(a > 1", "expected ')'"),
        ("'open", "unterminated string"),
        ("a > 1 && 3", "needs a condition"),
        ("1 + True > 0", "is a condition, not a value"),
        ("a # 1", "unexpected character"),
        ("", "empty condition"),
    ],
)
def test_syntax_errors_name_the_problem(source, message):
    with pytest.raises(ConditionError, match=re.escape(message)):
        parse(source)


@pytest.mark.parametrize(
    "source, values, message",
    [
        ("zz > 1", {}, "zz has no value supplied in the map"),
        ("x > 1", {"x": None}, "needs numbers"),
        ("s < 't'", {"s": "a"}, "needs numbers"),
        ("1 / 0 == 1", {}, "division by zero"),
        ("s + 1 == 2", {"s": "a"}, "needs numbers"),
    ],
)
def test_evaluation_errors(source, values, message):
    with pytest.raises(ConditionError, match=message):
        evaluate(source, values)
    assert is_true(source, values) is False  # the GUI rule: an error counts as false


def test_deep_nesting_is_refused_not_a_crash():
    with pytest.raises(ConditionError, match="nested too deeply"):
        parse("(" * 5000 + "1" + ")" * 5000 + " > 0")
    assert evaluate("(" * 40 + "1" + ")" * 40 + " > 0", {})


def test_names_are_collected():
    assert parse("a > 1 && (b == 'x' || c != null)").names == {"a", "b", "c"}


# --- property-based: the parser against an independent reference ------------------------

NAMES = ["a", "b", "n_1", "Xy"]


class RefError(Exception):
    pass


LONG = 2**64


def ref_wrap(n):
    return (n + 2**63) % LONG - 2**63


def ref_num(v):
    if type(v) not in (int, float):
        raise RefError
    return v


def ref_value(node, env):
    kind = node[0]
    if kind == "lit":
        return node[1]
    if kind == "name":
        if node[1] not in env:
            raise RefError
        return env[node[1]]
    if kind == "neg":
        v = ref_num(ref_value(node[1], env))
        return ref_wrap(-v) if type(v) is int else -v
    op, left, right = node[1], ref_value(node[2], env), ref_value(node[3], env)
    a, b = ref_num(left), ref_num(right)
    if type(a) is int and type(b) is int:
        if op in "/%" and b == 0:
            raise RefError
        if op == "+":
            return ref_wrap(a + b)
        if op == "-":
            return ref_wrap(a - b)
        if op == "*":
            return ref_wrap(a * b)
        q = int(abs(a) // abs(b)) * (1 if (a < 0) == (b < 0) else -1)
        return ref_wrap(q) if op == "/" else ref_wrap(a - b * q)
    a, b = float(a), float(b)
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        if b == 0:
            return math.nan if a == 0 or a != a else math.copysign(math.inf, a) * math.copysign(1, b)
        return a / b
    if b == 0 or a in (math.inf, -math.inf) or a != a or b != b:
        return math.nan
    return a if b in (math.inf, -math.inf) else math.fmod(a, b)


def ref_equal(x, y):
    if type(x) is not type(y):
        return False
    if type(x) is float:
        if x != x and y != y:
            return True
        return x == y and math.copysign(1, x) == math.copysign(1, y)
    return x == y


def ref_bool(node, env):
    kind = node[0]
    if kind == "bool":
        return node[1]
    if kind == "not":
        return not ref_bool(node[1], env)
    if kind == "and":
        return ref_bool(node[1], env) and ref_bool(node[2], env)
    if kind == "or":
        return ref_bool(node[1], env) or ref_bool(node[2], env)
    op, x, y = node[1], ref_value(node[2], env), ref_value(node[3], env)
    if op == "==":
        return ref_equal(x, y)
    if op == "!=":
        return not ref_equal(x, y)
    a, b = ref_num(x), ref_num(y)
    if not (type(a) is int and type(b) is int):
        a, b = float(a), float(b)
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def render_value(node):
    kind = node[0]
    if kind == "lit":
        v = node[1]
        if v is None:
            return "null"
        if type(v) is str:
            return "'" + v.replace("'", "''") + "'"
        return repr(v)
    if kind == "name":
        return node[1]
    if kind == "neg":
        return f"-({render_value(node[1])})"
    return f"({render_value(node[2])} {node[1]} {render_value(node[3])})"


def render_bool(node):
    kind = node[0]
    if kind == "bool":
        return "True" if node[1] else "False"
    if kind == "not":
        return f"!({render_bool(node[1])})"
    if kind in ("and", "or"):
        op = "&&" if kind == "and" else "||"
        return f"({render_bool(node[1])} {op} {render_bool(node[2])})"
    return f"{render_value(node[2])} {node[1]} {render_value(node[3])}"


literals = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(alphabet="ab' ", max_size=4),
    st.none(),
)
values = st.recursive(
    st.one_of(
        literals.map(lambda v: ("lit", v)), st.sampled_from(NAMES + ["missing"]).map(lambda n: ("name", n))
    ),
    lambda sub: st.one_of(
        sub.map(lambda v: ("neg", v)),
        st.tuples(st.just("bin"), st.sampled_from("+-*/%"), sub, sub),
    ),
    max_leaves=6,
)
conditions = st.recursive(
    st.one_of(
        st.booleans().map(lambda b: ("bool", b)),
        st.tuples(st.just("cmp"), st.sampled_from(["==", "!=", "<", "<=", ">", ">="]), values, values),
    ),
    lambda sub: st.one_of(
        sub.map(lambda c: ("not", c)),
        st.tuples(st.just("and"), sub, sub),
        st.tuples(st.just("or"), sub, sub),
    ),
    max_leaves=5,
)
envs = st.dictionaries(
    st.sampled_from(NAMES),
    st.one_of(st.integers(-1000, 1000), st.floats(-1e6, 1e6), st.text(alphabet="ab", max_size=2), st.none()),
)


@settings(max_examples=400, deadline=None)
@given(conditions, envs)
def test_parser_agrees_with_reference(tree, env):
    source = render_bool(tree)
    try:
        expected = ref_bool(tree, env)
    except RefError:
        expected = "error"
    try:
        got = evaluate(source, env)
    except ConditionError:
        got = "error"
    assert got == expected, source


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_text_parses_or_raises_condition_error(text):
    with contextlib.suppress(ConditionError):
        parse(text)
