"""What the benchmarks here share: a portal's settings on a database of their own with the
demo catalog loaded, and the p50/p95 timing they print."""

import statistics
import time
from pathlib import Path

import transaction
from pyramid.paster import get_appsettings

from ijpweb.catalog import demo
from ijpweb.models import get_engine, get_session_factory, get_tm_session, upgrade

ROOT = Path(__file__).resolve().parent.parent


def settings_for(url: str, tmp: Path, **extra: str) -> dict:
    """testing.ini's settings on the database ``url``, writing under ``tmp``."""
    settings = dict(get_appsettings(str(ROOT / "testing.ini")))
    settings.update({"sqlalchemy.url": url, "ijp.batch.local.dir": str(tmp / "jobs"), "ijp.filestore": str(tmp / "files"),
                     "auth.secret": "bench", "ijp.ids.key": "bench-ids-key-not-for-production",
                     "ijp.jobtypes_dir": str(ROOT / "jobtypes"), "ijp.datasettypes_dir": str(ROOT / "datasettypes"),
                     **extra})  # fmt: skip
    return settings


def demo_database(settings: dict):
    """The engine of ``settings``' database, migrated, with the demo catalog loaded once."""
    engine = get_engine(settings)
    upgrade(engine, str(ROOT / "testing.ini"))
    tm = transaction.TransactionManager(explicit=True)
    with tm:
        db = get_tm_session(get_session_factory(engine), tm)
        if demo.is_empty(db):
            demo.load(db)
    return engine


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


def goal(
    name: str, value: float, target: float, unit: str = "", *, at_least: bool = False, width: int = 60
) -> bool:
    """Print a measured figure beside its goal (at most ``target``, or at least with
    ``at_least``) and whether it is met; return whether it is. Ratios are measured in one
    run (both sides interleaved) so that the machine's noise cancels."""
    met = value >= target if at_least else value <= target
    sign = "≥" if at_least else "≤"
    print(f"{name:{width}} {value:9.2f}{unit:3}  goal {sign} {target:g}{unit}   {'met' if met else 'MISSED'}")
    return met
