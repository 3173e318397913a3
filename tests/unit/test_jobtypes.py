"""Loading job type XML: the original's files, bad and hostile files, reloading."""

import os
import time
from pathlib import Path

import pytest
from lxml import etree

from ijpweb.jobtypes import SCHEMA, JobTypes, parse_jobtype
from ijpweb.xmlfiles import XMLFileError

ROOT = Path(__file__).resolve().parents[2]

# Verbatim from the original ijp.demo (with its ${executable.path} substituted).
ORIGINAL_FORCE_SINGLE = b"""<jobType sessionId='true' icatUrlRequired='true' idsUrlRequired='true'
         acceptsDatasets='true' acceptsDatafiles='false'>
    <name>Multiple datasets - Force single job</name>
    <multiple forceSingleJob="true">true</multiple>
    <executable>/opt/demojobs/test_args.py</executable>
    <type>batch</type>
    <datasetTypes>TestDatasetType</datasetTypes>
</jobType>
"""

ORIGINAL_MSMM = b"""<jobType>
    <name>msmm viewer project</name>
    <executable>msmm_viewer</executable>
    <type>interactive</type>
    <unknownElement>ignored, as JAXB did</unknownElement>
    <jobOptions>
        <name>View reg beads</name>
        <groupName>View type</groupName>
        <type>boolean</type>
        <programParameter>--reg-beads</programParameter>
        <condition>numBeadFiles&gt;0 &amp;&amp; numChannels&gt;1</condition>
    </jobOptions>
</jobType>
"""


def test_original_files_load_unchanged():
    jt = parse_jobtype(ORIGINAL_FORCE_SINGLE, "test_multiple_force_single_job.xml")
    assert (jt.name, jt.multiple, jt.force_single_job) == ("Multiple datasets - Force single job", True, True)
    assert (jt.session_id, jt.icat_url_required, jt.ids_url_required) == (True, True, True)
    assert (jt.accepts_datasets, jt.accepts_datafiles) == (True, False)
    assert jt.dataset_types == ("TestDatasetType",)
    msmm = parse_jobtype(ORIGINAL_MSMM, "msmm.xml")
    (opt,) = msmm.options
    assert opt.is_radio and opt.group_name == "View type"
    assert opt.parsed_condition.names == {"numBeadFiles", "numChannels"}
    assert msmm.interactive


def test_generates_provenance_is_an_alias():
    xml = b"<jobType generatesProvenance='true'><name>P</name><executable>p</executable><type>batch</type></jobType>"
    assert parse_jobtype(xml, "p.xml").creates_provenance


def test_options_keep_document_order_and_empty_values():
    jt = parse_jobtype((ROOT / "jobtypes" / "test_options.xml").read_bytes(), "test_options.xml")
    assert [o.name for o in jt.options][:4] == ["plain", "verbose", "effusive", "Silent"]
    view = next(o for o in jt.options if o.name == "View type")
    assert view.values == ("", "flat", "stacked")
    assert jt.options[0].program_parameter == ""


def test_ijp_json_has_the_original_keys_in_order():
    d = parse_jobtype(ORIGINAL_FORCE_SINGLE, "x.xml").to_ijp_json()
    assert list(d) == [
        "name", "executable", "multiple", "forceSingleJob", "type", "acceptsDatasets",
        "acceptsDatafiles", "sessionIdRequired", "icatUrlRequired", "idsUrlRequired",
        "datasetTypes", "jobOptions",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "xml, line, reason",
    [
        (b"<jobType>\n<name>X</name>\n<executable>x</executable>\n<type>batch</type>\n", 5, "not well-formed"),
        (b"<jobType>\n<name>X</name>\n<executable>x</executable>\n<type>sometimes</type></jobType>", 4, "batch or interactive"),
        (b"<jobType><name>X</name><type>batch</type></jobType>", 1, "<executable> is missing"),
        (b"<jobType acceptsDatasets='yes'><name>X</name><executable>x</executable><type>batch</type></jobType>", 1, "true or false"),
        (b"<jobType><name>X</name><executable>x</executable><type>batch</type>\n<jobOptions><name>n</name><type>integer</type>\n<minValue>ten</minValue></jobOptions></jobType>", 2, "minValue"),
        (b"<jobType><name>X</name><executable>x</executable><type>batch</type>\n\n<jobOptions><name>n</name><type>boolean</type><condition>a = 1</condition></jobOptions></jobType>", 3, "bad condition"),
        (b"<jobType><name>X</name><executable>x</executable><type>batch</type><jobOptions><name>n</name><type>colour</type></jobOptions></jobType>", 1, "type must be one of"),
    ],
)  # fmt: skip
def test_bad_files_name_file_line_and_reason(xml, line, reason):
    with pytest.raises(XMLFileError) as e:
        parse_jobtype(xml, "bad.xml")
    assert e.value.problem.file == "bad.xml"
    assert e.value.problem.line == line
    assert reason in e.value.problem.reason


