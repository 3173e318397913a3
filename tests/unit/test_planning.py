"""Argument lists and single/multiple planning, as ijp-formats.md §3 specifies."""

import math
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ijpweb import jobtypes, planning
from ijpweb.jobtypes import JobTypes, parse_jobtype
from ijpweb.planning import SESSION_ARG, DatasetInfo, PlanError, Selection

ROOT = Path(__file__).resolve().parents[2]
CAT = JobTypes(ROOT / "jobtypes").current()
OPTIONS = CAT.get("Test Options")
MULTI = CAT.get("Test args - multiple datasets or datafiles")
SINGLE = CAT.get("Test args - single dataset or datafile")
FORCED = CAT.get("Multiple datasets - Force single job")
SLEEP = CAT.get("Sleepcount")


def ds(i, type_name="confocal", **params):
    return DatasetInfo(i, type_name, params)


def sel(datasets=(), datafiles=()):
    return Selection(tuple(datasets), tuple(datafiles))


def test_argv_order_and_shapes():
    p = planning.plan(
        OPTIONS,
        sel([ds(4, numChannels=3.0), ds(5, numChannels=2.0)], [9]),
        {"Mode": "verbose", "Silent": True, "View type": "flat", "Title": "a b", "Index": "3", "Origin": "-1.5",
         "Unmix channels": "true"},
        mode="single",
        icat_url="https://icat.example:8181",
        ids_url="https://ids.example:8181",
    )  # fmt: skip
    (job,) = p.jobs
    assert job.args == (
        "--datasetIds=4,5",
        "--datafileIds=9",
        "--mode=verbose",  # a radio choice: one element
        "--silent=true",  # a ticked checkbox: one element
        "--viewtype", "flat",
        "--title", "a b",
        "--index", "3",
        "--origin", "-1.5",
        "--unmix",
        SESSION_ARG,
        "--icatUrl=https://icat.example:8181",
        "--idsUrl=https://ids.example:8181",
    )  # fmt: skip


def test_empty_values_and_empty_program_parameters_are_omitted():
    p = planning.plan(
        OPTIONS,
        sel([ds(1, numChannels=1.0)]),
        {"Mode": "plain", "Silent": False, "View type": "", "Index": ""},
    )
    assert p.jobs[0].args == ("--datasetIds=1", "--origin", "0.0", SESSION_ARG, "--icatUrl=", "--idsUrl=")


def test_defaults_fill_missing_values():
    p = planning.plan(SLEEP, sel(), {})
    assert p.jobs[0].args == ("--count", "5", "--sleep", "1")


def test_conditional_option_needs_every_dataset_and_never_datafiles_only():
    shown = lambda s: [o.name for o in planning.visible_options(OPTIONS, s)]  # noqa: E731
    assert "Unmix channels" in shown(sel([ds(1, numChannels=2.0), ds(2, numChannels=3.0)]))
    assert "Unmix channels" not in shown(sel([ds(1, numChannels=2.0), ds(2, numChannels=1.0)]))
    assert "Unmix channels" not in shown(sel([ds(1)]))  # no value: an error, so false
    assert "Unmix channels" not in shown(sel([], [7]))


def test_a_hidden_option_cannot_be_smuggled_in():
    with pytest.raises(PlanError) as e:
        planning.plan(OPTIONS, sel([ds(1, numChannels=1.0)]), {"Unmix channels": "true"}, strict=True)
    assert "does not apply" in e.value.fields["Unmix channels"]
    # and in the lenient (form) mode it is simply not passed
    p = planning.plan(OPTIONS, sel([ds(1, numChannels=1.0)]), {"Unmix channels": "true"})
    assert "--unmix" not in p.jobs[0].args


