#!/usr/bin/env python3
"""A simulated scan, to show a job's results: output files in $JOB_OUTPUT_DIR (a CSV
table, a PNG plot, a JSON summary, a text report) and output variables (OUT_NAME=value
lines) in the file $JOB_OUTPUT_VARS. The standard library only."""

import argparse
import json
import math
import os
import struct
import sys
import zlib

parser = argparse.ArgumentParser()
parser.add_argument("--points", type=int, default=200)
args, _rest = parser.parse_known_args()
n = max(10, min(args.points, 100_000))
out = os.environ.get("JOB_OUTPUT_DIR") or os.path.join(os.getcwd(), "output")
os.makedirs(os.path.join(out, "images"), exist_ok=True)

centre, width, height = 42.0, 3.5, 1000.0
rows = []
for i in range(n):
    x = 100.0 * i / (n - 1)
    background = 20.0 + 0.3 * x
    ripple = 8.0 * math.sin(i * 1.7) * math.cos(i * 0.31)  # deterministic "noise"
    intensity = background + height * math.exp(-(((x - centre) / width) ** 2) / 2) + ripple
    rows.append((x, intensity, background))
print(f"Scanned {n} points", flush=True)

with open(os.path.join(out, "scan.csv"), "w", encoding="utf-8") as f:
    f.write("angle,intensity,background\n")
    for x, y, b in rows:
        f.write(f"{x:.3f},{y:.3f},{b:.3f}\n")

peak = max(rows, key=lambda r: r[1] - r[2])
half = (peak[1] - peak[2]) / 2
above = [x for x, y, b in rows if y - b >= half]
fwhm = (max(above) - min(above)) if above else 0.0
summary = {
    "points": n,
    "peak": {"angle": round(peak[0], 3), "intensity": round(peak[1], 3)},
    "fwhm": round(fwhm, 3),
}
with open(os.path.join(out, "summary.json"), "w", encoding="utf-8") as f:
    json.dump(summary, f)
with open(os.path.join(out, "report.txt"), "w", encoding="utf-8") as f:
    f.write(
        f"Scan of {n} points\nPeak at {peak[0]:.2f} degrees, intensity {peak[1]:.1f}\nFWHM {fwhm:.2f} degrees\n"
    )


def png(width: int, height: int, pixels: list[bytearray]) -> bytes:
    """A greyscale PNG of ``pixels`` (rows of bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    raw = b"".join(b"\x00" + bytes(row) for row in pixels)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


W, H = 400, 200
image = [bytearray([255] * W) for _ in range(H)]
top = max(y for _, y, _ in rows)
for x, y, _ in rows:
    col = min(W - 1, int(x / 100.0 * (W - 1)))
    for row in range(H - 1 - int(y / top * (H - 1)), H):
        image[row][col] = 40
with open(os.path.join(out, "images", "scan.png"), "wb") as f:
    f.write(png(W, H, image))

variables = os.environ.get("JOB_OUTPUT_VARS")
if variables:
    with open(variables, "w", encoding="utf-8") as f:
        f.write(
            f"OUT_POINTS={n}\nOUT_PEAK_ANGLE={peak[0]:.3f}\nOUT_PEAK_INTENSITY={peak[1]:.1f}\nOUT_FWHM={fwhm:.3f}\n"
        )
else:
    print("JOB_OUTPUT_VARS is not set: no output variables written", file=sys.stderr)
print("Finished", flush=True)
