"""The check of /api/v1 requests against what the OpenAPI document declares
(ijpweb/declared.py), on its own: which names are unknown, how they are named, what is
suggested, and how many are named."""

from hypothesis import given
from hypothesis import strategies as st

from ijpweb import declared
from ijpweb.openapi import document
from ijpweb.planning import shown_name

NAMES = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40)


@given(given_=st.lists(NAMES, max_size=30), known=st.lists(NAMES, max_size=10))
def test_exactly_the_names_not_declared_are_unknown_once_each_in_the_order_given(given_, known):
    unknown = declared.unknown_names(given_, known, "field")
    expected = list(dict.fromkeys(n for n in given_ if n not in known))
    assert [u.path for u in unknown] == [shown_name(n) for n in expected]
    for i, (u, name) in enumerate(zip(unknown, expected, strict=True)):
        # the names an answer shows get a suggestion when one is close; the rest need none
        near = declared.suggestion(name, known) if i < declared.MAX_NAMED else None
        assert near is None or near in known
        assert u.reason == ("no such field" if near is None else f"no such field (did you mean {near!r}?)")


def test_a_slip_is_suggested_and_a_stranger_is_not():
    known = ["job_type", "datasets", "datafiles", "options", "mode", "confirm", "tags", "like"]
    assert declared.suggestion("tagz", known) == "tags"
    assert declared.suggestion("option", known) == "options"
    assert declared.suggestion("jobtype", known) == "job_type"
    assert declared.suggestion("priority", known) is None
    assert declared.suggestion("t" * (declared.MAX_SUGGESTED_LENGTH + 1), ["t"]) is None


def test_nested_objects_of_a_fixed_shape_are_checked_by_their_path():
    schema = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "a": {"type": "object", "additionalProperties": False, "properties": {"b": {}}},
            "free": {"type": "object"},  # keys not fixed: not checked here
        },
    }
    body = {"a": {"b": 1, "bb": 2}, "free": {"anything": 1}, "c": 3}
    assert [(u.path, u.reason) for u in declared.unknown_fields(body, schema)] == [
        ("c", "no such field"),
        ("a.bb", "no such field (did you mean 'b'?)"),
    ]
    assert declared.unknown_fields({"a": "not an object"}, schema) == []  # its type is the view's to name
    assert declared.unknown_fields([1, 2], schema) == []


@given(st.integers(min_value=1, max_value=200))
def test_the_answer_names_at_most_some_and_counts_the_rest(count):
    unknown = declared.unknown_names([f"x{i}" for i in range(count)], ["y"], "parameter")
    message, fields = declared.refusal(unknown)
    assert len(fields) == min(count, declared.MAX_NAMED)
    assert all(f"{name}: {reason}" in message for name, reason in fields.items())
    assert message.endswith(f"; and {count - declared.MAX_NAMED} more") == (count > declared.MAX_NAMED)


def test_every_operation_of_the_document_is_declared_by_its_path_and_method():
    for path, ops in document()["paths"].items():
        for method, op in ops.items():
            assert declared.at(path, method) is declared.accepts(op["operationId"])
    assert declared.at("/api/v1/datasets/{dataset_id:\\d+}", "get") is declared.accepts("getDataset")
    assert declared.at("/api/v1/nothing", "GET") is None
    assert declared.at(declared.DOCUMENT_PATH, "GET") == declared.Accepts((), None)
