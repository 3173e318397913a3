"""Argument lists and single/multiple planning, as ijp-formats.md §3 specifies."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ijpweb import planning
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
        ({"Title": "x" * 1_000_000}, "Title", "at most 10000 characters"),
        ({"Title": "a\x00b"}, "Title", "NUL"),
    ],
)
def test_bad_values_name_the_field(values, field, message):
    with pytest.raises(PlanError) as e:
        planning.plan(OPTIONS, sel([ds(1, numChannels=1.0)]), values)
    assert message in e.value.fields[field]


@given(st.text(alphabet=st.characters(exclude_characters="\x00"), max_size=200))
def test_any_string_arrives_as_one_literal_argument(text):
    p = planning.plan(OPTIONS, sel([ds(1, numChannels=1.0)]), {"Title": text})
    args = p.jobs[0].args
    if text:
        assert args[args.index("--title") + 1] == text
    else:
        assert "--title" not in args


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
