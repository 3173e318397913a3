"""The job list's CSV export (ijpweb.jobs.export): whatever a job's names and tags hold,
the file parses back to the same cells, one row per job, and no cell starts with what a
spreadsheet runs as a formula (hypothesis)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from ijpweb.jobs.actions import ExportRow
from ijpweb.jobs.export import FORMULA, csv_rows, inputs_text, safe_cell
from ijpweb.states import JobStatus

TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)


def row(i: int, name: str, tag: str) -> ExportRow:
    when = datetime(2026, 6, 1, tzinfo=UTC)
    return ExportRow(
        i, 7, "Date", JobStatus.COMPLETED, when, when, when, [(i, name)], [(i + 1, name, name)], [tag]
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(TEXT, TEXT), min_size=1, max_size=5))
def test_any_names_and_tags_parse_back_and_never_start_a_formula(values):
    jobs = [row(k + 1, name, tag) for k, (name, tag) in enumerate(values)]
    text = b"".join(csv_rows([jobs[:2], jobs[2:]])).decode("utf-8-sig")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert len(rows) == 1 + len(jobs)
    for job, cells in zip(jobs, rows[1:], strict=True):
        assert not any(c.startswith(FORMULA) for c in cells), cells
        assert cells[7] == safe_cell(inputs_text(job)) and cells[8] == safe_cell(job.tags[0])
        assert cells[0] == str(job.id) and cells[6] == "0"


@given(TEXT)
def test_a_cell_is_kept_or_quoted_never_changed_otherwise(value):
    cell = safe_cell(value)
    assert cell == ("'" + value if value.startswith(FORMULA) else value)
