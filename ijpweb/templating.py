"""Jinja2: templates under ijpweb/templates, filters the pages share."""

import shlex
from datetime import UTC, datetime

from .models.jobs import as_utc


def _when(value):
    if value is None:
        return ""
    return as_utc(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _iso(value):
    """A time as HTML's ``<time datetime>`` wants it (UTC, to the second)."""
    if value is None:
        return ""
    return as_utc(value).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ago(value, now=None):
    """How long ago, as a person says it: "just now", "5 min ago", "3 h ago", "2 days ago";
    a time older than a week is its date. The exact time goes beside it (``rel`` macro)."""
    if value is None:
        return ""
    now = as_utc(now) if now is not None else datetime.now(UTC)
    seconds = (now - as_utc(value)).total_seconds()
    if seconds < 0:
        return "in the future" if seconds < -60 else "just now"
    for limit, unit, label in (
        (60, 1, None),
        (3600, 60, "min"),
        (86400, 3600, "h"),
        (7 * 86400, 86400, "day"),
    ):
        if seconds < limit:
            if label is None:
                return "just now"
            n = int(seconds // unit)
            return f"{n} {label}{'s' if label == 'day' and n != 1 else ''} ago"
    return as_utc(value).astimezone(UTC).strftime("%Y-%m-%d")


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


def _visible(name):
    """A catalog name (user data) as a reader can trust it: a control, invisible or
    direction-changing character (a bidi override that makes ``report\u202efdp.exe`` show
    as ``reportexe.pdf``, a zero-width space) is shown as U+FFFD. Put it in a <bdi> so that
    a right-to-left name does not reorder the text around it."""
    from .catalog.ids import has_control, invisible

    return "".join("\ufffd" if has_control(c) or invisible(c) else c for c in str(name))


def includeme(config):
    settings = config.get_settings()
    settings.update(
        {
            "jinja2.directories": "ijpweb:templates",
            "jinja2.extensions": "jinja2.ext.do",
            "jinja2.trim_blocks": "true",
            "jinja2.lstrip_blocks": "true",
            "jinja2.filters": "\n".join(
                f"{name} = ijpweb.templating:_{name}"
                for name in ("when", "iso", "ago", "duration", "size", "command", "visible")
            ),
            "jinja2.globals": "elapsed = ijpweb.templating:_elapsed",
        }
    )
    config.include("pyramid_jinja2")
