"""The facility's branding from the ini: its name, logo and accent colour.

``ijp.site.name``   shown in the header and the page titles (default "ICAT Job Portal").
``ijp.site.logo``   a PNG, JPEG, GIF, WebP or SVG file (at most 512 KB), read once at start
                    and served by the portal itself at /brand/logo (never a path from a
                    request, so nothing else on disk can be reached through it).
``ijp.site.accent`` a CSS hex colour, ``#rgb`` or ``#rrggbb``.

The accent and contrast: links, primary buttons (white text on the accent) and the
current page in the navigation use the accent as text or under text, so it must reach
WCAG AA's 4.5:1 against white. A colour that is too light is kept as given for decoration
only (the stripe above the header) and darkened, keeping its hue, until it reaches 4.5:1
for every text use (also on the accent's pale tint, behind secondary buttons);
``text_accent`` is that darker colour. Nothing is refused for being
light; a value that is not a colour stops start-up with a message naming the key.

Pure: no Pyramid imports.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from .proxy import SettingError

DEFAULT_NAME = "ICAT Job Portal"
DEFAULT_ACCENT = "#0b5cad"
MAX_LOGO_BYTES = 512 * 1024
MAX_NAME_LENGTH = 80
AA_TEXT = 4.5  # WCAG 2 AA contrast for normal text

LOGO_TYPES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".webp": "image/webp",
    ".svg": "image/svg+xml",
}
# the first bytes each raster type starts with (an SVG is checked for its <svg element)
_MAGIC = {
    "image/png": (b"\x89PNG\r\n\x1a\n",),
    "image/jpeg": (b"\xff\xd8\xff",),
    "image/gif": (b"GIF87a", b"GIF89a"),
    "image/webp": (b"RIFF",),
}

_HEX = re.compile(r"#([0-9a-fA-F]{3}|[0-9a-fA-F]{6})")


class BrandingError(SettingError):
    """A branding setting that cannot be used; the message names the key."""


@dataclass(frozen=True)
class Branding:
    name: str = DEFAULT_NAME
    accent: str = DEFAULT_ACCENT  # as given (normalised to #rrggbb): decoration
    text_accent: str = DEFAULT_ACCENT  # at least 4.5:1 on white: text, buttons
    accent_soft: str = "#e8f0fa"  # a pale tint for backgrounds behind accent text
    accent_given: bool = False
    logo: bytes = b""
    logo_type: str = ""

    @property
    def stylesheet(self) -> str:
        """The CSS that sets the accent's custom properties (served at /brand.css)."""
        return (
            f":root{{--accent:{self.text_accent};--accent-line:{self.accent};"
            f"--accent-soft:{self.accent_soft};}}\n"
        )


def parse_colour(value: str, key: str = "ijp.site.accent") -> tuple[int, int, int]:
    text = (value or "").strip()
    m = _HEX.fullmatch(text)
    if not m:
        raise BrandingError(f"{key} must be a CSS hex colour such as #0b5cad or #06c, not {text!r}")
    digits = m.group(1)
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return int(digits[0:2], 16), int(digits[2:4], 16), int(digits[4:6], 16)


def hex_colour(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def luminance(rgb: tuple[int, int, int]) -> float:
    """WCAG 2's relative luminance."""

    def channel(c: int) -> float:
        s = c / 255
        return s / 12.92 if s <= 0.03928 else ((s + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: tuple[int, int, int], b: tuple[int, int, int] = (255, 255, 255)) -> float:
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def text_colour(
    rgb: tuple[int, int, int], minimum: float = AA_TEXT, background: tuple[int, int, int] = (255, 255, 255)
) -> tuple[int, int, int]:
    """The colour itself when it reaches ``minimum`` against ``background`` (white), else
    the same hue darkened (scaled towards black) just enough to reach it."""
    if contrast(rgb, background) >= minimum:
        return rgb
    low, high = 0.0, 1.0  # scale factors: low always passes (black), high fails
    for _ in range(30):
        mid = (low + high) / 2
        if contrast(tuple(int(c * mid) for c in rgb), background) >= minimum:
            low = mid
        else:
            high = mid
    return tuple(int(c * low) for c in rgb)


def tint(rgb: tuple[int, int, int], amount: float = 0.9) -> tuple[int, int, int]:
    """The colour mixed with white (``amount`` of white)."""
    return tuple(round(c + (255 - c) * amount) for c in rgb)


def read_logo(path: str, key: str = "ijp.site.logo") -> tuple[bytes, str]:
    suffix = os.path.splitext(path)[1].lower()
    kind = LOGO_TYPES.get(suffix)
    if kind is None:
        raise BrandingError(f"{key} must be a .png, .jpg, .gif, .webp or .svg file, not {path!r}")
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_LOGO_BYTES + 1)
    except OSError as e:
        raise BrandingError(f"{key}: cannot read {path!r}: {e.strerror or e}") from None
    if len(data) > MAX_LOGO_BYTES:
        raise BrandingError(f"{key}: {path!r} is larger than {MAX_LOGO_BYTES // 1024} KB")
    if kind == "image/svg+xml":
        if b"<svg" not in data[:4096]:
            raise BrandingError(f"{key}: {path!r} is not an SVG image")
    elif not data.startswith(_MAGIC[kind]):
        raise BrandingError(f"{key}: {path!r} is not a {suffix[1:].upper()} image")
    return data, kind


def parse(raw) -> Branding:
    """Branding from the ini's ``ijp.site.*`` keys (raises BrandingError)."""
    name = " ".join((raw.get("ijp.site.name") or "").split()) or DEFAULT_NAME
    if len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise BrandingError(f"ijp.site.name must be printable text of at most {MAX_NAME_LENGTH} characters")
    given = (raw.get("ijp.site.accent") or "").strip()
    rgb = parse_colour(given) if given else parse_colour(DEFAULT_ACCENT)
    # the accent's text reaches 4.5:1 on its pale tint (secondary buttons, the current
    # console section), and so on white too
    soft = tint(rgb)
    text = text_colour(rgb, AA_TEXT, soft)
    logo, logo_type = b"", ""
    path = (raw.get("ijp.site.logo") or "").strip()
    if path:
        logo, logo_type = read_logo(path)
    return Branding(
        name=name,
        accent=hex_colour(rgb),
        text_accent=hex_colour(text),
        accent_soft=hex_colour(soft),
        accent_given=bool(given) and hex_colour(rgb) != DEFAULT_ACCENT,
        logo=logo,
        logo_type=logo_type,
    )