@pytest.mark.parametrize(
    "xml",
    [
        # external entity (XXE)
        b"""<?xml version="1.0"?><!DOCTYPE j [<!ENTITY x SYSTEM "file:///etc/passwd">]>
        <jobType><name>&x;</name><executable>x</executable><type>batch</type></jobType>""",
        # billion laughs
        b"""<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
        <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;"><!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">]>
        <jobType><name>&d;</name><executable>x</executable><type>batch</type></jobType>""",
        # external DTD over the network
        b"""<?xml version="1.0"?><!DOCTYPE jobType SYSTEM "http://127.0.0.1:1/evil.dtd">
        <jobType><name>X</name><executable>x</executable><type>batch</type></jobType>""",
    ],
)
def test_hostile_xml_is_refused(xml):
    with pytest.raises(XMLFileError) as e:
        parse_jobtype(xml, "evil.xml")
    assert "DOCTYPE" in e.value.problem.reason or "entit" in e.value.problem.reason


def write(path: Path, text: str):
    path.write_text(text)
    # make the change visible to mtime checks even within one clock tick
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))


def test_a_bad_file_does_not_stop_the_others_and_reload_picks_up_changes(tmp_path):
    write(tmp_path / "a.xml", "<jobType><name>A</name><executable>a</executable><type>batch</type></jobType>")
    write(tmp_path / "b.xml", "<jobType><name>B</name>")
    write(tmp_path / "c.xml", "<jobType><name>A</name><executable>c</executable><type>batch</type></jobType>")
    write(tmp_path / "notes.txt", "not a job type")
    jts = JobTypes(tmp_path, interval=0)
    cat = jts.current()
    assert list(cat.by_name) == ["A"] and cat.get("A").executable == "a"
    reasons = {p.file: p.reason for p in cat.problems}
    assert "not well-formed" in reasons["b.xml"]
    assert "already defined in a.xml" in reasons["c.xml"]

    write(tmp_path / "b.xml", "<jobType><name>B</name><executable>b</executable><type>batch</type></jobType>")
    (tmp_path / "c.xml").unlink()
    time.sleep(0.01)
    cat = jts.current()
    assert sorted(cat.by_name) == ["A", "B"] and not cat.problems


def test_shipped_job_types_load_cleanly_and_follow_the_schema():
    schema = etree.XMLSchema(etree.parse(str(SCHEMA)))
    cat = JobTypes(ROOT / "jobtypes").current()
    assert not cat.problems
    assert len(cat.by_name) >= 8
    for path in (ROOT / "jobtypes").glob("*.xml"):
        doc = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True))
        assert schema.validate(doc), (path.name, schema.error_log)


def test_resources_for_a_cluster():
    jt = parse_jobtype(
        b"<jobType><name>Big</name><executable>big</executable><type>batch</type>\n"
        b'<resources cpus="4" memory="8G" time="02:00:00" gpus="a100:1" partition="gpu"/></jobType>',
        "big.xml",
    )
    assert dict(jt.resources) == {
        "cpus": "4",
        "memory": "8G",
        "time": "02:00:00",
        "gpus": "a100:1",
        "partition": "gpu",
    }
    etree.XMLSchema(etree.parse(str(SCHEMA))).assertValid(etree.fromstring(
        b'<jobType><name>B</name><executable>b</executable><type>batch</type><resources cpus="4" time="90"/></jobType>'
    ))  # fmt: skip


@pytest.mark.parametrize(
    "attrs, reason",
    [
        ('cpus="0"', "cpus must be a whole number of CPUs, not '0'"),
        ('memory="lots"', "memory must be a size such as 4000M or 8G, not 'lots'"),
        ('time="--wrap=x"', "time must be minutes, or [days-]hours:minutes:seconds"),
        ('nodes="2"', "<resources> has no attribute 'nodes'"),
    ],
)
def test_bad_resources_name_file_line_and_field(attrs, reason):
    with pytest.raises(XMLFileError) as e:
        parse_jobtype(
            f"<jobType><name>B</name><executable>b</executable><type>batch</type>\n<resources {attrs}/></jobType>".encode(),
            "b.xml",
        )
    assert str(e.value).startswith("b.xml:2: ") and reason in str(e.value)
