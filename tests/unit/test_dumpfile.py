"""Reading python-icat's dump files (YAML and XML) against the ICAT schema."""

from collections import Counter
from pathlib import Path

import pytest

from ijpweb.catalog.dumpfile import DumpError, read, read_xml, read_yaml
from ijpweb.catalog.icatschema import entities

DATA = Path(__file__).resolve().parents[1] / "data" / "python-icat"


def summary(path):
    counts = {}
    for line in path.read_text().splitlines()[1:]:  # the first line names the user
        if ":" in line:
            name, n = line.split(":")
            counts[name.strip()] = int(n)
    return counts


def flat(objs):
    def norm(o):
        children = tuple(sorted((f, norm(c)) for f, c in o.children))
        return (
            o.entity,
            o.key,
            tuple(sorted(o.attrs.items(), key=str)),
            tuple(sorted(o.refs.items())),
            children,
        )

    return sorted((norm(o) for o in objs), key=str)


def test_schema_knows_icat():
    es = entities()
    assert len(es) == 53
    ds = es["Dataset"]
    assert ds.relations["investigation"].target == "Investigation"
    assert ds.relations["datafiles"].inverse == "dataset"
    assert es["ParameterType"].attributes["valueType"].values == ("DATE_AND_TIME", "NUMERIC", "STRING")
    assert "createId" in es["Job"].attributes


def test_yaml_and_xml_of_one_dump_read_the_same():
    yaml_objs = read(DATA / "icatdump-5.0.yaml")
    xml_objs = read(DATA / "icatdump-5.0.xml")
    assert flat(yaml_objs) == flat(xml_objs)


def test_every_object_of_the_dump_is_read():
    counts = Counter(o.entity for top in read(DATA / "icatdump-5.0.yaml") for o in top.walk())
    # python-icat's root summary for this dump (tests/data/summary-5), for the types it lists
    expected = summary(DATA / "summary-5")
    for entity in (
        "Investigation",
        "Dataset",
        "Datafile",
        "DatasetParameter",
        "DatafileParameter",
        "User",
        "Rule",
    ):
        assert counts[entity] == expected[entity], entity


@pytest.mark.parametrize("name", ["icatdump-4.4.yaml", "icatdump-6.2.yaml", "icatdump-simple.yaml"])
def test_other_versions_read(name):
    assert read(DATA / name)


@pytest.mark.parametrize(
    "reader, text, position, reason",
    [
        (read_yaml, "---\ndataset:\n  k: {name: x, colour: red}\n", "dataset k", "has no field 'colour'"),
        (read_yaml, "---\nspaceship:\n  k: {}\n", "chunk 1", "unknown entity type"),
        (read_yaml, "---\ndataset:\n  k: {name: [x\n", "line", "not valid YAML"),
        (read_yaml, "---\ndataset:\n  k: {complete: maybe}\n", "dataset k", "not a boolean"),
        (read_xml, b"<icatdata><data>\n<dataset id='k'>\n<startDate>yesterday</startDate></dataset></data></icatdata>", "line 3", "startDate"),
        (read_xml, b"<icatdata><data>\n<dataset id='k'>\n<investigation name='x'/></dataset></data></icatdata>", "line 3", "only ref="),
        (read_xml, b"<icatdata><data><dataset>", "line 1", "not well-formed"),
    ],
)  # fmt: skip
def test_bad_dumps_name_file_position_and_reason(reader, text, position, reason):
    with pytest.raises(DumpError) as e:
        reader(text, "bad.dump")
    assert e.value.file == "bad.dump" and position in e.value.position and reason in e.value.reason


def _escape(value: str) -> str:
    return "".join(c if c.isascii() and c.isalnum() else f"={ord(c):02X}" for c in value)


def _render(parts):
    return "_".join(f"{a}-({_render(v)})" if isinstance(v, list) else f"{a}-{_escape(v)}" for a, v in parts)


def test_unique_keys_parse_back():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from ijpweb.catalog.importer import _parse_key

    names = st.sampled_from(["name", "visitId", "version", "units"])
    values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=12)
    leaf = st.tuples(names, values)
    nested = st.tuples(st.sampled_from(["facility", "investigation"]), st.lists(leaf, min_size=1, max_size=3))
    keys = st.lists(st.one_of(leaf, nested), min_size=1, max_size=4)

    @settings(max_examples=300, deadline=None)
    @given(keys)
    def roundtrip(parts):
        expected = [(a, [list(p) for p in v] if isinstance(v, list) else v) for a, v in parts]
        parsed = _parse_key("Dataset_" + _render(parts))
        assert parsed is not None
        entity, got = parsed
        assert entity == "Dataset"
        assert [(a, [list(p) for p in v] if isinstance(v, list) else v) for a, v in got] == expected

    roundtrip()
    assert _parse_key("Spaceship_name-x") is None and _parse_key("Dataset_name-(x") is None
