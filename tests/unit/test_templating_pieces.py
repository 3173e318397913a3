"""badge, rel, meter and inputs_short are Python functions returning Markup (fix R: the job
list calls them for each row, and Jinja macros cost several times as much). Their output
must stay what the macros they replaced gave, character for character, for any value:
the macros' text is kept here and rendered beside the functions, in an environment set up
as the portal's (autoescape, trim_blocks, lstrip_blocks, the same filters)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jinja2 import DictLoader, Environment
from markupsafe import Markup

from ijpweb import templating
from ijpweb.models import Job
from ijpweb.states import JobStatus

# templates/_macros.jinja2 and jobs/_inputs.jinja2 before fix R (commit 8a54dd2)
MACROS = """\
{% macro badge(status) -%}
<span class="badge s-{{ status|lower }}">{{ status }}</span>
{%- endmacro %}
{% macro rel(value) -%}
{% if value %}<time datetime="{{ value|iso }}" title="{{ value|when }}">{{ value|ago }}</time>{% endif %}
{%- endmacro %}
{% macro meter(done, failed, live, total) -%}
{%- set done = done or 0 -%}{%- set failed = failed or 0 -%}{%- set live = live or 0 -%}
{%- set total = total or 0 -%}
{%- set whole = total if total > 0 else 1 -%}
{%- set wd = (100.0 * done / whole)|round(2) -%}
{%- set wf = (100.0 * failed / whole)|round(2) -%}
{%- set wl = (100.0 * live / whole)|round(2) -%}
<span class="meter">
<svg viewBox="0 0 100 10" preserveAspectRatio="none" aria-hidden="true" focusable="false"><rect class="m-track" x="0" y="0" width="100" height="10"/><rect class="m-done" x="0" y="0" width="{{ wd }}" height="10"/><rect class="m-failed" x="{{ wd }}" y="0" width="{{ wf }}" height="10"/><rect class="m-live" x="{{ (wd + wf)|round(2) }}" y="0" width="{{ wl }}" height="10"/></svg>
<span class="meter-text"><span class="k-done">{{ done }} done</span> · <span class="k-failed">{{ failed }} failed</span> · <span class="k-live">{{ live }} live</span> of {{ total }}</span>
</span>
{%- endmacro %}
"""
INPUTS = """\
{% macro _dataset(i, name) -%}
{% if name %}{{ name }}{% else %}dataset {{ i }}{% endif %}
{%- endmacro %}
{% macro _datafile(i, name, ds) -%}
{% if name %}{{ name }}{% else %}datafile {{ i }}{% endif %}
{%- endmacro %}
{% macro inputs_short(job, most=2) -%}
{%- set items = [] -%}
{%- for i, n in job.named_datasets %}{% do items.append(_dataset(i, n)) %}{% endfor -%}
{%- for i, n, d in job.named_datafiles %}{% do items.append(_datafile(i, n, d)) %}{% endfor -%}
{%- if items -%}
<span class="inputs" title="{{ items|join(', ') }}">{{ items[:most]|join(', ') }}{% if items|length > most %} <span class="muted">+ {{ items|length - most }} more</span>{% endif %}</span>
{%- else %}<span class="muted">none</span>{% endif -%}
{%- endmacro %}
"""

NOW = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)


class Frozen(datetime):
    @classmethod
    def now(cls, tz=None):
        return NOW if tz is not None else NOW.replace(tzinfo=None)


@pytest.fixture(scope="module")
def env():
    e = Environment(
        loader=DictLoader({"m": MACROS, "i": INPUTS}),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=["jinja2.ext.do"],
    )
    e.filters.update({name: getattr(templating, f"_{name}") for name in ("when", "iso", "ago")})
    return e


@pytest.fixture(autouse=True)
def frozen(monkeypatch):
    """One "now" for the macros' ago filter and for rel (both read templating.datetime)."""
    monkeypatch.setattr(templating, "datetime", Frozen)


