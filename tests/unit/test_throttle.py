"""The throttle's pure parts: which counters an attempt touches, and how long it waits."""

from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy.orm import Session

from ijpweb.models import LoginFailure, utcnow
from ijpweb.throttle import MAX_DELAY, LoginThrottled, Policy, check, delay, keys, record_failure, user_key


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


def test_a_user_names_lock_is_the_operators_to_tune_as_the_readme_says():
    """Anyone may lock a user name by guessing wrong (the README says so); with
    ijp.login.lock_minutes = 0 only the bounded waits are left, and with
    max_failures = 0 the name is not counted at all."""
    engine = sa.create_engine("sqlite://", poolclass=sa.pool.StaticPool)
    LoginFailure.__table__.create(engine)
    start = utcnow()

    def guess_wrong(policy, times):  # each after the wait the last one asked for
        t = start
        for n in range(1, times + 1):
            record_failure(engine, policy, keys(policy, "db", "bob", None), now=t)
            t += delay(policy, n) + timedelta(seconds=1)
        return t

    for policy, locked in ((Policy(), True), (Policy(lock=timedelta(0)), False)):
        with engine.begin() as conn:
            conn.execute(sa.delete(LoginFailure))
        after = guess_wrong(policy, policy.max_failures)
        with Session(engine) as db:
            if locked:
                with pytest.raises(LoginThrottled, match="locked until"):
                    check(db, policy, keys(policy, "db", "bob", "10.0.0.9"), now=after)  # any address
            else:
                check(db, policy, keys(policy, "db", "bob", "10.0.0.9"), now=after)
    assert keys(Policy(max_failures=0), "db", "bob", None) == []
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    for name in ("ijp.login.max_failures", "ijp.login.lock_minutes", "ijp.login.window_minutes"):
        assert name in readme
    assert "anyone who knows a user name can lock that account" in " ".join(readme.split())