@pytest.mark.parametrize(
    "values, field, message",
    [
        ({"Index": "11"}, "Index", "at most 10"),
        ({"Index": "-1"}, "Index", "at least 0"),
        ({"Index": "2.5"}, "Index", "not a whole number"),
        ({"Origin": "nan"}, "Origin", "not a number"),
        ({"Origin": "2.01"}, "Origin", "at most 2.0"),
        ({"View type": "round"}, "View type", "not one of"),
        ({"Mode": "loud"}, "Mode", "not one of"),
        ({"Mode": ["verbose", "effusive"]}, "Mode", "exactly one"),
        ({"Silent": "maybe"}, "Silent", "true or false"),
        ({"Title": "x" * 1_000_000}, "Title", "longer than 4096 characters"),
        ({"Title": "a\x00b"}, "Title", "NUL"),
        # values that cannot be one argv element, whatever the option's type
        ({"Title": "a\ud800b"}, "Title", "lone surrogate"),
        ({"View type": "\udfff"}, "View type", "lone surrogate"),
        ({"Index": "\ud800"}, "Index", "lone surrogate"),
        ({"Origin": "1\x00"}, "Origin", "NUL"),
        ({"Silent": "\ud800"}, "Silent", "lone surrogate"),
        ({"Mode": "\ud800"}, "Mode", "lone surrogate"),
        ({"Mode": "v" * 5000}, "Mode", "longer than 4096 characters"),
        ({"Title": {"nested": 1}}, "Title", "a single value, not a dict"),
        ({"Title": [["x"]]}, "Title", "a single value, not a list"),
    ],
)
def test_bad_values_name_the_field(values, field, message):
    with pytest.raises(PlanError) as e:
        planning.plan(OPTIONS, sel([ds(1, numChannels=1.0)]), values)
    assert message in e.value.fields[field]


@given(st.text(alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=200))
def test_any_string_arrives_as_one_literal_argument(text):
    p = planning.plan(OPTIONS, sel([ds(1, numChannels=1.0)]), {"Title": text})
    args = p.jobs[0].args
    if text:
        assert args[args.index("--title") + 1] == text
    else:
        assert "--title" not in args


@given(st.text(max_size=20), st.sampled_from(["\x00", "\ud800", "\udc00", "\udfff"]), st.text(max_size=20))
def test_no_string_that_cannot_be_an_argument_gets_through(before, bad, after):
    with pytest.raises(PlanError) as e:
        planning.plan(OPTIONS, sel([ds(1, numChannels=1.0)]), {"Title": before + bad + after})
    assert e.value.fields["Title"].startswith("Title: ")


def test_single_vs_multiple():
    two = sel([ds(1), ds(2)])
    with pytest.raises(PlanError) as e:
        planning.plan(SINGLE, two, {})
    assert e.value.code == "confirmation_required"
    assert [j.dataset_ids for j in planning.plan(SINGLE, two, {}, confirmed=True).jobs] == [(1,), (2,)]

    with pytest.raises(PlanError) as e:
        planning.plan(MULTI, two, {})
    assert e.value.code == "mode_required"
    assert len(planning.plan(MULTI, two, {}, mode="single").jobs) == 1
    each = planning.plan(MULTI, sel([ds(1), ds(2)], [7]), {}, mode="each").jobs
    assert [(j.dataset_ids, j.datafile_ids) for j in each] == [((1,), ()), ((2,), ()), ((), (7,))]
    assert [j.args[0] for j in each] == ["--datasetIds=1", "--datasetIds=2", "--datafileIds=7"]

    forced = planning.plan(FORCED, two, {}, mode="each")
    assert [j.dataset_ids for j in forced.jobs] == [(1, 2)]


def test_interactive_types_always_run_one_job():
    xml = (
        b"<jobType acceptsDatasets='true'><name>View</name><executable>v</executable>"
        b"<type>interactive</type><multiple>true</multiple></jobType>"
    )
    jt = parse_jobtype(xml, "v.xml")
    assert [j.dataset_ids for j in planning.plan(jt, sel([ds(1), ds(2)]), {}, mode="each").jobs] == [(1, 2)]


def test_compatibility_rules():
    assert planning.incompatibility(SLEEP, sel()) is None
    assert "takes no datasets" in planning.incompatibility(SLEEP, sel([ds(1)]))
    assert "select a dataset" in planning.incompatibility(MULTI, sel())
    datasets_only = CAT.get("Test args - datasets only")
    assert "does not accept datafiles" in planning.incompatibility(datasets_only, sel([], [3]))
    assert "of type odd" in planning.incompatibility(FORCED, sel([ds(1, "odd")]))
    names = {jt.name for jt in planning.compatible(CAT.all(), sel([], [3]))}
    assert "Test args - datafiles only" in names and "Date" not in names


