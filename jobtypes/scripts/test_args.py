#!/usr/bin/env python3
"""Print every argument received, one per line, as the IJP demo's test_args.py did."""

import os
import sys

print(f"{len(sys.argv) - 1} argument(s):")
for i, arg in enumerate(sys.argv[1:], 1):
    print(f"argv[{i}] = {arg!r}")
ids = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in sys.argv[1:] if a.startswith("--") and "=" in a}
print("datasetIds =", ids.get("--datasetIds", "not supplied"))
print("datafileIds =", ids.get("--datafileIds", "not supplied"))
has_session = "IJP_SESSION_ID" in os.environ or "--sessionId" in ids
print("ICAT sessionId", "provided" if has_session else "not provided")
