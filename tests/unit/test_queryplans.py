"""tests/queryplans.py reads PostgreSQL's bitmap plans as the planner builds them: a
BitmapAnd narrows if any of its index conditions does, a BitmapOr only if all do (the
console's jobs of one backend in a date range were planned as a BitmapAnd of two indexes
and taken for a full scan)."""

from tests.queryplans import _bitmap_narrows

DATE = {"Node Type": "Bitmap Index Scan", "Index Cond": "((submitted_at >= '2026-01-01'))"}
BACKEND = {"Node Type": "Bitmap Index Scan", "Index Cond": "((backend)::text = 'local'::text)"}
EVERY = {"Node Type": "Bitmap Index Scan", "Index Cond": "(id IS NOT NULL)"}
NONE = {"Node Type": "Bitmap Index Scan"}


def test_an_and_narrows_if_any_part_does_an_or_only_if_all_do():
    assert _bitmap_narrows(DATE) and not _bitmap_narrows(EVERY) and not _bitmap_narrows(NONE)
    assert _bitmap_narrows({"Node Type": "BitmapAnd", "Plans": [DATE, BACKEND]})
    assert _bitmap_narrows({"Node Type": "BitmapAnd", "Plans": [EVERY, BACKEND]})
    assert not _bitmap_narrows({"Node Type": "BitmapAnd", "Plans": [EVERY, NONE]})
    assert _bitmap_narrows({"Node Type": "BitmapOr", "Plans": [DATE, BACKEND]})
    assert not _bitmap_narrows({"Node Type": "BitmapOr", "Plans": [DATE, EVERY]})
    assert not _bitmap_narrows({"Node Type": "BitmapOr", "Plans": []})