def test_provenance_arguments_for_batch_types():
    xml = b"<jobType createsProvenance='true'><name>P</name><executable>p</executable><type>batch</type></jobType>"
    jt = parse_jobtype(xml, "p.xml")
    assert planning.provenance_args(jt, 42, "https://ijp") == ["--ijpJobId=42", "--ijpUrl=https://ijp"]


def test_the_length_limit_is_the_callers():
    long = "x" * 100
    with pytest.raises(PlanError) as e:
        planning.plan(OPTIONS, sel([ds(1, numChannels=1.0)]), {"Title": long}, max_length=99)
    assert e.value.fields["Title"] == "Title: is longer than 99 characters"
    p = planning.plan(OPTIONS, sel([ds(1, numChannels=1.0)]), {"Title": long}, max_length=100)
    assert long in p.jobs[0].args


def test_an_unknown_option_name_is_shown_safely():
    with pytest.raises(PlanError) as e:
        planning.plan(OPTIONS, sel([ds(1, numChannels=1.0)]), {"\ud800" + "k" * 500: "1"}, strict=True)
    (name,) = e.value.fields
    assert name.startswith("'\\ud800kkk") and name.endswith("...") and len(name) < 220
    name.encode("utf-8")  # the message can be sent and shown


# --- the original API's argument lists (/ijp/rest/jm/submit) ----------------------------


DATE = CAT.get("Date")


def from_argv(jt, params, datasets=(), datafiles=(), **kw):
    """What /ijp/rest/jm does with an argument list, without the catalog."""
    req = planning.parse_argv(jt, params, max_length=kw.pop("max_length", 4096))
    s = sel([ds(i, **kw) for i in req.dataset_ids] or datasets, req.datafile_ids or datafiles)
    return planning.plan(jt, s, req.values, mode="single", strict=True, from_argv=True,
                         icat_url="https://icat", ids_url="https://ids")  # fmt: skip


def refused(jt, params, **kw) -> dict:
    """The fields of the refusal, named by argument as /ijp/rest/jm names them."""
    try:
        planning.parse_argv(jt, params)
    except PlanError as e:
        return e.fields
    with pytest.raises(PlanError) as e:
        from_argv(jt, params, **kw)
    return planning.argv_fields(jt, e.value.fields)


def test_date_cannot_be_made_to_read_a_file():
    fields = refused(DATE, ["-f", "/srv/ijp/var/jobs/1/spec.json"])
    assert fields["-f"] == "-f: not a parameter of job type Date (it has no options)"
    assert refused(DATE, ["--file=/etc/shadow"])["--file=/etc/shadow"].startswith("--file=/etc/shadow: not a")
    assert from_argv(DATE, []).jobs[0].args == ()
    assert from_argv(DATE, ["--sessionId=whatever"]).jobs[0].args == ()  # dropped, as always


def test_every_option_with_a_valid_value_gives_the_forms_argv():
    args = from_argv(
        OPTIONS,
        ["--datasetIds", "4,5", "--datafileIds=9", "--unmix", "--origin", "-1.5", "--index", "3",
         "--title", "a b", "--viewtype", "flat", "--silent=true", "--mode=verbose", "--sessionId=x",
         "--icatUrl=https://evil", "--idsUrl=https://evil"],
        numChannels=2.0,
    ).jobs[0].args  # fmt: skip
    # the job type's order, and the portal's own URLs and session stand-in
    assert args == (
        "--datasetIds=4,5", "--datafileIds=9", "--mode=verbose", "--silent=true", "--viewtype", "flat",
        "--title", "a b", "--index", "3", "--origin", "-1.5", "--unmix",
        SESSION_ARG, "--icatUrl=https://icat", "--idsUrl=https://ids",
    )  # fmt: skip


