"""Jinja2: templates under ijpweb/templates, filters the pages share."""

import shlex
from datetime import UTC, datetime
from functools import lru_cache

from markupsafe import Markup, escape, soft_str

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
    a time older than a week is its date. The exact time goes beside it (``rel``)."""
    if value is None:
        return ""
    return _ago_utc(as_utc(value), as_utc(now) if now is not None else datetime.now(UTC))


def _ago_utc(value: datetime, now: datetime, day: str | None = None) -> str:
    seconds = (now - value).total_seconds()
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
    return day or value.astimezone(UTC).strftime("%Y-%m-%d")


# The pieces every page shares (templates/_macros.jinja2 exports them as badge, rel and
# meter) and a job's inputs in short (jobs/_inputs.jinja2's inputs_short), as functions
# returning Markup rather than Jinja macros: a job list's page calls them for each of up to
# 200 rows, and a macro call costs several times what the function does. Their output is
# what the macros gave, character for character (tests/unit/test_templating_pieces.py
# renders the macros they replace beside them); every value is escaped as {{ }} would.


@lru_cache(maxsize=64)  # (a handful of statuses)
def badge(status) -> Markup:
    """A status badge, its colour from its class and its text: ``badge(job.status.value)``."""
    return Markup(f'<span class="badge s-{escape(soft_str(status).lower())}">{escape(status)}</span>')  # noqa: S704 - escaped


def rel(value, now: datetime | None = None) -> Markup:
    """A relative time ("5 min ago") in a ``<time>`` with the exact UTC time on hover;
    nothing for no time. ``now``: naive UTC (a list's rows ask with one)."""
    if not value:
        return Markup("")
    # in naive UTC (as SQLite gives it back) and formatted once: a fifth of _iso's, _when's
    # and _ago's work, and their text
    utc = value if value.tzinfo is None else value.astimezone(UTC).replace(tzinfo=None)
    if utc.year < 1000:  # (strftime's %Y does not pad it: as the filters show it)
        iso, when, day = _iso(utc), _when(utc), utc.strftime("%Y-%m-%d")
    else:
        text = utc.isoformat(" ", "seconds")  # YYYY-MM-DD HH:MM:SS
        day = text[:10]
        iso, when = f"{day}T{text[11:]}Z", f"{text} UTC"
    ago = _ago_utc(utc, now or datetime.now(UTC).replace(tzinfo=None), day)
    return Markup(f'<time datetime="{iso}" title="{when}">{ago}</time>')  # noqa: S704 - digits and words


def meter(done, failed, live, total) -> Markup:
    """A stacked done / failed / live bar of a total, with its text: ``meter(3, 1, 2, 6)``.
    SVG widths are attributes (no style=), so it passes a strict Content-Security-Policy."""
    done, failed, live, total = done or 0, failed or 0, live or 0, total or 0
    whole = total if total > 0 else 1
    wd = round(100.0 * done / whole, 2)
    wf = round(100.0 * failed / whole, 2)
    wl = round(100.0 * live / whole, 2)
    return Markup(  # noqa: S704 - numbers, escaped
        '<span class="meter">\n'
        '<svg viewBox="0 0 100 10" preserveAspectRatio="none" aria-hidden="true" focusable="false">'
        '<rect class="m-track" x="0" y="0" width="100" height="10"/>'
        f'<rect class="m-done" x="0" y="0" width="{wd}" height="10"/>'
        f'<rect class="m-failed" x="{wd}" y="0" width="{wf}" height="10"/>'
        f'<rect class="m-live" x="{round(wd + wf, 2)}" y="0" width="{wl}" height="10"/></svg>\n'
        f'<span class="meter-text"><span class="k-done">{escape(done)} done</span> · '
        f'<span class="k-failed">{escape(failed)} failed</span> · '
        f'<span class="k-live">{escape(live)} live</span> of {escape(total)}</span>\n'
        "</span>"
    )


def inputs_short(job, most: int = 2) -> Markup:
    """A job's inputs in a row of the job list: the first ``most`` by name (an older job's
    by id), "+ N more" and every one on hover; "none" without any."""
    # (every name and id escaped here: the Markup below holds nothing else)
    items = [escape(n) if n else f"dataset {escape(i)}" for i, n in job.named_datasets]
    items += [escape(n) if n else f"datafile {escape(i)}" for i, n, _ in job.named_datafiles]
    if not items:
        return Markup('<span class="muted">none</span>')
    more = f' <span class="muted">+ {len(items) - most} more</span>' if len(items) > most else ""
    return Markup(f'<span class="inputs" title="{", ".join(items)}">{", ".join(items[:most])}{more}</span>')  # noqa: S704


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
            "jinja2.globals": "\n".join(
                ["elapsed = ijpweb.templating:_elapsed"]
                + [
                    f"{name}_html = ijpweb.templating:{name}"
                    for name in ("badge", "rel", "meter", "inputs_short")
                ]
            ),
        }
    )
    config.include("pyramid_jinja2")
