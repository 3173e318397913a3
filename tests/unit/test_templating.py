"""The shared filters: relative times and their exact value."""

from datetime import UTC, datetime, timedelta

import pytest

from ijpweb.templating import _ago, _iso

NOW = datetime(2026, 11, 30, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("delta", "text"),
    [
        (timedelta(seconds=5), "just now"),
        (timedelta(seconds=-5), "just now"),
        (timedelta(minutes=5, seconds=59), "5 min ago"),
        (timedelta(hours=3, minutes=1), "3 h ago"),
        (timedelta(days=1, hours=1), "1 day ago"),
        (timedelta(days=6), "6 days ago"),
        (timedelta(days=8), "2026-11-22"),
        (timedelta(minutes=-5), "in the future"),
    ],
)
def test_ago(delta, text):
    assert _ago(NOW - delta, now=NOW) == text


def test_naive_times_are_utc():
    assert _ago(datetime(2026, 11, 30, 11, 0, 0), now=NOW) == "1 h ago"
    assert _iso(datetime(2026, 11, 30, 11, 0, 0)) == "2026-11-30T11:00:00Z"
    assert _iso(None) == _ago(None) == ""
