"""Previews in a process of their own (issue 13, carol's findings 3 and 6): what reading an
HDF5 tree in ``python -m ijpweb.hdf5_reader`` (with its rlimits) costs against reading it
in the portal's process, and what the same would cost for a thumbnail.

    .venv/bin/python bench/bench_previews.py [ROUNDS]

Cases, each timed ROUNDS times interleaved (median and worst, wall clock):

1. an ordinary HDF5 file (a NeXus-like tree: 3 groups, 4 datasets, a few attributes):
   in-process ``previews.hdf5_tree`` vs ``datafiles.hdf5_preview`` (the subprocess);
2. carol's crafted file (a committed 700-field compound type shared by 8 datasets x 20
   attributes, 175 KB) through the subprocess, and in-process with the bounded
   description (the old unbounded code gave 6.35 MB of text: see FINDINGS.md);
3. a 1024 x 1024 16-bit TIFF thumbnail in-process (``previews.thumbnail``) vs a bare
   ``python -I -c "import PIL.Image, ijpweb.previews"`` (the least a subprocess per
   thumbnail would add), and a cached thumbnail (a PngCache hit).
"""

from __future__ import annotations

import io
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ijpweb import datafiles, previews  # noqa: E402


def ordinary() -> bytes:
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        e = f.create_group("entry")
        e.attrs["NX_class"] = "NXentry"
        d = e.create_group("data")
        d.create_dataset("stack", data=np.zeros((10, 64, 64), dtype=np.uint8))
        d.create_dataset("time", data=np.arange(10.0))
        i = e.create_group("instrument")
        i.create_dataset("wavelength", data=488.0).attrs["units"] = "nm"
        i.create_dataset("name", data="lightsheet")
    return buf.getvalue()


def crafted() -> bytes:
    dt = np.dtype([(f"f{i:04d}_" + "x" * 20, "i1") for i in range(700)])
    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        f["T"] = dt
        for g in range(8):
            d = f.create_dataset(f"d{g}", shape=(0,), dtype=f["T"])
            for a in range(20):
                d.attrs.create(f"a{a}", data=np.zeros((), dtype=dt), dtype=f["T"])
    return buf.getvalue()


def tiff() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(
        (np.arange(1024 * 1024, dtype=np.uint32) % 65536).astype(np.uint16).reshape(1024, 1024)
    ).save(buf, "TIFF")
    return buf.getvalue()


def _file(data: bytes):
    f = tempfile.TemporaryFile()  # noqa: SIM115 - closed by the caller
    f.write(data)
    f.seek(0)
    return f


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    files = {"ordinary": ordinary(), "crafted": crafted()}
    png = tiff()
    cache = datafiles.PngCache()
    cache.put((1, "d", 160), previews.thumbnail(io.BytesIO(png)))
    cases = {
        "hdf5 ordinary, in-process": lambda: previews.hdf5_tree(io.BytesIO(files["ordinary"])),
        "hdf5 ordinary, subprocess": lambda: _sub(files["ordinary"]),
        "hdf5 crafted, in-process (bounded)": lambda: previews.hdf5_tree(io.BytesIO(files["crafted"])),
        "hdf5 crafted, subprocess": lambda: _sub(files["crafted"]),
        "thumbnail 1024x1024 16-bit TIFF, in-process": lambda: previews.thumbnail(io.BytesIO(png)),
        "python -I + import PIL, ijpweb.previews (a subprocess's floor)": lambda: subprocess.run(
            [sys.executable, "-I", "-c", "import PIL.Image, ijpweb.previews"], check=True
        ),
        "thumbnail from the PngCache": lambda: cache.get((1, "d", 160)),
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(rounds):
        for name, fn in cases.items():
            t = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t) * 1000)
    print(f"{rounds} rounds, interleaved; ms (median / worst)")
    for name, ts in times.items():
        print(f"  {name:66s} {statistics.median(ts):8.2f} / {max(ts):8.2f}")
    out = _sub(files["crafted"])
    print(f"crafted file: {len(files['crafted']):,} bytes, preview text {len(out.text):,} characters")


def _sub(data: bytes):
    with _file(data) as f:
        p = datafiles.hdf5_preview(f, "x.h5")
    assert p.kind == "text", p.message
    return p


if __name__ == "__main__":
    main()
