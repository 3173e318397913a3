"""The parser of sinfo's node lines (ijpweb.batch.slurm.parse_sinfo) and the checks of what
reaches scontrol (node names, drain reasons). The real sinfo/scontrol are in
tests/integration/test_slurm_nodes.py."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ijpweb.batch.slurm import SINFO_FORMAT, Node, drain_reason, node_name, parse_sinfo

NAMES = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True).filter(lambda n: n.upper() != "ALL")
STATES = st.sampled_from(["idle", "mixed", "allocated", "drained", "draining", "down*", "idle~", "completing",
                          "planned", "reserved", "fail", "inval"])  # fmt: skip
REASONS = (
    st.text(st.characters(codec="utf-8").filter(str.isprintable), max_size=80)
    .map(str.strip)
    .filter(lambda r: r.lower() not in ("none", "(null)"))
)


def line(n: Node, idle: int = 0) -> str:
    """A line as sinfo prints SINFO_FORMAT (%N|%T|%C|%O|%E): CPUs as allocated/idle/other/total."""
    load = "N/A" if n.load is None else f"{n.load:.2f}"
    return f"{n.name}|{n.state}|{n.cpus_alloc}/{idle}/0/{n.cpus_total}|{load}|{n.reason or 'none'}"


@st.composite
def nodes(draw):
    total = draw(st.integers(0, 100_000))
    load = draw(st.none() | st.floats(0, 10_000).map(lambda x: round(x, 2)))
    return Node(draw(NAMES), draw(STATES), draw(st.integers(0, total)), total, load, draw(REASONS))


def test_the_format_is_fixed():
    assert SINFO_FORMAT == "%N|%T|%C|%O|%E"


def test_a_typical_listing():
    text = (
        "node01|mixed|8/8/0/16|3.52|none\n"
        "node02|drained|0/16/0/16|0.00|disk check: replace /dev/sdb | ticket 42\n"
        "node03|down*|0/0/16/16|N/A|Not responding\n"
        "node01|mixed|8/8/0/16|3.52|none\n"  # the same node in a second partition
    )
    assert parse_sinfo(text) == [
        Node("node01", "mixed", 8, 16, 3.52, ""),
        Node("node02", "drained", 0, 16, 0.0, "disk check: replace /dev/sdb | ticket 42"),
        Node("node03", "down*", 0, 16, None, "Not responding"),
    ]
    assert [n.drained for n in parse_sinfo(text)] == [False, True, False]


@given(st.lists(nodes(), max_size=20, unique_by=lambda n: n.name))
def test_what_sinfo_prints_is_read_back(listed):
    assert parse_sinfo("\n".join(line(n) for n in listed)) == listed


@given(st.text(max_size=400))
def test_any_text_parses_to_nodes_scontrol_may_be_given(text):
    for n in parse_sinfo(text):
        assert node_name(n.name) == n.name  # never a host list, an option or a separator
        assert n.reason.isprintable() and len(n.reason) <= 300
        assert n.load is None or 0 <= n.load < 1e9
        assert n.cpus_total is None or n.cpus_total >= 0


@given(st.lists(st.sampled_from(["|", "/", "\n", "N/A", "none", "node1", "-1", "nan", "inf", "1e999", " ", "١٢"]),
                max_size=30))  # fmt: skip
def test_fragments_of_the_format_never_crash_it(parts):
    parse_sinfo("".join(parts))


@pytest.mark.parametrize(
    "bad", ["", "node[1-4]", "node1,node2", "-node", "node 1", "n\x00", "ALL", "all", "a" * 65]
)
def test_node_names_for_scontrol_are_one_plain_name(bad):
    with pytest.raises(ValueError):
        node_name(bad)


@pytest.mark.parametrize("bad", ["", "   ", "a\nb", "tab\there", "x" * 201, "\ud800"])
def test_drain_reasons_are_required_printable_and_short(bad):
    with pytest.raises(ValueError):
        drain_reason(bad)


def test_a_reason_keeps_what_slurm_can_record():
    assert drain_reason("  disk check: 'sdb' = failing; see #42  ") == "disk check: 'sdb' = failing; see #42"
