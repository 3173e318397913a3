"""The throttle's pure parts: which counters an attempt touches, and how long it waits."""

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from ijpweb.throttle import MAX_DELAY, Policy, delay, keys, user_key


@given(st.text(), st.text(), st.one_of(st.none(), st.text()))
def test_any_name_or_address_makes_keys_the_column_holds(authenticator, username, address):
    for key, limit in keys(Policy(), authenticator, username, address):
        assert len(key) <= 300 and limit > 0
        key.encode("utf-8")  # storable: a lone surrogate is hashed, not stored


def test_long_names_differ_by_their_hash_and_short_ones_stay_readable():
    assert user_key("db", "bob") == "user:db/bob"
    assert user_key("db", "x" * 400) != user_key("db", "x" * 399 + "y")


def test_counts_can_be_turned_off():
    assert keys(Policy(max_failures=0, max_address_failures=0), "db", "bob", "10.0.0.1") == []
    assert [k for k, _ in keys(Policy(), "db", "bob", None)] == ["user:db/bob"]


def test_the_wait_doubles_from_the_third_failure_and_is_bounded():
    waits = [delay(Policy(), n).total_seconds() for n in range(1, 12)]
    assert waits[:5] == [0, 0, 2, 4, 8]
    assert waits == sorted(waits) and max(waits) == MAX_DELAY
    assert delay(Policy(slow_after=1), 1) == timedelta(seconds=2)
