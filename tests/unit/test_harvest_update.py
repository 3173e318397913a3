"""The harvest's decision, on its own (ijpweb.batch.harvest.update): what a backend's state
changes in a job as the harvest reads it. Whatever the job and the state, writing the
change and reading the job again leaves nothing to change (a steady cycle writes
nothing), and nothing is written where nothing differs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from ijpweb.batch import BatchState
from ijpweb.batch.harvest import Seen, update
from ijpweb.states import JobStatus

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
times = st.none() | st.integers(0, 10_000).map(lambda m: NOW - timedelta(minutes=m))
small = st.none() | st.integers(0, 64)
hosts = st.none() | st.sampled_from(["node1", "node[1-4]", "gpu7"])
reasons = st.none() | st.sampled_from(["cancelled", "out of memory", "exit code 3", "JobHeldUser"])
statuses = st.sampled_from(list(JobStatus))

seens = st.builds(Seen, statuses, small, reasons, st.booleans(), st.booleans(), small, small, hosts)
states = st.builds(BatchState, statuses, small, reasons, times, times, small, small, hosts)


def after(was: Seen, values: dict) -> Seen:
    return Seen(
        values["status"], values["exit_code"], values["reason"],
        was.unstarted and values["started_at"] is None, was.unfinished and values["finished_at"] is None,
        values["nodes"], values["cores"], values["hosts"],
    )  # fmt: skip


@given(seens, states)
def test_a_written_change_is_not_written_again(was, state):
    values = update(was, state, NOW)
    if values is not None:
        assert update(after(was, values), state, NOW) is None


@given(seens, states)
def test_the_state_is_copied_and_the_place_kept_once_known(was, state):
    values = update(was, state, NOW)
    now = after(was, values) if values is not None else was
    assert (now.status, now.exit_code, now.reason) == (state.status, state.exit_code, state.reason)
    if state.nodes or state.cores or state.hosts:
        assert (now.nodes, now.cores, now.hosts) == (state.nodes, state.cores, state.hosts)
    else:
        assert (now.nodes, now.cores, now.hosts) == (was.nodes, was.cores, was.hosts)
    if values is not None:
        # a time already stored is never replaced; an end time only for an ended job
        assert values["started_at"] is None or was.unstarted
        assert values["finished_at"] is None or (was.unfinished and not state.status.live)
        if was.unfinished and not state.status.live:
            assert values["finished_at"] == (state.finished_at or NOW)


def test_the_same_state_again_is_no_change():
    was = Seen(JobStatus.RUNNING, None, None, False, True, 1, 4, "node1")
    assert (
        update(was, BatchState(JobStatus.RUNNING, started_at=NOW, nodes=1, cores=4, hosts="node1"), NOW)
        is None
    )
    assert update(was, BatchState(JobStatus.RUNNING), NOW) is None  # the place is kept
    assert update(was, BatchState(JobStatus.HELD), NOW)["status"] == JobStatus.HELD
