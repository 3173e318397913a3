"""Issue 13, point 6: a job type's <description> and <inputs> rule: parsing, the XSD, the
rule's words and its check per job (planning.inputs_problem), and hostile files."""

import pytest
from hypothesis import given
from hypothesis import strategies as st
from lxml import etree

from ijpweb.jobtypes import SCHEMA, InputsRule, parse_jobtype
from ijpweb.planning import DatasetInfo, PlanError, Selection, inputs_problem, plan
from ijpweb.xmlfiles import XMLFileError

from .test_jobtypes import ORIGINAL_FORCE_SINGLE, ORIGINAL_MSMM

HEAD = b"<jobType acceptsDatasets='true' acceptsDatafiles='true'>\n<name>Copy datafile</name>\n"
TAIL = b"<executable>copy</executable><type>batch</type><multiple forceSingleJob='true'>true</multiple>\n</jobType>"


def jobtype(middle: bytes, head: bytes = HEAD) -> object:
    return parse_jobtype(head + middle + b"\n" + TAIL, "copy.xml")


def sel(datasets: int, datafiles: int) -> Selection:
    return Selection(
        tuple(DatasetInfo(i + 1, "any") for i in range(datasets)), tuple(100 + i for i in range(datafiles))
    )


def test_originals_load_without_description_or_rule():
    for data in (ORIGINAL_FORCE_SINGLE, ORIGINAL_MSMM):
        jt = parse_jobtype(data, "orig.xml")
        assert jt.description == "" and jt.inputs is None
        assert "description" not in jt.to_ijp_json() and "inputs" not in jt.to_ijp_json()
        assert jt.to_api_json()["description"] == "" and jt.to_api_json()["inputs"] is None


def test_description_and_rule_are_read_and_follow_the_schema():
    data = (
        HEAD + b"<description>Copies one datafile\n   into one dataset.\n\n"
        b"Second <b>paragraph</b> &amp; more.</description>\n"
        b'<inputs minDatasets="1" maxDatasets="1" minDatafiles="1" maxDatafiles="1"/>\n' + TAIL
    )
    jt = parse_jobtype(data, "copy.xml")
    # text only (the <b> is not markup for the page: its text is kept, the tag is not)
    assert jt.description == "Copies one datafile into one dataset.\n\nSecond paragraph & more."
    assert jt.inputs == InputsRule(1, 1, 1, 1)
    assert jt.to_api_json()["inputs"] == {
        "minDatasets": 1,
        "maxDatasets": 1,
        "minDatafiles": 1,
        "maxDatafiles": 1,
    }
    schema = etree.XMLSchema(etree.parse(str(SCHEMA)))
    ok = HEAD + b"<description>x</description><inputs minDatasets='0' maxDatafiles='3'/>" + TAIL
    schema.assertValid(etree.fromstring(ok))
    for bad in (b"<inputs minDatasets='-1'/>", b"<inputs maxDatasets='x'/>", b"<inputs maxDatasets='1000001'/>",
                b"<inputs most='1'/>"):  # fmt: skip
        assert not schema.validate(etree.fromstring(HEAD + bad + TAIL)), bad


@pytest.mark.parametrize(
    "inputs, reason",
    [
        ('minDatasets="2" maxDatasets="1"', "<inputs> minDatasets (2) is more than maxDatasets (1)"),
        ('minDatafiles="5" maxDatafiles="0"', "<inputs> minDatafiles (5) is more than maxDatafiles (0)"),
        ('minDatasets="-1"', "<inputs> minDatasets must be a whole number from 0 to 1000000, not '-1'"),
        ('maxDatasets="1' + "0" * 30 + '"', "<inputs> maxDatasets must be a whole number from 0 to 1000000"),
        ('maxDatafiles="1000001"', "must be a whole number from 0 to 1000000, not '1000001'"),
        ('maxDatafiles="one"', "<inputs> maxDatafiles must be a whole number from 0 to 1000000, not 'one'"),
        ('maxDatafiles="1.0"', "not '1.0'"),
        ('maxDatafiles=""', "not ''"),
        ('maxdatasets="1"', "<inputs> has no attribute 'maxdatasets'"),
    ],
)
def test_bad_rules_name_file_line_and_reason(inputs, reason):
    with pytest.raises(XMLFileError) as e:
        jobtype(f"<description>d</description>\n\n<inputs {inputs}/>".encode())
    assert e.value.problem.file == "copy.xml" and e.value.problem.line == 5
    assert reason in e.value.problem.reason


