"""Flowing panels onto pages: ``plan_pages`` turns panel sizes into PagePlans (pure; text is measured, not drawn)."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ...errors import InputError
from ..fonts import lettering_font, line_height, points_to_px
from ..lettering.text import wrap_greedy
from .layouts import (
    MAX_SQUEEZE,
    MAX_STRETCH,
    WEBTOON_MAX_IN,
    Layout,
    PagePlan,
    PagePreset,
    Slot,
    check_layout,
    Row,
    get_preset,
    row_groups,
)

TITLE_PT = 18.0  # the comic's title on the first page
CAPTION_PT = 8.5  # captions under panels (lettering off): the size of the balloon text, a notch smaller
NOTICE_PT = 6.0  # the small notice line on every page (e.g. the tiny-model warning): fine print, still legible
BORDER_PT = 0.75  # panel border: a firm line at print size (3 px at 300 dpi)
CAPTION_PAD_EM = 0.45


def plan_pages(
    sizes: Sequence[tuple[int, int]],
    layout: Layout = "grid",
    preset: str | PagePreset | None = None,
    *,
    rtl: bool = False,
    title: str | None = None,
    captions: Sequence[str | None] | None = None,
    notice: str | None = None,
    columns: int | None = None,
) -> list[PagePlan]:
    """Pages for panels of the given art ``sizes``: every panel exactly once, in order.

    ``captions`` (one per panel, None or "" for none) puts a caption band under each panel, for
    pages without lettering; ``notice`` is printed small at the foot of every page; ``title`` heads
    the first page. ``rtl`` mirrors every row (panel 1 at the top right).
    """
    check_layout(layout)
    if not sizes:
        raise InputError("a comic needs at least one panel")
    if captions is not None and len(captions) != len(sizes):
        raise InputError(f"got {len(captions)} captions for {len(sizes)} panels; give one per panel (None for none)")
    if columns is not None and not 1 <= columns <= 4:
        raise InputError(f"columns must be 1 to 4, got {columns}")
    if any(w < 1 or h < 1 for w, h in sizes):
        raise InputError("every panel needs a positive width and height")
    p = get_preset(preset, layout)
    width = p.px(p.width_in)
    margin, gutter = p.px(p.margin_in), p.px(p.gutter_in)
    live_w = width - 2 * margin
    title_lines = _wrap(title, TITLE_PT, "bold", live_w, p.dpi) if title else ()
    title_h = _text_height(title_lines, TITLE_PT, "bold", p.dpi) + (gutter if title_lines else 0)
    notice_lines = _wrap(notice, NOTICE_PT, "regular", live_w, p.dpi) if notice else ()
    notice_h = _text_height(notice_lines, NOTICE_PT, "regular", p.dpi)
    foot = max(margin, notice_h + margin // 2)  # the bottom margin holds the notice; a long one takes more
    rows = [_row(g, sizes, captions, layout, p, live_w, columns) for g in row_groups(len(sizes), layout, columns or p.columns)]
    strip = layout == "webtoon" or p.height_in is None  # a webtoon takes the preset's width, never its height
    if strip:
        max_h = p.px(WEBTOON_MAX_IN)
        avail_first, avail_rest = max_h - margin - title_h - foot, max_h - margin - foot
    else:
        height = p.px(p.height_in)
        avail_first, avail_rest = height - margin - title_h - foot, height - margin - foot
    if min(avail_first, avail_rest) < gutter * 4:
        raise InputError("the title and notice leave no room for panels on the page; shorten them")
    groups = _paginate(rows, avail_first, avail_rest, gutter, squeeze=not strip)
    plans = []
    for number, page_rows in enumerate(groups, start=1):
        top = margin + (title_h if number == 1 else 0)
        avail = avail_first if number == 1 else avail_rest
        last = number == len(groups)
        slots, used = _place_rows(page_rows, top, avail, margin, live_w, gutter, fill=not strip, last=last)
        page_h = top + used + foot if strip else p.px(p.height_in)
        if rtl:
            slots = [_mirror(s, width) for s in slots]
        notice_box = (margin, page_h - foot + (foot - notice_h) // 2, width - margin, page_h - foot + (foot + notice_h) // 2) if notice_lines else None
        plans.append(PagePlan(
            number=number,
            size=(width, page_h),
            dpi=p.dpi,
            slots=tuple(slots),
            border=max(2, round(BORDER_PT * p.dpi / 72)),
            title_lines=title_lines if number == 1 else (),
            title_box=(margin, margin, width - margin, margin + title_h - gutter) if number == 1 and title_lines else None,
            notice_lines=notice_lines,
            notice_box=notice_box,
        ))
    return plans


def _wrap(text: str, pt: float, style: str, width: int, dpi: int) -> tuple[str, ...]:
    font = lettering_font(points_to_px(pt, dpi), style)  # type: ignore[arg-type]
    return tuple(line for para in text.splitlines() for line in wrap_greedy(para.split(), font, lambda _: width))


def _text_height(lines: Sequence[str], pt: float, style: str, dpi: int) -> int:
    return len(lines) * line_height(lettering_font(points_to_px(pt, dpi), style)) if lines else 0  # type: ignore[arg-type]


def _row(
    group: tuple[int, ...],
    sizes: Sequence[tuple[int, int]],
    captions: Sequence[str | None] | None,
    layout: str,
    p: PagePreset,
    live_w: int,
    columns: int | None,
) -> Row:
    """A row's natural geometry: slot widths, the art height that needs no crop, the caption band."""
    gutter = p.px(p.gutter_in)
    aspects = [sizes[i][0] / sizes[i][1] for i in group]
    if layout == "grid":
        cols = 1 if len(sizes) == 1 else (columns or p.columns)
        slot_w = (live_w - (cols - 1) * gutter) / cols
        widths = [slot_w] * len(group)
        height = slot_w / (sum(aspects) / len(aspects))
    else:
        height = (live_w - (len(group) - 1) * gutter) / sum(aspects)
        widths = [a * height for a in aspects]
    band, lines = 0, tuple(() for _ in group)
    if captions is not None:
        px = points_to_px(CAPTION_PT, p.dpi)
        pad = round(CAPTION_PAD_EM * px)
        lines = tuple(_wrap(captions[i] or "", CAPTION_PT, "regular", round(w) - 2 * pad, p.dpi) for i, w in zip(group, widths))
        most = max(len(x) for x in lines)
        band = _text_height(["x"] * most, CAPTION_PT, "regular", p.dpi) + 2 * pad if most else 0
    return Row(group, tuple(widths), height, band, lines)


