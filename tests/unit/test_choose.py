"""Choosing a backend by estimate, and account families."""

import threading
import time

import pytest

from ijpweb.batch import BatchError, JobSpec
from ijpweb.families import OPEN, FamilyError, parse
from ijpweb.jobs.submission import choose_backend
from ijpweb.xmlfiles import XMLFileError

SPEC = JobSpec(1, "db/alice", "true", ())


class Answers:
    """A backend that answers an estimate after ``delay`` seconds (or fails)."""

    def __init__(self, minutes=None, delay=0.0, fail=False):
        self.minutes, self.delay, self.fail = minutes, delay, fail
        self.asked = threading.Event()

    def estimate(self, spec):
        self.asked.set()
        time.sleep(self.delay)
        if self.fail:
            raise ConnectionError("connection refused")
        return self.minutes


def test_one_backend_is_used_without_asking():
    only = Answers(fail=True)
    assert choose_backend({"only": only}, SPEC) == "only"
    assert not only.asked.is_set()


def test_lowest_estimate_wins_and_failing_or_late_ones_are_skipped():
    backends = {
        "broken": Answers(fail=True),
        "slow": Answers(minutes=0, delay=10),
        "busy": Answers(minutes=30),
        "free": Answers(minutes=2),
        "silent": Answers(minutes=None),
    }
    start = time.monotonic()
    assert choose_backend(backends, SPEC, deadline=0.5) == "free"
    assert time.monotonic() - start < 3  # the slow one is not waited for
    assert all(b.asked.is_set() for b in backends.values())  # all were asked at once


def test_none_answering_is_a_clear_error():
    with pytest.raises(
        BatchError, match="no batch backend gave an estimate within 0.3 s; nothing was submitted"
    ):
        choose_backend({"a": Answers(fail=True), "b": Answers(minutes=1, delay=5)}, SPEC, deadline=0.3)


FAMILIES = b"""<families default="batch">
    <family name="ingest"><allowed pattern="db/ingester"/><allowed pattern="simple/.*"/></family>
    <family name="batch"/>
</families>"""


def test_families():
    fam = parse(FAMILIES, "families.xml")
    fam.check(None, "db/alice")  # the default family is open
    fam.check("ingest", "db/ingester")
    fam.check("ingest", "simple/root")
    with pytest.raises(FamilyError, match="db/alice is not allowed to use family 'ingest'"):
        fam.check("ingest", "db/alice")
    with pytest.raises(FamilyError, match="not allowed"):
        fam.check("ingest", "db/ingester2")  # patterns match the whole name
    with pytest.raises(FamilyError, match="family 'nope' is not known"):
        fam.check("nope", "db/alice")
    OPEN.check("anything", "anyone")


def test_bad_families_files_are_reported():
    with pytest.raises(XMLFileError, match="default family 'x' is not defined"):
        parse(b"<families default='x'><family name='batch'/></families>", "f.xml")
    with pytest.raises(XMLFileError, match="bad pattern"):
        parse(b"<families><family name='a'><allowed pattern='('/></family></families>", "f.xml")