def test_a_minimum_needs_the_inputs_accepted_and_elements_come_once():
    with pytest.raises(
        XMLFileError, match="minDatafiles is 1 but the job type does not set acceptsDatafiles"
    ):
        jobtype(b"<inputs minDatafiles='1'/>", head=b"<jobType acceptsDatasets='true'><name>N</name>")
    with pytest.raises(XMLFileError, match=r"copy.xml:4: <inputs> is given twice"):
        jobtype(b"<inputs/>\n<inputs/>")
    with pytest.raises(XMLFileError, match=r"<description> is given twice"):
        jobtype(b"<description/><description/>")


@pytest.mark.parametrize(
    "rule, needs",
    [
        (InputsRule(1, 1, 1, 1), "exactly 1 dataset and 1 datafile"),
        (InputsRule(1, None, None, None), "at least 1 dataset"),
        (InputsRule(None, 3, 0, 0), "at most 3 datasets and no datafiles"),
        (InputsRule(2, 5, None, None), "2 to 5 datasets"),
        (InputsRule(0, 2, 2, 2), "at most 2 datasets and exactly 2 datafiles"),
    ],
)
def test_what_a_rule_needs_in_words(rule, needs):
    assert rule.needs() == needs


def test_the_rule_applies_per_job():
    copy = jobtype(b"<inputs minDatasets='1' maxDatasets='1' minDatafiles='1' maxDatafiles='1'/>")
    assert inputs_problem(copy, sel(1, 1), "single") is None
    assert inputs_problem(copy, sel(3, 2), "single") == (
        "Copy datafile needs exactly 1 dataset and 1 datafile; you selected 3 datasets and 2 datafiles"
    )
    with pytest.raises(PlanError) as e:
        plan(copy, sel(3, 2), {})
    assert e.value.code == "wrong_inputs" and str(e.value).startswith("Copy datafile needs exactly")
    assert len(plan(copy, sel(1, 1), {}).jobs) == 1
    # one job per input: each job has one dataset (or datafile), and that is what counts
    each = parse_jobtype(
        b"<jobType acceptsDatasets='true' acceptsDatafiles='true'><name>Each</name><executable>e</executable>"
        b"<type>batch</type><multiple>true</multiple><inputs maxDatasets='1' maxDatafiles='0'/></jobType>",
        "each.xml",
    )
    assert inputs_problem(each, sel(3, 0), "each") is None
    assert "you selected 3 datasets" in inputs_problem(each, sel(3, 0), "single")
    assert len(plan(each, sel(3, 0), {}, mode="each").jobs) == 3
    with pytest.raises(PlanError) as e:
        plan(each, sel(3, 0), {}, mode="single")
    assert e.value.fields == {"mode": str(e.value)}  # the other choice would do: said at the choice
    assert "in each job" in inputs_problem(each, sel(1, 1), "each")


VALUES = st.one_of(
    st.integers(-(10**31), 10**31).map(str),
    st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=12),
    st.sampled_from(["", " 1", "1 ", "01", "1e3", "0x1", "+1", "١"]),
)
NAMES = st.sampled_from(["minDatasets", "maxDatasets", "minDatafiles", "maxDatafiles", "min", "maxdatafiles"])


@given(st.dictionaries(NAMES, VALUES, max_size=4))
def test_any_attribute_values_give_a_rule_or_a_clear_error(attrs):
    el = etree.Element("inputs")
    for k, v in attrs.items():
        el.set(k, v)
    data = HEAD + b"<description>x</description>\n" + etree.tostring(el) + b"\n" + TAIL
    try:
        jt = parse_jobtype(data, "copy.xml")
    except XMLFileError as e:
        assert (
            e.problem.file == "copy.xml" and e.problem.line == 4 and e.problem.reason.startswith("<inputs> ")
        )
        return
    rule = jt.inputs
    for kind in ("Datasets", "Datafiles"):
        low, high = getattr(rule, f"min_{kind.lower()}"), getattr(rule, f"max_{kind.lower()}")
        for v in (low, high):
            assert v is None or 0 <= v <= 1_000_000
        assert low is None or high is None or low <= high
    assert set(attrs) <= {"minDatasets", "maxDatasets", "minDatafiles", "maxDatafiles"}
    assert isinstance(rule.needs(), str)