def macro(env, template, name):
    return getattr(env.get_template(template).module, name)


texts = st.text(alphabet=st.characters(codec="utf-8"), max_size=30)
statuses = st.one_of(st.sampled_from(list(JobStatus)), st.sampled_from([s.value for s in JobStatus]), texts)


@settings(max_examples=300, deadline=None)
@given(status=statuses)
def test_badge_is_the_macros_output(env, status):
    out = templating.badge(status)
    assert isinstance(out, Markup) and out == macro(env, "m", "badge")(status)


def test_a_badge_escapes_its_status():
    assert templating.badge('<b class="x">') == (
        '<span class="badge s-&lt;b class=&#34;x&#34;&gt;">&lt;b class=&#34;x&#34;&gt;</span>'
    )


zones = st.sampled_from([None, UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-9, minutes=-30))])
times = st.one_of(
    # around "now": every wording of ago (the future, seconds, minutes, hours, days, a date)
    st.timedeltas(min_value=timedelta(days=-3), max_value=timedelta(days=30)).map(lambda d: NOW - d),
    st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)).map(
        lambda d: d.replace(tzinfo=UTC)
    ),
)


@settings(max_examples=500, deadline=None)
@given(value=times, zone=zones)
def test_rel_is_the_macros_output(env, value, zone):
    """Naive (UTC, as SQLite gives them back) or in any zone, any year."""
    value = value.replace(tzinfo=None) if zone is None else value.astimezone(zone)
    out = templating.rel(value)
    assert isinstance(out, Markup) and out == macro(env, "m", "rel")(value)


@pytest.mark.parametrize("value", [None, ""])
def test_rel_of_no_time_is_nothing(env, value):
    assert templating.rel(value) == macro(env, "m", "rel")(value) == ""


counts = st.one_of(st.none(), st.integers(min_value=-5, max_value=10**7))


@settings(max_examples=500, deadline=None)
@given(done=counts, failed=counts, live=counts, total=counts)
def test_meter_is_the_macros_output(env, done, failed, live, total):
    out = templating.meter(done, failed, live, total)
    assert isinstance(out, Markup) and out == macro(env, "m", "meter")(done, failed, live, total)


ids = st.integers(min_value=1, max_value=2**53)
names = st.one_of(st.just(""), texts, st.sampled_from(["<script>alert(1)</script>", "a \"b\" & 'c'"]))


@st.composite
def jobs(draw):
    """A Job (the model, not saved) with datasets and datafiles, some named, some not."""
    datasets = draw(st.lists(st.tuples(ids, names), max_size=5, unique_by=lambda t: t[0]))
    datafiles = draw(st.lists(st.tuples(ids, names, names), max_size=5, unique_by=lambda t: t[0]))
    recorded = draw(st.booleans())
    return Job(
        dataset_ids=[i for i, _ in datasets],
        datafile_ids=[i for i, *_ in datafiles],
        input_names={
            "datasets": [[i, n] for i, n in datasets if n],
            "datafiles": [list(f) for f in datafiles if f[1]],
        }
        if recorded
        else None,
    )


@settings(max_examples=300, deadline=None)
@given(job=jobs(), most=st.integers(min_value=0, max_value=4))
def test_inputs_short_is_the_macros_output(env, job, most):
    out = templating.inputs_short(job, most)
    assert isinstance(out, Markup) and out == macro(env, "i", "inputs_short")(job, most)


def test_a_name_cannot_break_out_of_the_title():
    job = Job(
        dataset_ids=[1, 2, 3],
        datafile_ids=[],
        input_names={"datasets": [[1, '" onmouseover="x'], [2, "<b>"]]},
    )
    assert templating.inputs_short(job) == (
        '<span class="inputs" title="&#34; onmouseover=&#34;x, &lt;b&gt;, dataset 3">&#34; onmouseover=&#34;x, '
        '&lt;b&gt; <span class="muted">+ 1 more</span></span>'
    )
