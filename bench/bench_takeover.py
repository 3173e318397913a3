"""How long the background work goes unled after its leader is SIGKILLed (issue 11, point 2).

Two processes campaign for the leads as portal processes do (ijpweb.leaders.Leaders, a
campaign every ijpweb.scheduler.CAMPAIGN_SECONDS); the leader is killed with SIGKILL and
the time until the other one leads is measured, ROUNDS times (the kill falls anywhere in
the survivor's campaign interval, so the spread is about that interval). PostgreSQL only:
IJP_BENCH_DATABASE_URL (bench/run.sh starts a throw-away cluster); SKIPPED without it.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import statistics
import sys
import time

ROUNDS = 10
TASKS = ("harvest", "keepalive", "purge")


def campaigner(url: str, out) -> None:
    import sqlalchemy as sa

    from ijpweb.leaders import Leaders
    from ijpweb.scheduler import CAMPAIGN_SECONDS

    leaders = Leaders(sa.create_engine(url), "bench-takeover", TASKS)
    led = False
    while True:
        now = all(leaders.campaign().values())
        if now and not led:
            out.put((os.getpid(), time.time()))
        led = now
        time.sleep(CAMPAIGN_SECONDS)


def main() -> int:
    url = os.environ.get("IJP_BENCH_DATABASE_URL", "")
    if not url.startswith("postgresql"):
        print("SKIPPED: set IJP_BENCH_DATABASE_URL to a PostgreSQL database (bench/run.sh does)")
        return 0
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    procs = {}

    def start():
        p = ctx.Process(target=campaigner, args=(url, out), daemon=True)
        p.start()
        procs[p.pid] = p

    start()
    leader, _ = out.get(timeout=60)
    start()
    times = []
    for _ in range(ROUNDS):
        time.sleep(1.5)  # the other is campaigning, at a random phase
        os.kill(leader, signal.SIGKILL)
        killed = time.time()
        procs.pop(leader).join()
        new, at = out.get(timeout=60)
        times.append(at - killed)
        leader = new
        start()  # the next round's rival
    for p in procs.values():
        p.kill()
    print(f"takeover after SIGKILL, {ROUNDS} rounds: min {min(times):.2f} s, "
          f"median {statistics.median(times):.2f} s, max {max(times):.2f} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