def test_options_not_given_are_left_out_where_the_form_can_leave_them_out():
    # no radio argument (plain), no checkbox, empty text and numbers
    p = from_argv(OPTIONS, ["--datasetIds=1"], numChannels=2.0)
    assert p.jobs[0].args == ("--datasetIds=1", SESSION_ARG, "--icatUrl=https://icat", "--idsUrl=https://ids")
    assert p.values == {"Mode": "plain", "Silent": False, "View type": "", "Title": "", "Index": "",
                        "Origin": "", "Unmix channels": False}  # fmt: skip
    # an enumeration without an empty value cannot be left out of the form: its default
    assert from_argv(SLEEP, ["--sleep", "15"]).jobs[0].args == ("--count", "5", "--sleep", "15")


@pytest.mark.parametrize(
    "params, field, message",
    [
        (["--index", "11"], "--index", "at most 10"),
        (["--index", "-1"], "--index", "at least 0"),
        (["--index", "2.5"], "--index", "not a whole number"),
        (["--index", "1", "--index", "2"], "--index", "give one value"),
        (["--origin", "nan"], "--origin", "not a number"),
        (["--origin", "-2.5"], "--origin", "at least -2.0"),
        (["--viewtype", "round"], "--viewtype", "not one of"),
        (["--mode=verbose", "--mode=effusive"], "--mode=verbose / --mode=effusive", "exactly one"),
        (["--mode=loud"], "--mode=loud", "not a parameter"),
        (["--silent=false"], "--silent=false", "not a parameter"),
        (["--silent=true", "--silent=true"], "--silent=true", "give one value"),
        (["--title"], "--title", "must follow it"),
        (["--title=x"], "--title=x", "not a parameter"),  # the form gives two arguments
        (["--title", "a\x00b"], "--title (Title)", "NUL"),
        (["--title", "\ud800"], "--title (Title)", "lone surrogate"),
        (["--title", "x" * 4097], "--title (Title)", "longer than 4096 characters"),
        (["--unmix"], "--unmix", "does not apply"),  # one channel: the form does not show it
        (["--ijpJobId=7"], "--ijpJobId", "does not ask for it"),
        (["--datasetIds=1", "--datasetIds=1"], "--datasetIds", "more than once"),
        (["--datasetIds=1,x"], "--datasetIds", "must be a whole number from 1 to"),
        (["--datasetIds=1_0"], "--datasetIds", "must be a whole number from 1 to"),
        (["--datasetIds=\u0661"], "--datasetIds", "must be a whole number"),  # an Arabic-Indic one
        (["--datasetIds=9223372036854775808"], "--datasetIds", "must be a whole number"),
        (["--datasetIds=0"], "--datasetIds", "must be a whole number"),
        (["--datasetIds=1\x00"], "'--datasetIds=1\\x00'", "NUL"),
        (["--datasetIds"], "--datasetIds", "must follow it"),
        (["--datasetIds=" + ",".join(["1"] * 10_001)], "--datasetIds", "at most 10000 ids"),
        (["\x00"], "'\\x00'", "NUL"),
    ],
)
def test_arguments_the_form_could_not_produce_are_refused_by_name(params, field, message):
    fields = refused(OPTIONS, ["--datasetIds=1", *params] if "--datasetIds" not in params[0] else params,
                     numChannels=1.0)  # fmt: skip
    key = next(k for k in fields if k.startswith(field))
    assert message in fields[key], fields


def test_a_flood_of_parameters_is_refused_briefly():
    with pytest.raises(PlanError) as e:
        planning.parse_argv(DATE, ["x"] * 1001)
    assert str(e.value) == "parameter: at most 1000 parameters (got 1001)"
    with pytest.raises(PlanError) as e:
        planning.parse_argv(DATE, [f"-{i}" for i in range(1000)])
    assert len(e.value.fields) == 1000 and str(e.value).endswith("; and 990 more")
    assert str(e.value).count("not a parameter") == 10


def _pps(jt):
    return [o.program_parameter for o in jt.options if o.program_parameter]


def plan_as_jm(jt, params, channels):
    """/ijp/rest/jm's path: parse, then plan from the argument list; None if refused."""
    try:
        req = planning.parse_argv(jt, params, max_length=40)
        s = sel([ds(i, numChannels=channels) for i in dict.fromkeys(req.dataset_ids)],
                list(dict.fromkeys(req.datafile_ids)))  # fmt: skip
        return s, planning.plan(jt, s, req.values, mode="single", strict=True, from_argv=True,
                                max_length=40, icat_url="I", ids_url="D")  # fmt: skip
    except PlanError:
        return None


