"""Fixtures the unit tests share."""

import contextlib

import pytest

from ijpweb.batch import BatchError
from ijpweb.batch.local import LocalBackend


@pytest.fixture
def local(tmp_path):
    """LocalBackend(...) on tmp_path/jobs; its gated jobs (waiting for work/gate) are let
    go and whatever is left is cancelled afterwards, also when a test fails half-way."""
    made = []

    def make(**kw):
        made.append(LocalBackend("local", tmp_path / "jobs", **kw))
        return made[-1]

    yield make
    for b in made[:1]:
        for d in b.root.glob("[0-9]*"):
            with contextlib.suppress(OSError):
                (d / "work" / "gate").touch()
            with contextlib.suppress(BatchError):
                b.cancel(d.name)


def pytest_itemcollected(item):
    """A unit test uses no database under test (at most an SQLite of its own): it runs in
    the SQLite pass only (tests/run.sh's PostgreSQL pass is ``-m "not once"``)."""
    item.add_marker(pytest.mark.once)