def _paginate(rows: list[Row], avail_first: float, avail_rest: float, gutter: int, squeeze: bool) -> list[list[Row]]:
    """Greedy: a row joins the page while the page's art, squeezed at most MAX_SQUEEZE, still fits."""
    pages: list[list[Row]] = [[]]
    shrink = (1 - MAX_SQUEEZE) if squeeze else 1.0
    for row in rows:
        current = pages[-1]
        avail = avail_first if len(pages) == 1 else avail_rest
        candidate = current + [row]
        need = sum(r.height for r in candidate) * shrink + sum(r.band for r in candidate) + gutter * (len(candidate) - 1)
        if current and need > avail:
            pages.append([row])
        else:
            current.append(row)
    return pages


def _place_rows(
    rows: list[Row], top: int, avail: float, margin: int, live_w: int, gutter: int, fill: bool, last: bool
) -> tuple[list[Slot], int]:
    """Slots for one page's rows, justified to the page height within MAX_SQUEEZE / MAX_STRETCH; returns the height used."""
    art = sum(r.height for r in rows)
    fixed = sum(r.band for r in rows) + gutter * (len(rows) - 1)
    f = (avail - fixed) / art if fill else 1.0
    uniform = 1.0  # a single row taller than the page shrinks whole (no crop) instead of being squeezed
    if f < 1 - MAX_SQUEEZE:
        uniform, f = f, f
    elif f > 1 + MAX_STRETCH:
        f = 1.0  # not enough rows to fill the page: natural sizes, white space left over
    used = art * f + fixed
    y = top + ((avail - used) / 2 if fill and not last and used < avail else 0)  # centre an unfilled page's rows
    slots = []
    for row in rows:
        widths = [w * uniform for w in row.widths]
        row_w = sum(widths) + gutter * (len(widths) - 1)
        x = margin + (live_w - row_w) / 2
        art_h = row.height * f
        for panel, w, lines in zip(row.panels, widths, row.caption_lines):
            box = (round(x), round(y), round(x + w), round(y + art_h))
            caption_box = (box[0], box[3], box[2], round(y + art_h + row.band)) if row.band else None
            slots.append(Slot(panel, box, caption_box, lines))
            x += w + gutter
        y += art_h + row.band + gutter
    return slots, math.ceil(used)


def _mirror(slot: Slot, width: int) -> Slot:
    flip = lambda b: (width - b[2], b[1], width - b[0], b[3])  # noqa: E731
    return Slot(slot.panel, flip(slot.box), flip(slot.caption_box) if slot.caption_box else None, slot.caption_lines)