TRICKY = parse_jobtype(
    b"""<jobType acceptsDatasets='true' acceptsDatafiles='true' icatUrlRequired='true' createsProvenance='true'>
    <name>Tricky</name><executable>t</executable><type>batch</type><multiple>true</multiple>
    <jobOptions><name>Fast</name><type>boolean</type><programParameter>--fast</programParameter>
      <defaultValue>true</defaultValue></jobOptions>
    <jobOptions><name>low</name><groupName>Level</groupName><type>boolean</type>
      <programParameter>--level=low</programParameter></jobOptions>
    <jobOptions><name>high</name><groupName>Level</groupName><type>boolean</type>
      <programParameter>--level=high</programParameter><defaultValue>true</defaultValue></jobOptions>
    <jobOptions><name>Colour</name><type>enumeration</type><programParameter>--colour</programParameter>
      <values>red</values><values>green</values></jobOptions>
    <jobOptions><name>Note</name><type>string</type><programParameter></programParameter>
      <defaultValue>kept</defaultValue></jobOptions>
    <jobOptions><name>A</name><type>string</type><programParameter>--a</programParameter></jobOptions>
    <jobOptions><name>B</name><type>string</type><programParameter>--a</programParameter></jobOptions>
    <jobOptions><name>N</name><type>integer</type><programParameter>--n</programParameter>
      <minValue>1</minValue><maxValue>5</maxValue><defaultValue>2</defaultValue></jobOptions>
    <jobOptions><name>Wide</name><type>boolean</type><programParameter>--wide</programParameter>
      <condition>numChannels &gt; 1</condition></jobOptions>
</jobType>""",
    "tricky.xml",
)
ARGV_TYPES = [jt for jt in CAT.all() if not jt.interactive] + [TRICKY]
PORTAL = {SESSION_ARG, "--icatUrl=I", "--idsUrl=D"}


@st.composite
def argument_lists(draw):
    """Argument lists built mostly of the job type's own pieces (so that many are valid),
    with ids, the portal's arguments, values of every kind and some junk mixed in."""
    jt = draw(st.sampled_from(ARGV_TYPES))
    pps = _pps(jt)
    value = st.one_of(
        st.sampled_from(["", "0", "1", "5", "11", "2.5", "-1.5", "nan", "red", "flat", "15"]),
        st.sampled_from([v for o in jt.options for v in o.values] or [""]),
        st.text(max_size=8),
    )
    bad = st.sampled_from(["\x00", "\ud800", "x" * 41, "-f", "--datasetIds", "--datasetIds=1"])
    chunks: list[list[str]] = []
    for name in ("--datasetIds", "--datafileIds"):
        if draw(st.integers(0, 3)):
            ids = draw(st.sampled_from(["1", "1,2", "3", "", "2,x"]))
            chunks.append(draw(st.sampled_from([[f"{name}={ids}"], [name, ids]])))
    kinds = ["portal"] + (["option"] * 8 if pps else [])
    for kind in draw(st.lists(st.sampled_from(kinds), max_size=6)):
        if kind == "option":
            pp = draw(st.sampled_from(pps))
            one = any(o.type == "boolean" for o in jt.options if o.program_parameter == pp)
            chunks.append([pp] if one else [pp, draw(value)])
        else:
            chunks.append(
                [draw(st.sampled_from(["--sessionId=s", "--icatUrl=u", "--idsUrl=u", "--ijpUrl=u"]))]
            )
    if draw(st.integers(0, 4)) == 0:  # now and then, one thing no form produces
        chunks.append([draw(st.one_of(bad, st.text(max_size=8)))])
    chunks = draw(st.permutations(chunks))
    return jt, [p for c in chunks for p in c], draw(st.sampled_from([1.0, 2.0]))


def _number(kind: str, text: str):
    try:
        return jobtypes.parse_number(kind, text.strip(jobtypes.BLANKS))
    except ValueError:
        return None


