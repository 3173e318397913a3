"""Issue 13, point 1: the stylesheet's text colours reach WCAG AA (4.5:1) against the
background they are drawn on: every status badge (one per JobStatus, colour and text),
muted text, errors and notices, the meter's labels, and white on the default accent."""

import re
from pathlib import Path

import pytest

from ijpweb.branding import AA_TEXT, DEFAULT_ACCENT, contrast, parse_colour
from ijpweb.states import JobStatus

CSS = (Path(__file__).resolve().parents[2] / "ijpweb" / "static" / "ijp.css").read_text()
ROOT_VARS = dict(re.findall(r"--([a-z0-9-]+):\s*(#[0-9a-fA-F]{3,6})", CSS.split("}", 1)[0]))


def _colour(value: str) -> tuple[int, int, int]:
    value = value.strip()
    m = re.fullmatch(r"var\(--([a-z0-9-]+)\)", value)
    return parse_colour(ROOT_VARS[m.group(1)] if m else value)


def _rule(selector: str) -> dict[str, str]:
    m = re.search(r"(?m)^" + re.escape(selector) + r"\s*\{([^}]*)\}", CSS)
    assert m, f"no rule for {selector}"
    return dict(
        (k.strip(), v.strip()) for k, v in (d.split(":", 1) for d in m.group(1).split(";") if ":" in d)
    )


@pytest.mark.parametrize("status", list(JobStatus))
def test_every_status_has_a_readable_badge(status):
    rule = _rule(f".s-{status.value.lower()}")
    fg, bg = _colour(rule["color"]), _colour(rule["background"])
    assert contrast(fg, bg) >= AA_TEXT, (status, rule)
    assert contrast(fg) >= AA_TEXT  # also on white (the text of the count beside it)


@pytest.mark.parametrize(("fg", "bg"), [
    ("muted", "bg"), ("muted", "bg-soft"), ("muted", "bg-zebra"), ("fg", "bg-soft"), ("bad", "bad-soft"),
    ("ok", "ok-soft"), ("warn", "warn-soft"), ("live", "bg"), ("accent", "accent-soft"), ("accent", "bg-zebra"),
])  # fmt: skip
def test_text_colours_on_their_backgrounds(fg, bg):
    assert contrast(_colour(f"var(--{fg})"), _colour(f"var(--{bg})")) >= AA_TEXT


def test_white_on_the_default_accent():
    assert ROOT_VARS["accent"] == DEFAULT_ACCENT
    assert contrast((255, 255, 255), parse_colour(DEFAULT_ACCENT)) >= AA_TEXT


def test_the_check_can_fail():
    assert contrast(parse_colour("#f5a623"), parse_colour("#ffffff")) < AA_TEXT
