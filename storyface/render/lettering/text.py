"""Setting text: wrapping words into a balloon's oval (or a caption's rectangle) and measuring the result.

Balloon text is wrapped the way letterers do it: short lines at the top and bottom, long ones in
the middle, so the block has the lozenge shape that fills an oval. The oval is then the
smallest-area ellipse that contains every line's measured box plus padding, so text can never
leave its balloon. ``text_boxes`` is the one place that decides where each line is drawn; the
planner, the drawing and the tests all use it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from PIL import ImageFont

from ..fonts import Style, lettering_font, line_height
from .model import Balloon, Box, Caption, Kind

Font = ImageFont.FreeTypeFont

KIND_STYLE: dict[str, Style] = {"speech": "bold", "thought": "bold", "whisper": "italic"}
CAPTION_STYLE: Style = "regular"
PAD_X_EM = 0.45  # room between the widest text line and the oval, in font sizes
PAD_Y_EM = 0.30  # room above the first and below the last line
CAPTION_PAD_EM = 0.40  # narration box padding on every side
PROFILE_STRETCH = 1.3  # wrap lines to an oval this much taller than the text block (a lozenge)
MAX_LINES = 12  # more lines than this is a paragraph, not a balloon
ELLIPSE_SEARCH = 48  # semi-axis candidates tried when fitting the smallest oval
MAX_ASPECT = 4.0  # flatter ovals read as a bar, not a balloon
MIN_ASPECT = 0.8  # balloons taller than this (width / height) read as a column of words
STROKE_PT = 0.9  # outline weight: ~1 pt reads as a firm ink line in print without looking heavy
THOUGHT_BUMP = 0.14  # depth of a thought cloud's scallops, relative to the oval's short semi-axis


def stroke_px(dpi: float) -> int:
    return max(2, round(STROKE_PT * dpi / 72))


def outline_extent(kind: Kind | str, a: float, b: float, dpi: float) -> float:
    """How far the drawn outline reaches outside the text oval (half the stroke, plus a cloud's bumps)."""
    extra = THOUGHT_BUMP * min(a, b) if kind == "thought" else 0.0
    return extra + stroke_px(dpi) / 2 + 1


def body_axes(kind: Kind | str, box: Box, dpi: float) -> tuple[float, float]:
    """The text oval's semi-axes (a, b) recovered from a balloon's outer box (inverse of ``outline_extent``)."""
    half_w, half_h = (box[2] - box[0]) / 2, (box[3] - box[1]) / 2
    edge = stroke_px(dpi) / 2 + 1
    half_w, half_h = half_w - edge, half_h - edge
    if kind != "thought":
        return half_w, half_h
    k = THOUGHT_BUMP
    if half_w >= half_h:  # b is the short axis: half_h = b (1 + k), half_w = a + k b
        b = half_h / (1 + k)
        return half_w - k * b, b
    a = half_w / (1 + k)
    return a, half_h - k * a


@dataclass(frozen=True)
class Shape:
    """One way to set a balloon's text: the lines and the outer box size they need."""

    lines: tuple[str, ...]
    width: int
    height: int

    @property
    def aspect(self) -> float:
        return self.width / self.height


# --------------------------------------------------------------------------- wrapping


def split_long_word(word: str, font: Font, max_width: float) -> list[str]:
    """A word wider than the widest allowed line, cut into pieces that fit (never clipped)."""
    pieces, piece = [], ""
    for char in word:
        if piece and font.getlength(piece + char) > max_width:
            pieces.append(piece)
            piece = ""
        piece += char
    return pieces + [piece] if piece else pieces


def wrap_greedy(
    words: Sequence[str], font: Font, width_of_line: Callable[[int], float], widths: Sequence[float] | None = None
) -> list[str]:
    """Greedy fill: line j takes words while its width stays within ``width_of_line(j)``.

    A line's width is its words' widths plus its spaces (``widths``: the words' measured widths,
    measured here when not given); kerning never crosses a space in Comic Neue, so this equals
    measuring the line, without measuring every candidate line again.
    """
    widths = [font.getlength(w) for w in words] if widths is None else widths
    space = font.getlength(" ")
    lines: list[str] = []
    line, line_w = "", 0.0
    for word, w in zip(words, widths):
        if not line:
            line, line_w = word, w
        elif line_w + space + w <= width_of_line(len(lines)):
            line, line_w = f"{line} {word}", line_w + space + w
        else:
            lines.append(line)
            line, line_w = word, w
    return lines + [line] if line else lines


def _words(text: str, font: Font, max_width: float) -> list[str]:
    words = []
    for word in text.split():
        words += split_long_word(word, font, max_width) if font.getlength(word) > max_width else [word]
    return words


def _profile(k: int, lh: float, half_width: float, max_width: float) -> Callable[[int], float]:
    """Line widths that follow an oval PROFILE_STRETCH times taller than k lines (a lozenge), capped at ``max_width``."""
    b = k * lh / 2 * PROFILE_STRETCH

    def width(j: int) -> float:
        y = abs(-k * lh / 2 + (j + 0.5) * lh) + lh / 2  # the line's edge farthest from the centre
        return min(max_width, 2 * half_width * math.sqrt(max(0.0, 1 - (y / b) ** 2)))

    return width


def lozenge_wraps(text: str, font: Font, max_width: float) -> list[list[str]]:
    """Distinct wrappings of ``text`` into 1, 2, 3 ... lines, each shaped to fill an oval."""
    words = _words(text, font, max_width)
    if not words:
        return []
    lh = line_height(font)
    widths = [font.getlength(w) for w in words]
    longest = max(widths)
    total = sum(widths) + font.getlength(" ") * (len(words) - 1)
    wraps: dict[tuple[str, ...], list[str]] = {}
    for k in range(1, MAX_LINES + 1):
        lo, hi = longest / 2, max(longest, total) + lh  # half-widths of the profile oval
        best = None
        for _ in range(14):  # binary search: the narrowest oval profile that sets the text in <= k lines
            mid = (lo + hi) / 2
            lines = wrap_greedy(words, font, _profile(k, lh, mid, max_width), widths)
            if len(lines) <= k:
                best, hi = lines, mid
            else:
                lo = mid
        if best is not None:
            wraps.setdefault(tuple(best), best)
        if best is not None and len(best) == len(words):
            break  # one word per line: narrower wrappings do not exist
    return list(wraps.values())


# --------------------------------------------------------------------------- fitting ovals


def _line_corners(widths: Sequence[float], lh: float, pad_x: float, pad_y: float) -> list[tuple[float, float]]:
    """(|x|, |y|) of each padded line box's outer corner, relative to the block centre."""
    k = len(widths)
    corners = []
    for j, w in enumerate(widths):
        top = -k * lh / 2 + j * lh - (pad_y if j == 0 else 0)
        bottom = -k * lh / 2 + (j + 1) * lh + (pad_y if j == k - 1 else 0)
        corners.append((w / 2 + pad_x, max(abs(top), abs(bottom))))
    return corners


def fit_ellipse(corners: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Smallest-area axis-aligned ellipse (a, b) centred at 0 containing every (±x, ±y) corner.

    For a given b each corner needs a >= x / sqrt(1 - (y/b)^2); the area a*b is minimised over a
    geometric range of b (a 1-D search: the curve is smooth and has a single minimum).
    """
    y_max = max(y for _, y in corners)
    best = (math.inf, 0.0, 0.0)
    for i in range(ELLIPSE_SEARCH):
        b = y_max * (1.02 * 4.0 ** (i / (ELLIPSE_SEARCH - 1)))  # 1.02 .. 4.08 times the block's half-height
        a = max(x / math.sqrt(1 - (y / b) ** 2) for x, y in corners)
        if a / b > MAX_ASPECT:
            continue
        if a * b < best[0]:
            best = (a * b, a, b)
    if best[0] == math.inf:  # a one-line sliver: take the roundest allowed
        b = y_max * 1.02
        while max(x / math.sqrt(1 - (y / b) ** 2) for x, y in corners) / b > MAX_ASPECT:
            b *= 1.1
        return max(x / math.sqrt(1 - (y / b) ** 2) for x, y in corners), b
    return best[1], best[2]


@lru_cache(maxsize=2048)
def balloon_shapes(text: str, kind: Kind, size_px: int, dpi: float, max_size: tuple[int, int]) -> tuple[Shape, ...]:
    """Every sensible way to set ``text`` in a balloon at ``size_px``, each no larger than ``max_size``
    and not much taller than wide (cached: re-lettering after an edit re-sets only the edited line)."""
    font = lettering_font(size_px, KIND_STYLE[kind])
    pad_x, pad_y = PAD_X_EM * size_px, PAD_Y_EM * size_px
    lh = line_height(font)
    shapes = []
    for lines in lozenge_wraps(text, font, max_size[0] * 0.7):
        a, b = fit_ellipse(_line_corners([font.getlength(x) for x in lines], lh, pad_x, pad_y))
        ext = outline_extent(kind, a, b, dpi)
        width, height = math.ceil(2 * (a + ext)), math.ceil(2 * (b + ext))
        if width <= max_size[0] and height <= max_size[1] and width >= MIN_ASPECT * height:
            shapes.append(Shape(tuple(lines), width, height))
    return tuple(shapes)


def caption_shape(text: str, size_px: int, max_width: int, panel_width: int | None = None) -> Shape:
    """Narration set left-aligned in a box about ``max_width`` wide (greedy wrap, as book text is).

    Words are only cut when one is wider than the whole ``panel_width`` (default ``max_width``).
    """
    font = lettering_font(size_px, CAPTION_STYLE)
    pad = CAPTION_PAD_EM * size_px
    inner = max_width - 2 * pad
    lines = wrap_greedy(_words(text, font, (panel_width or max_width) - 2 * pad), font, lambda _: inner)
    width = max(font.getlength(x) for x in lines) + 2 * pad
    return Shape(tuple(lines), math.ceil(width), math.ceil(len(lines) * line_height(font) + 2 * pad))


# --------------------------------------------------------------------------- where each line goes


def line_origins(item: Balloon | Caption) -> list[tuple[str, tuple[float, float]]]:
    """Each wrapped line and the (x, y) it is drawn at with anchor "la" (left, ascender).

    Balloon lines are centred on the balloon's centre; caption lines are left-aligned inside its padding.
    """
    font = item_font(item)
    lh = line_height(font)
    left, top, right, bottom = item.box
    block_top = (top + bottom) / 2 - len(item.lines) * lh / 2
    pad = CAPTION_PAD_EM * item.font_size
    origins = []
    for j, line in enumerate(item.lines):
        x = left + pad if isinstance(item, Caption) else (left + right) / 2 - font.getlength(line) / 2
        origins.append((line, (x, block_top + j * lh)))
    return origins


def text_boxes(item: Balloon | Caption) -> list[tuple[str, tuple[float, float, float, float]]]:
    """Each wrapped line and its ink box (left, top, right, bottom) in panel pixels."""
    font = item_font(item)
    placed = []
    for line, (x, y) in line_origins(item):
        x0, y0, x1, y1 = font.getbbox(line, anchor="la")
        placed.append((line, (x + x0, y + y0, x + x1, y + y1)))
    return placed


def item_font(item: Balloon | Caption) -> Font:
    style = CAPTION_STYLE if isinstance(item, Caption) else KIND_STYLE[item.kind]
    return lettering_font(item.font_size, style)
