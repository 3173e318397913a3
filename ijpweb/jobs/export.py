"""A user's filtered job list as a file: CSV (safe to open in a spreadsheet) or JSON,
written row by row from :func:`ijpweb.jobs.actions.export_pages` so that a list of any
length streams in bounded memory. No Pyramid here."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator

from ..models import Job, as_utc

COLUMNS = ("id", "job_type", "status", "submitted", "started", "ended", "duration_seconds", "inputs", "tags",
           "submission")  # fmt: skip
FORMULA = ("=", "+", "-", "@", "\t", "\r")  # a spreadsheet reads a cell starting so as a formula


def _iso(value) -> str | None:
    return as_utc(value).isoformat() if value else None


def inputs_text(job: Job) -> str:
    """A job's inputs by name (its id where no name was recorded), one line for a cell."""
    names = [f"dataset {n or i}" for i, n in job.named_datasets]
    names += [f"datafile {n or i}" + (f" ({d})" if d else "") for i, n, d in job.named_datafiles]
    return "; ".join(names)


def job_record(job: Job) -> dict:
    """One job's row of the export (what the CSV's columns and the JSON's objects hold)."""
    started, ended = job.started_at, job.finished_at
    duration = (as_utc(ended) - as_utc(started)).total_seconds() if started and ended else None
    return {
        "id": job.id,
        "job_type": job.job_type,
        "status": job.status.value,
        "submitted": _iso(job.submitted_at),
        "started": _iso(started),
        "ended": _iso(ended),
        "duration_seconds": duration,
        "datasets": [{"id": i, "name": n or None} for i, n in job.named_datasets],
        "datafiles": [{"id": i, "name": n or None, "dataset": d or None} for i, n, d in job.named_datafiles],
        "tags": job.tags,
        "submission": job.submission_id,
    }


def safe_cell(value) -> str:
    """A value as a CSV cell a spreadsheet shows as text: one starting with = + - @ (or a
    tab or carriage return) gets a leading ' so that it is never run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA) else text


def csv_rows(pages: Iterable[list[Job]]) -> Iterator[bytes]:
    """The header, then a chunk of CSV lines per page of jobs (UTF-8 with a BOM, so that a
    spreadsheet reads the names right)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    yield ("\ufeff" + buffer.getvalue()).encode()
    for page in pages:
        buffer.seek(0)
        buffer.truncate()
        for job in page:
            r = job_record(job)
            duration = r["duration_seconds"]
            writer.writerow([safe_cell(v) for v in (
                r["id"], r["job_type"], r["status"], r["submitted"], r["started"], r["ended"],
                "" if duration is None else f"{duration:g}", inputs_text(job), " ".join(r["tags"]), r["submission"],
            )])  # fmt: skip
        yield buffer.getvalue().encode()


def json_rows(pages: Iterable[list[Job]]) -> Iterator[bytes]:
    """A JSON array of job objects (:func:`job_record`), written a page at a time."""
    yield b"["
    first = True
    for page in pages:
        parts = []
        for job in page:
            parts.append(("" if first else ",") + "\n" + json.dumps(job_record(job), ensure_ascii=False))
            first = False
        yield "".join(parts).encode()
    yield b"\n]\n"
