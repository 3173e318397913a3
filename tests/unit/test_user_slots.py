"""The per-user cap on concurrent catalog statements (ijp.catalog.user_queries): real
threads, no mocks."""

from __future__ import annotations

import threading

import pytest

from ijpweb.catalog import QueryBusyError
from ijpweb.catalog.embedded import UserSlots


def test_a_user_past_the_cap_is_refused_while_others_and_the_holder_go_on():
    slots = UserSlots()
    entered, leave = threading.Barrier(3), threading.Event()

    def hold():
        with slots.hold("db/carol", 2):
            entered.wait()
            leave.wait()

    threads = [threading.Thread(target=hold) for _ in range(2)]
    for t in threads:
        t.start()
    entered.wait()
    try:
        assert slots.running("db/carol") == 2
        busy = r"for db/carol \(ijp.catalog.user_queries = 2\)"
        with pytest.raises(QueryBusyError, match=busy), slots.hold("db/carol", 2, wait=0):
            pass
        with slots.hold("db/bob", 2, wait=0):  # another user is not counted with carol
            assert slots.running("db/bob") == 1
        with slots.hold("db/carol", 0, wait=0):  # 0: no limit
            pass
    finally:
        leave.set()
        for t in threads:
            t.join()
    assert slots.running("db/carol") == 0
    with slots.hold("db/carol", 2, wait=0):
        assert slots.running("db/carol") == 1


def test_a_held_slot_is_reentrant_in_its_thread_and_freed_after_an_error():
    slots = UserSlots()
    with pytest.raises(RuntimeError), slots.hold("db/carol", 1, wait=0):
        with slots.hold("db/carol", 1, wait=0):  # a create's own reads: no second slot
            assert slots.running("db/carol") == 1
        raise RuntimeError("the statement failed")
    assert slots.running("db/carol") == 0


def test_a_short_wait_takes_the_slot_one_of_the_users_statements_frees():
    slots = UserSlots()
    held, release = threading.Event(), threading.Event()

    def hold():
        with slots.hold("db/carol", 1):
            held.set()
            release.wait()

    t = threading.Thread(target=hold)
    t.start()
    held.wait()
    threading.Timer(0.05, release.set).start()
    with slots.hold("db/carol", 1, wait=30):  # (it ends as soon as the other ends)
        assert slots.running("db/carol") == 1
    t.join()
