"""What the bounded parsing of request bodies costs (issue 10, point 7).

ijpweb.inputs.loads reads every JSON body /api/v1 and /icat take: it measures the
nesting first (without parsing, so a 5000-deep body cannot reach a RecursionError),
parses strictly, then checks every string and key for NUL and lone surrogates. This
times it against plain json.loads on the bodies a client sends (a submission, a
1000-dataset submission, an /icat create of 1000 datafiles) and on the largest the API
takes (1 MiB of numbers, of short strings, of nesting), best of 5 rounds.

Usage: .venv/bin/python bench/bench_inputs.py
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ijpweb import inputs  # noqa: E402

BODIES = {
    "a submission (300 B)": json.dumps(
        {
            "job_type": "Test Options",
            "datasets": [27, 28],
            "mode": "each",
            "tags": ["run-7", "calib"],
            "options": {"Index": "3", "Title": "a title", "Channels": ["1", "2"], "Unmix channels": True},
        }
    ),  # fmt: skip
    "1000 datasets (8 KB)": json.dumps({"job_type": "Date", "datasets": list(range(10**6, 10**6 + 1000))}),
    "/icat: 1000 datafiles (160 KB)": json.dumps(
        [
            {
                "Datafile": {
                    "name": f"file-{i:05d}.tif",
                    "fileSize": 1 << 20,
                    "location": f"0000/{i}",
                    "dataset": {"id": 27},
                    "datafileFormat": {"id": 3},
                }
            }
            for i in range(1000)
        ]
    ),  # fmt: skip
    "1 MiB of numbers": "[" + ",".join(["123456"] * 149_000) + "]",
    "1 MiB of short strings": json.dumps(["abc"] * 149_000),
    "1 MiB nested 32 deep, repeated": "[" + ",".join(["[" * 31 + "1" + "]" * 31] * 15_800) + "]",
}


def best(fn, rounds: int = 5) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    print(f"{'body':34} {'bytes':>9} {'json.loads':>11} {'inputs.loads':>13} {'ratio':>6}")
    for name, body in BODIES.items():
        data = body.encode()
        assert len(data) <= inputs.MAX_JSON_BYTES, name
        plain = best(lambda d=data: json.loads(d))
        bounded = best(lambda d=data: inputs.loads(d, "body"))
        print(
            f"{name:34} {len(data):>9} {plain * 1e3:>9.2f}ms {bounded * 1e3:>11.2f}ms {bounded / plain:>6.1f}"
        )
    refused = ("[" * (1 << 20)).encode()
    took = best(lambda: _refuse(refused))
    print(
        f"{'1 MiB of [ (refused: too deep)':34} {len(refused):>9} {'RecursionError':>11} {took * 1e3:>11.2f}ms"
    )


def _refuse(data: bytes) -> None:
    try:
        inputs.loads(data, "body")
    except inputs.InputError:
        return
    raise AssertionError("a 1 MiB nest was read")


if __name__ == "__main__":
    main()
