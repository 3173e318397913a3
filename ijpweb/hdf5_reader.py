"""The HDF5 tree of a file, read in a process of its own: ``python -I -m ijpweb.hdf5_reader``
with the file (a regular, seekable file) as its standard input, and the tree as one JSON
object on its standard output: ``{"kind": "text", "text": ..., "notes": [...]}`` or
``{"kind": "none", "message": ...}``; ``{"error": "memory"}`` when it ran out of memory.

libhdf5 parses bytes any member of an investigation may upload: a crafted file that makes
it loop, allocate without end or crash must cost this process, never the portal's. So
the limits are set here, before h5py is imported: address space (RLIMIT_AS), CPU time
(RLIMIT_CPU: SIGXCPU), the size of what it may write (RLIMIT_FSIZE: its output is a file
the parent reads, bounded), no core files. The parent
(:func:`ijpweb.datafiles.hdf5_preview`) adds a wall-clock timeout and a minimal
environment; nothing of the user's but the file's bytes reaches this process.
"""

from __future__ import annotations

import json
import os
import resource
import sys

MEMORY_BYTES = 1 << 30  # address space: Python, numpy and h5py take about 300 MB of it
CPU_SECONDS = 10
OUTPUT_BYTES = 2 << 20  # the tree is at most 256 K characters (previews.MAX_HDF5_TEXT)


def limit() -> None:
    for which, most in (
        (resource.RLIMIT_AS, MEMORY_BYTES),
        (resource.RLIMIT_CPU, CPU_SECONDS),
        (resource.RLIMIT_FSIZE, OUTPUT_BYTES),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(which, (most, most))


def main() -> int:
    limit()
    out = os.fdopen(1, "w", encoding="utf-8", closefd=False)
    try:
        from . import previews

        with os.fdopen(0, "rb", closefd=False) as source:
            p = previews.hdf5_tree(source)
        body = {"kind": p.kind, "text": p.text, "notes": list(p.notes), "message": p.message}
    except MemoryError:
        body = {"error": "memory"}
    json.dump(body, out, ensure_ascii=False)
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
