"""The SLURM backend's lists of ids for sacct (ijpweb.batch.slurm.id_lists): when many jobs
leave the queue at once, their ids go to sacct in as few calls as fit in one argument."""

from hypothesis import given
from hypothesis import strategies as st

from ijpweb.batch.slurm import SACCT_IDS_CHARS, id_lists

slurm_ids = st.lists(
    st.builds(
        lambda job, task: f"{job}_{task}" if task is not None else str(job),
        st.integers(1, 10**9),
        st.none() | st.integers(0, 10**6),
    ),  # fmt: skip
    max_size=300,
)


@given(slurm_ids, st.integers(1, 200))
def test_every_id_once_in_order_and_each_list_within_the_limit(ids, chars):
    lists = id_lists(ids, chars)
    assert [i for text in lists for i in text.split(",")] == ids
    for text in lists:
        assert len(text) <= chars or "," not in text  # only an id longer than the limit goes alone
    assert all(text for text in lists)


@given(slurm_ids, st.integers(1, 200))
def test_as_few_lists_as_fit(ids, chars):
    lists = id_lists(ids, chars)
    for text, following in zip(lists, lists[1:], strict=False):
        assert len(text) + 1 + len(following.split(",")[0]) > chars  # the next id did not fit


def test_twenty_thousand_array_tasks_fit_in_two_arguments_under_the_kernels_limit():
    ids = [f"{1_000_000 + n // 1000}_{n % 1000}" for n in range(20_000)]
    lists = id_lists(ids, SACCT_IDS_CHARS)
    assert len(lists) == 3 and max(len(text.encode()) for text in lists) < 128 * 1024
    assert id_lists([], SACCT_IDS_CHARS) == []