@given(argument_lists())
def test_any_argument_list_is_refused_or_is_what_a_form_would_produce(case):
    jt, params, channels = case
    done = plan_as_jm(jt, params, channels)
    if done is None:
        return  # a ParameterException
    s, p = done
    (job,) = p.jobs
    # the form, given the values stored with the job, produces this very argv
    again = planning.plan(jt, s, p.values, mode="single", max_length=40, icat_url="I", ids_url="D")
    assert again.jobs[0].args == job.args
    # nothing in it but what the client sent, the portal's own arguments, and the form's
    # defaults of fields the form cannot leave empty (an enumeration without an empty
    # value, a radio group whose choices all have an argument)
    forced = set(PORTAL)
    defaults = planning.default_values(jt.options)
    for o in jt.options:
        if o.type == "enumeration" and "" not in o.values:
            forced |= {o.program_parameter, defaults[o.name]}
        if o.is_radio and all(m.program_parameter for m in jt.options if m.key == o.key):
            forced |= {m.program_parameter for m in jt.options if m.name == defaults[o.key]}
    # a number is passed on in its one spelling (a float option's "0" is "0.0")
    kinds = {o.type for o in jt.options} & {"integer", "float"}
    normal = {jobtypes.number_text(n) for k in kinds for v in params if (n := _number(k, v)) is not None}
    for a in job.args:
        if not a.startswith(("--datasetIds=", "--datafileIds=")):
            assert a in params or a.strip() in {p.strip() for p in params} or a in forced | normal, (
                a,
                params,
            )
        assert planning.argv_problem(a, 40 if not a.startswith("--data") else None) is None
    # and nothing the client sent is lost, but for empty values (which the form leaves out)
    ids = {"--datasetIds", "--datafileIds"}
    for k, tok in enumerate(params):
        if tok.startswith((*ids, "--sessionId=", *planning.PORTAL_ARGS)) or (k and params[k - 1] in ids):
            continue
        if tok.strip() == "" or (k + 1 < len(params) and params[k + 1].strip() == "" and tok in _pps(jt)):
            continue
        assert tok in job.args or tok.strip() in job.args, (tok, params, job.args)
    assert {int(i) for a in job.args if a.startswith("--data") for i in a.split("=")[1].split(",")} == {
        *s.dataset_ids,
        *s.datafile_ids,
    }


@given(
    st.fixed_dictionaries({
        "Mode": st.sampled_from(["plain", "verbose", "effusive"]),
        "Silent": st.booleans(),
        "View type": st.sampled_from(["", "flat", "stacked"]),
        "Title": st.text(alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x00"),
                         max_size=30),
        "Index": st.one_of(st.just(""), st.integers(0, 10).map(str)),
        "Origin": st.one_of(st.just(""), st.floats(-2.0, 2.0).map(str)),
        "Unmix channels": st.booleans(),
    }),
    st.sampled_from([1.0, 3.0]),
)  # fmt: skip
def test_the_forms_argv_sent_back_through_the_original_api_is_accepted_unchanged(values, channels):
    s = sel([ds(7, numChannels=channels)])
    if channels == 1.0:
        values = {k: v for k, v in values.items() if k != "Unmix channels"}
    form = planning.plan(OPTIONS, s, values, icat_url="I", ids_url="D")
    client = [a for a in form.jobs[0].args if a not in PORTAL]
    done = plan_as_jm(OPTIONS, client, channels)
    assert done is not None, client
    assert done[1].jobs[0].args == form.jobs[0].args


# --- numbers: one strict grammar, passed on normalised ------------------------------------

STRICT_INTEGER = r"-?(0|[1-9][0-9]*)"  # what a program receives
STRICT_FLOAT = r"-?[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?"


def _number_like():
    """Text near the grammar: pieces of numbers and of what int()/float() also take."""
    pieces = st.sampled_from(["0", "1", "7", "9", "-", "+", ".", "e", "E", "_", " ", "inf", "nan",
                              "x", "\u0661", "\uff11", "\t", "\u00a0", "infinity", "0x"])  # fmt: skip
    return st.lists(pieces, max_size=12).map("".join)


