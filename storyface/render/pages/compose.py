"""Drawing pages from PagePlans: art fitted into slots, borders, caption bands, title, notice (pure)."""

from __future__ import annotations

from collections.abc import Sequence

from PIL import Image, ImageDraw

from ...errors import InputError
from ..fonts import lettering_font, points_to_px
from .flow import CAPTION_PAD_EM, CAPTION_PT, NOTICE_PT, TITLE_PT
from .layouts import PagePlan

PAPER = (255, 255, 255)
INK = (20, 20, 20)
NOTICE_INK = (96, 96, 96)
FIT_CENTERING = (0.5, 0.4)  # when art must be cropped, keep a little more of the top: that is where heads are


def fit_crop(src: tuple[int, int], dst: tuple[int, int], centering: tuple[float, float] = FIT_CENTERING) -> tuple[float, tuple[float, float, float, float]]:
    """Cover-fit: the scale and the source crop box that fill ``dst`` without distortion.

    The same numbers map face boxes found in the art onto the fitted panel (``x' = (x - left) * scale``).
    """
    scale = max(dst[0] / src[0], dst[1] / src[1])
    crop_w, crop_h = dst[0] / scale, dst[1] / scale
    left, top = (src[0] - crop_w) * centering[0], (src[1] - crop_h) * centering[1]
    return scale, (left, top, left + crop_w, top + crop_h)


def fit_art(image: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``image`` resized (and, if its shape differs, centre-cropped) to exactly ``size``."""
    image = image.convert("RGB")
    if image.size == tuple(size):
        return image
    _, box = fit_crop(image.size, size)
    return image.resize(size, Image.Resampling.LANCZOS, box=box)


def compose_pages(plans: Sequence[PagePlan], images: Sequence[Image.Image]) -> list[Image.Image]:
    """One RGB image per plan; ``images[i]`` is panel i (clean or lettered art), fitted into its slot."""
    wanted = {s.panel for p in plans for s in p.slots}
    if wanted and max(wanted) >= len(images):
        raise InputError(f"the pages need {max(wanted) + 1} panel images, got {len(images)}")
    return [_compose(plan, images) for plan in plans]


def _compose(plan: PagePlan, images: Sequence[Image.Image]) -> Image.Image:
    page = Image.new("RGB", plan.size, PAPER)
    page.info["dpi"] = (plan.dpi, plan.dpi)  # PNGs then print at the planned size
    draw = ImageDraw.Draw(page)
    if plan.title_box:
        _lines(draw, plan.title_lines, TITLE_PT, "bold", plan.dpi, plan.title_box, INK, centred=True)
    caption_font = lettering_font(points_to_px(CAPTION_PT, plan.dpi), "regular")
    pad = round(CAPTION_PAD_EM * caption_font.size)
    for slot in plan.slots:
        page.paste(fit_art(images[slot.panel], slot.size), slot.box[:2])
        if slot.caption_box:
            left, top, right, _ = slot.caption_box
            draw.line((left, top, right - 1, top), fill=INK, width=plan.border)
            y = top + pad
            for line in slot.caption_lines:
                draw.text((left + pad, y), line, font=caption_font, fill=INK, anchor="la")
                y += sum(caption_font.getmetrics())
        left, top, right, bottom = slot.frame
        draw.rectangle((left, top, right - 1, bottom - 1), outline=INK, width=plan.border)
    if plan.notice_box:
        _lines(draw, plan.notice_lines, NOTICE_PT, "regular", plan.dpi, plan.notice_box, NOTICE_INK, centred=True)
    return page


def _lines(draw: ImageDraw.ImageDraw, lines: Sequence[str], pt: float, style: str, dpi: int, box: tuple[int, int, int, int],
           fill: tuple[int, int, int], centred: bool) -> None:
    font = lettering_font(points_to_px(pt, dpi), style)  # type: ignore[arg-type]
    step = sum(font.getmetrics())
    y = box[1]
    for line in lines:
        x = (box[0] + box[2]) / 2 - font.getlength(line) / 2 if centred else box[0]
        draw.text((x, y), line, font=font, fill=fill, anchor="la")
        y += step
