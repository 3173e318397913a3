#!/usr/bin/env python3
"""Count, sleeping in between; the output grows while the job runs."""

import argparse
import sys
import time

parser = argparse.ArgumentParser()
parser.add_argument("--count", type=int, required=True)
parser.add_argument("--sleep", type=float, required=True)
args, rest = parser.parse_known_args()
print("Supplied args:", " ".join(sys.argv[1:]), flush=True)
for i in range(1, args.count + 1):
    print(f"Count {i}: sleeping for {args.sleep:g} seconds", flush=True)
    time.sleep(args.sleep)
print("Finished", flush=True)