@pytest.mark.parametrize("kind, pattern", [("integer", jobtypes.INTEGER), ("float", jobtypes.FLOAT)])
@given(text=st.one_of(st.text(max_size=30), _number_like()))
def test_any_text_accepted_as_a_number_matches_the_grammar_and_round_trips(kind, pattern, text):
    try:
        n = jobtypes.parse_number(kind, text)
    except ValueError:
        return
    assert pattern.fullmatch(text.strip(" \t\r\n")), text
    out = jobtypes.number_text(n)
    assert re.fullmatch(STRICT_INTEGER if kind == "integer" else STRICT_FLOAT, out), (text, out)
    # the program's text is the same number, and it is its own normal form
    assert (
        jobtypes.parse_number(kind, out) == n
        and jobtypes.number_text(jobtypes.parse_number(kind, out)) == out
    )


@given(st.one_of(st.from_regex(jobtypes.INTEGER, fullmatch=True), st.integers(-(2**63), 2**63 - 1).map(str)))
def test_every_integer_of_the_grammar_is_taken_as_int_reads_it(text):
    if not -(2**63) <= int(text) < 2**63:  # a Java long
        with pytest.raises(ValueError):
            jobtypes.parse_number("integer", text)
        return
    n = jobtypes.parse_number("integer", text)
    assert n == int(text) and jobtypes.number_text(n) == str(int(text))


@given(
    st.one_of(
        st.from_regex(jobtypes.FLOAT, fullmatch=True),
        st.floats(allow_nan=False, allow_infinity=False).map(repr),
    )
)
def test_every_finite_float_of_the_grammar_is_taken_as_float_reads_it(text):
    f = float(text)
    if math.isinf(f):
        with pytest.raises(ValueError):
            jobtypes.parse_number("float", text)
    else:
        assert jobtypes.parse_number("float", text) == f and float(jobtypes.number_text(f)) == f


@given(index=_number_like(), origin=_number_like())
def test_option_values_the_program_gets_are_normalised(index, origin):
    s = sel([ds(1, numChannels=1.0)])
    try:
        p = planning.plan(OPTIONS, s, {"Index": index, "Origin": origin})
    except PlanError as e:
        assert set(e.fields) <= {"Index", "Origin"}
        return
    args = p.jobs[0].args
    for pp, pattern in (("--index", STRICT_INTEGER), ("--origin", STRICT_FLOAT)):
        if pp in args:
            assert re.fullmatch(pattern, args[args.index(pp) + 1]), args


@pytest.mark.parametrize(
    "values, field, says",
    [
        ({"Index": "1_0"}, "Index", "not a whole number"),
        ({"Index": "\u0661"}, "Index", "not a whole number"),
        ({"Index": True}, "Index", "not a whole number"),
        ({"Index": [1]}, "Index", "a single value, not a list"),
        ({"Mode": ["verbose"]}, "Mode", "a single value, not a list"),
        ({"Origin": "-1_0e-1"}, "Origin", "not a number"),
        ({"Origin": "inf"}, "Origin", "not a number"),
        ({"Origin": "1e400"}, "Origin", "not a number"),
        ({"Origin": "0x1p0"}, "Origin", "not a number"),
    ],
)
def test_numbers_outside_the_grammar_and_lists_are_refused(values, field, says):
    with pytest.raises(PlanError) as e:
        planning.plan(OPTIONS, sel([ds(1, numChannels=1.0)]), values)
    assert says in e.value.fields[field]


@pytest.mark.parametrize(
    "index, origin, args",
    [("+10", "+.5", ["10", "0.5"]), ("-0", "-1e-1", ["0", "-0.1"]), (" 007 ", "1E0", ["7", "1.0"]),
     (3, 2, ["3", "2.0"]), ("0", "-2", ["0", "-2.0"])],
)  # fmt: skip
def test_accepted_numbers_reach_the_program_normalised(index, origin, args):
    p = planning.plan(OPTIONS, sel([ds(1, numChannels=1.0)]), {"Index": index, "Origin": origin})
    got = p.jobs[0].args
    assert [got[got.index("--index") + 1], got[got.index("--origin") + 1]] == args
    assert [p.values["Index"], p.values["Origin"]] == args  # as stored, and resubmitted
