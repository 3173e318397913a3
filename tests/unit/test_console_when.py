"""The console's date filter (ijpweb.console.when): what an operator types in a date
field or a script sends, parsed exactly or refused naming the field."""

from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ijpweb.console import when
from ijpweb.inputs import InputError

MOMENTS = st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(9000, 1, 1), timezones=st.just(UTC))


@given(MOMENTS)
def test_a_time_in_iso_8601_is_that_moment(moment):
    assert when(moment.isoformat(), "since") == moment
    assert when(moment.replace(tzinfo=None).isoformat(), "since") == moment  # no zone: UTC


@given(MOMENTS, st.integers(-14 * 60, 14 * 60))
def test_a_time_with_an_offset_is_the_same_moment_in_utc(moment, minutes):
    local = moment.astimezone(timezone(timedelta(minutes=minutes)))
    got = when(local.isoformat(), "until")
    assert got == moment and got.tzinfo == UTC


@given(st.dates(min_value=date(1900, 1, 1), max_value=date(9000, 1, 1)))
def test_a_date_is_its_midnight_or_for_until_the_next(day):
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    assert when(day.isoformat(), "since") == start
    assert when(day.isoformat(), "until", end_of_day=True) == start + timedelta(days=1)


@given(st.text(max_size=40))
def test_anything_else_is_refused_naming_the_field(raw):
    try:
        got = when(raw, "since")
    except InputError as e:
        assert e.field == "since" and e.status == 400
    else:  # what parsed is a real moment in UTC, or nothing for a blank field
        assert got is None if not raw.strip() else got.tzinfo == UTC


@pytest.mark.parametrize("raw", ["yesterday", "2026-13-01", "2026-11-31", "\x00", "2026-11-30T25:00"])
def test_examples_refused(raw):
    with pytest.raises(InputError, match="since"):
        when(raw, "since")


def test_the_last_day_cannot_end():
    with pytest.raises(InputError, match="until"):
        when("9999-12-31", "until", end_of_day=True)
    assert when(None, "since") is None and when("  ", "since") is None
