"""The lettering font shipped with the package: Comic Neue (SIL Open Font License 1.1).

Loaded by package path only: never a download and never a system font lookup, so a page letters
the same on every machine. A missing shipped font is a packaging bug, not a user error, so it
raises ``FileNotFoundError`` rather than falling back to some other face.

Sizes are given in points at a print resolution (``pt * dpi / 72`` pixels), because legibility
is a physical size on paper or screen, not a pixel count.
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import Literal

from PIL import ImageFont

from ..errors import InputError

Style = Literal["regular", "bold", "italic"]
FONT_FILES: dict[str, str] = {
    "regular": "ComicNeue-Regular.otf",
    "bold": "ComicNeue-Bold.otf",
    "italic": "ComicNeue-Italic.otf",
}
FONT_NAME = "Comic Neue"
POINTS_PER_INCH = 72.0
MIN_FONT_PX = 4  # below this FreeType draws unreadable smudges at any resolution
NOTDEF_PROBE = "\ue000"  # a private-use code point no text font maps: it draws the .notdef box


def font_bytes(style: Style = "regular") -> bytes:
    """The font file's bytes, read from the installed package (wheel, sdist or checkout)."""
    if style not in FONT_FILES:
        raise InputError(f"unknown font style {style!r}; choose one of {', '.join(FONT_FILES)}")
    path = resources.files("storyface") / "data" / "fonts" / FONT_FILES[style]
    if not path.is_file():
        raise FileNotFoundError(
            f"the lettering font {FONT_FILES[style]} is missing from the storyface package ({path}); "
            "reinstall storyface (package data data/fonts/*)"
        )
    return path.read_bytes()


def points_to_px(points: float, dpi: float) -> int:
    """Font size in pixels for ``points`` at ``dpi``, e.g. 9 pt at 300 dpi -> 38 px."""
    return max(MIN_FONT_PX, round(points * dpi / POINTS_PER_INCH))


@lru_cache(maxsize=128)
def lettering_font(size_px: int, style: Style = "bold") -> ImageFont.FreeTypeFont:
    """Comic Neue at ``size_px`` pixels; cached because pages ask for the same few sizes again and again."""
    import io

    if size_px < MIN_FONT_PX:
        raise InputError(f"font size {size_px} px is too small to draw; use {MIN_FONT_PX} px or more")
    return ImageFont.truetype(io.BytesIO(font_bytes(style)), size_px)


def line_height(font: ImageFont.FreeTypeFont) -> int:
    """Baseline-to-baseline distance: the font's ascent + descent (Comic Neue's own leading is tight,
    about 1.15 em, which is what comic letterers use: balloons stay compact)."""
    ascent, descent = font.getmetrics()
    return ascent + descent


@lru_cache(maxsize=8)
def _notdef(style: Style) -> tuple[tuple[int, int], bytes]:
    mask = lettering_font(32, style).getmask(NOTDEF_PROBE)
    return mask.size, bytes(mask)


def missing_glyphs(text: str, style: Style = "bold") -> list[str]:
    """Characters of ``text`` the font cannot draw (they would come out as empty boxes).

    Comic Neue covers Latin-1/Latin-2/Latin-9 and common punctuation; Cyrillic, Greek, Hebrew,
    Arabic and CJK are not in it. Checked by comparing each character's glyph with the font's
    .notdef glyph at a fixed probe size, which needs nothing beyond Pillow.
    """
    font = lettering_font(32, style)
    notdef = _notdef(style)
    missing = []
    for char in dict.fromkeys(text):
        if char.isspace():
            continue
        mask = font.getmask(char)
        if (mask.size, bytes(mask)) == notdef:
            missing.append(char)
    return missing
