"""Compose rendered panels into a comic page: grid or strip, borders, wrapped captions, title.

Pure functions of images and text (``compose_page``, ``wrap_text``, ``plan_page``); only
``save_page`` touches the disk, and it writes atomically so a crash never leaves half a page.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from PIL import Image, ImageDraw, ImageFont

from ..errors import InputError
from ..files import write_atomic

log = logging.getLogger(__name__)

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont
Layout = Literal["grid", "strip"]
PAPER = (255, 255, 255)
INK = (0, 0, 0)
NOTICE_INK = (96, 96, 96)
PDF_DPI = 150.0


@lru_cache(maxsize=32)
def load_font(size: int, bold: bool = False) -> Font:
    """DejaVu Sans when the system has it (Pillow searches the font folders), else Pillow's
    built-in scalable font (FreeType, Pillow >= 10.1); never a download."""
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    try:
        return ImageFont.truetype(name, size)
    except OSError:
        log.debug("%s not found on this system; using Pillow's built-in font", name)
        return ImageFont.load_default(size=size)


def _line_height(font: Font) -> int:
    ascent, descent = font.getmetrics() if hasattr(font, "getmetrics") else (font.size, 0)
    return int(ascent + descent + max(1, round(getattr(font, "size", 10) * 0.15)))


def _break_word(word: str, font: Font, max_width: float) -> list[str]:
    """Split a word wider than the line into pieces that fit (at least one character each)."""
    pieces, piece = [], ""
    for char in word:
        if piece and font.getlength(piece + char) > max_width:
            pieces.append(piece)
            piece = ""
        piece += char
    return pieces + [piece] if piece else pieces


def wrap_text(text: str, font: Font, max_width: float) -> list[str]:
    """Greedy word wrap by measured pixel width; explicit newlines start new lines."""
    if max_width <= 0:
        raise InputError(f"caption width must be positive, got {max_width}")
    lines: list[str] = []
    for paragraph in text.splitlines():
        line = ""
        for word in paragraph.split():
            candidate = f"{line} {word}" if line else word
            if font.getlength(candidate) <= max_width:
                line = candidate
                continue
            if line:
                lines.append(line)
            pieces = _break_word(word, font, max_width)
            lines += pieces[:-1]
            line = pieces[-1]
        if line:
            lines.append(line)
    return lines


# --------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class Box:
    left: int
    top: int
    right: int  # exclusive
    bottom: int  # exclusive


@dataclass(frozen=True)
class PagePlan:
    """Where everything goes; ``panels[i]`` is the image area of panel i (inside its border)."""

    size: tuple[int, int]
    panels: list[Box]
    captions: list[Box]  # caption area under each image (zero height when the row has no captions)
    columns: int
    border: int
    gutter: int


def grid_columns(n: int, columns: int | None = None, layout: Layout = "grid") -> int:
    """1 for 1 panel, 2 for 2-4, 3 for 5-9, ...; a strip puts every panel in one row."""
    if layout not in ("grid", "strip"):
        raise InputError(f"unknown page layout {layout!r}; choose 'grid' or 'strip'")
    if columns is not None:
        if columns < 1:
            raise InputError(f"columns must be at least 1, got {columns}")
        return min(columns, n)
    return n if layout == "strip" else math.ceil(math.sqrt(n))


def _fit_width(image: Image.Image, width: int) -> Image.Image:
    image = image.convert("RGB")
    if image.width == width:
        return image
    height = max(1, round(image.height * width / image.width))
    return image.resize((width, height), Image.Resampling.LANCZOS)


def _rows(n: int, columns: int) -> list[range]:
    return [range(start, min(start + columns, n)) for start in range(0, n, columns)]


def plan_page(
    sizes: list[tuple[int, int]], caption_heights: list[int], columns: int, top: int, cell_width: int
) -> PagePlan:
    """Lay cells out row by row: each row as tall as its tallest image and caption, so the
    panels of a row share their top edge and their caption boxes line up; a short last row is centred."""
    border, gutter = max(2, cell_width // 128), max(8, cell_width // 16)
    frame = cell_width + 2 * border
    page_width = 2 * gutter + columns * frame + (columns - 1) * gutter
    panels, captions, y = [], [], top + gutter
    for row in _rows(len(sizes), columns):
        image_h = max(sizes[i][1] for i in row)
        caption_h = max(caption_heights[i] for i in row)
        x = (page_width - (len(row) * frame + (len(row) - 1) * gutter)) // 2
        for i in row:
            left, image_top = x + border, y + border
            panels.append(Box(left, image_top, left + cell_width, image_top + image_h))
            cap_top = image_top + image_h + (border if caption_h else 0)
            captions.append(Box(left, cap_top, left + cell_width, cap_top + caption_h))
            x += frame + gutter
        y = captions[-1].bottom + border + gutter
    return PagePlan((page_width, y), panels, captions, columns, border, gutter)


# --------------------------------------------------------------------------- drawing


def _draw_panel(
    draw: ImageDraw.ImageDraw, page: Image.Image, image: Image.Image, box: Box, cap: Box, border: int
) -> None:
    """Frame around picture + caption box, a rule between them, then the picture itself."""
    frame = (box.left - border, box.top - border, cap.right + border - 1, cap.bottom + border - 1)
    draw.rectangle(frame, outline=INK, width=border)
    if cap.bottom > cap.top:  # the rule between picture and caption
        draw.rectangle((box.left, box.bottom, box.right - 1, cap.top - 1), fill=INK)
    offset = (box.bottom - box.top - image.height) // 2  # a shorter image sits centred in its area
    page.paste(image, (box.left, box.top + offset))


def _text_block(
    draw: ImageDraw.ImageDraw,
    lines: list[str],
    font: Font,
    xy: tuple[int, int],
    fill: tuple[int, int, int],
    width: int | None = None,
) -> None:
    """Lines left-aligned at ``xy``, or centred in ``width`` when given."""
    step = _line_height(font)
    x0, y = xy
    for line in lines:
        x = x0 if width is None else x0 + (width - font.getlength(line)) / 2
        draw.text((x, y), line, font=font, fill=fill)
        y += step


def compose_page(
    images: list[Image.Image],
    captions: list[str],
    title: str | None = None,
    columns: int | None = None,
    caption_font_size: int | None = None,
    notice: str | None = None,
    layout: Layout = "grid",
) -> Image.Image:
    """A comic page: panels in story order, black borders, a caption box under each panel,
    an optional title band on top and a small notice line (e.g. the tiny-model warning) below."""
    if not images:
        raise InputError("a page needs at least one panel image")
    if len(captions) != len(images):
        raise InputError(f"got {len(captions)} captions for {len(images)} panels; give one per panel (may be empty)")
    if caption_font_size is not None and caption_font_size < 6:
        raise InputError(f"caption font size {caption_font_size} is too small to read; use 6 or more")
    cols = grid_columns(len(images), columns, layout)
    cell_w = max(im.width for im in images)
    # 1. Fonts and text, measured before any pixel is placed.
    font = load_font(caption_font_size or max(10, round(cell_w / 24)))
    pad = max(3, font.size // 2)
    caption_lines = [wrap_text(c, font, cell_w - 2 * pad) for c in captions]
    caption_heights = [len(ls) * _line_height(font) + 2 * pad if ls else 0 for ls in caption_lines]
    fitted = [_fit_width(im, cell_w) for im in images]
    # 2. Title band width depends on the page width, which the plan gives; plan once without it.
    title_font = load_font(max(14, round(font.size * 1.6)), bold=True)
    probe = plan_page([im.size for im in fitted], caption_heights, cols, 0, cell_w)
    title_lines = wrap_text(title, title_font, probe.size[0] - 2 * probe.gutter) if title else []
    title_h = len(title_lines) * _line_height(title_font) + (probe.gutter if title_lines else 0)
    plan = plan_page([im.size for im in fitted], caption_heights, cols, title_h, cell_w)
    # 3. Notice line at the bottom.
    notice_font = load_font(max(9, round(font.size * 0.7)))
    notice_lines = wrap_text(notice, notice_font, plan.size[0] - 2 * plan.gutter) if notice else []
    notice_h = len(notice_lines) * _line_height(notice_font)  # sits in the bottom margin's lower half
    # 4. Draw.
    page = Image.new("RGB", (plan.size[0], plan.size[1] + notice_h), PAPER)
    draw = ImageDraw.Draw(page)
    _text_block(draw, title_lines, title_font, (plan.gutter, plan.gutter), INK, plan.size[0] - 2 * plan.gutter)
    for image, lines, box, cap in zip(fitted, caption_lines, plan.panels, plan.captions):
        _draw_panel(draw, page, image, box, cap, plan.border)
        _text_block(draw, lines, font, (cap.left + pad, cap.top + pad), INK)
    _text_block(draw, notice_lines, notice_font, (plan.gutter, plan.size[1] - plan.gutter // 2), NOTICE_INK)
    return page


# --------------------------------------------------------------------------- saving


def _atomic_save(image: Image.Image, path: Path, fmt: str, **params: object) -> Path:
    return write_atomic(path, lambda tmp: image.save(tmp, fmt, **params))


def save_page(page: Image.Image, out: Path, pdf: bool = False) -> list[Path]:
    """Write the page as PNG (and PDF when asked, or when ``out`` ends in .pdf); returns the paths."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in ("", ".png", ".pdf"):
        raise InputError(f"{out.name}: a page is saved as .png (plus .pdf); pick one of those suffixes")
    png = out.with_suffix(".png")
    png.parent.mkdir(parents=True, exist_ok=True)
    written = [_atomic_save(page, png, "PNG")]
    if pdf or suffix == ".pdf":
        written.append(_atomic_save(page.convert("RGB"), png.with_suffix(".pdf"), "PDF", resolution=PDF_DPI))
    return written
