#!/usr/bin/env python3
"""A hostile job, for the tests only: tries to read, list and write what no job may, to
connect where it has no permission, and to leave its sandbox; prints one JSON report of
what it managed. The standard library only."""

import argparse
import hashlib
import json
import os
import socket
import subprocess

parser = argparse.ArgumentParser()
parser.add_argument("--targets", required=True)
args, _ = parser.parse_known_args()
targets = json.loads(args.targets)
report = {"read": {}, "list": {}, "write": {}, "own": {}, "escape": {}}


def attempt(kind, path, action):
    try:
        report[kind][path] = action(path)
    except OSError as e:
        report[kind][path] = f"refused: {e.strerror}"


def read(path):
    with open(path, "rb") as fh:
        return f"read {len(fh.read(1 << 20))} bytes"


def write(path):
    with open(path, "w") as fh:
        fh.write("planted by a hostile job\n")
    return "written"


for path in targets["read"]:
    attempt("read", path, read)
for path in targets["list"]:
    attempt("list", path, lambda p: sorted(os.listdir(p)))
for path in targets["write"]:
    attempt("write", path, write)
host, port = targets["connect"]
try:
    socket.create_connection((host, port), timeout=3).close()
    report["connect"] = "connected"
except OSError as e:
    report["connect"] = f"refused: {e.strerror or e}"
# a user namespace of its own, to unmount what hides /etc/shadow; a sysctl; root's files
for name, argv in {
    "userns": [
        "unshare",
        "--user",
        "--map-root-user",
        "--mount",
        "sh",
        "-c",
        "umount /etc/shadow && cat /etc/shadow",
    ],
    "sysctl": ["sh", "-c", "echo 1 > /proc/sys/vm/drop_caches"],
    "setuid": ["su", "-c", "id"],
}.items():
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
        report["escape"][name] = "ok" if res.returncode == 0 else f"refused: {res.stderr.strip()[-200:]}"
    except OSError as e:
        report["escape"][name] = f"refused: {e.strerror}"
# what it may do: write its own directories
for name in ("JOB_WORK_DIR", "JOB_OUTPUT_DIR", "HOME", "TMPDIR"):
    path = os.path.join(os.environ.get(name, "/tmp"), f"mine-{name}.txt")  # noqa: S108
    attempt("own", path, write)
report["uid"] = os.getuid()
report["pid"] = os.getpid()
session = os.environ.get("IJP_SESSION_ID")
report["session"] = (
    hashlib.sha256(session.encode()).hexdigest() if session else None
)  # not the session itself
report["env"] = sorted(os.environ)
print(json.dumps(report))
