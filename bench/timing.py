"""What every benchmark here reports: p50 and p95 of repeated calls, in milliseconds."""

import statistics
import time


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def timed(name: str, call, rounds: int, width: int = 44) -> None:
    """Call once to warm up, then ``rounds`` times; print the p50 and p95."""
    call()
    times = []
    for _ in range(rounds):
        t = time.perf_counter()
        call()
        times.append((time.perf_counter() - t) * 1000)
    print(
        f"{name:{width}} p50 {statistics.median(times):7.1f} ms   p95 {percentile(times, 95):7.1f} ms   ({rounds})"
    )
