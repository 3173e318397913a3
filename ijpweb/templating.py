"""Jinja2: templates under ijpweb/templates, filters the pages share."""

import shlex
from datetime import UTC, datetime

from .models.jobs import as_utc


def _when(value):
    if value is None:
        return ""
    return as_utc(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds):
    if seconds is None:
        return ""
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h {m:02d}m {s:02d}s" if h else (f"{m}m {s:02d}s" if m else f"{s}s")


def _size(n):
    n = float(n or 0)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def _command(argv):
    """An argv as a reader can see where each argument ends (it never ran in a shell)."""
    return shlex.join(argv)


def _elapsed(start, end=None):
    if start is None:
        return None
    end = end or datetime.now(UTC)
    return (as_utc(end) - as_utc(start)).total_seconds()


def includeme(config):
    settings = config.get_settings()
    settings.update(
        {
            "jinja2.directories": "ijpweb:templates",
            "jinja2.extensions": "jinja2.ext.do",
            "jinja2.trim_blocks": "true",
            "jinja2.lstrip_blocks": "true",
            "jinja2.filters": "\n".join(
                f"{name} = ijpweb.templating:_{name}" for name in ("when", "duration", "size", "command")
            ),
            "jinja2.globals": "elapsed = ijpweb.templating:_elapsed",
        }
    )
    config.include("pyramid_jinja2")
