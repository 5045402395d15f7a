"""From clean panel art and its text to finished pages: fit, letter, compose (pure, CPU only).

This is the re-lettering pass: it never touches a model, so editing a caption or a line of
dialogue re-runs only this. Faces are passed in (found once per clean panel with ``find_faces``
and stored), in art pixels; they are mapped onto each panel's place on the page here.

One lettering size for the whole book, as a letterer keeps one size from page to page: every
panel is planned at the largest size it allows, the book's size is the median of those, and
panels set larger are planned again at it. A crowded panel that needs a smaller size keeps its
own rather than shrinking every other panel's text to fine print.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from PIL import Image

from ..errors import InputError
from .lettering import Face, LetteringError, LetteringPlan, Line, draw_lettering, plan_lettering
from .lettering.place import MAX_PT
from .pages import PagePlan, PagePreset, compose_pages, fit_art, fit_crop, get_preset, plan_pages
from .pages.layouts import Layout


@dataclass(frozen=True)
class PanelText:
    """What is lettered on one panel: narration, dialogue, and the cast in the scene's order of names."""

    caption: str | None = None
    lines: Sequence[Line] = field(default_factory=tuple)
    cast: Sequence[str] = field(default_factory=tuple)


@dataclass
class Book:
    """Finished pages plus everything needed to record or redraw them."""

    pages: list[Image.Image]
    page_plans: list[PagePlan]
    lettering: list[LetteringPlan | None]  # per panel, in the panel's page-slot pixels; None: not lettered
    panels: list[Image.Image]  # per panel, the art as placed on its page (lettered when lettering is on)

    def records(self) -> list[dict]:
        """Per panel: its page, slot box and the placed balloons, for comic.json."""
        where = {s.panel: (p.number, s.box) for p in self.page_plans for s in p.slots}
        return [
            {"page": where[i][0], "box": list(where[i][1]), "lettering": plan.to_dict() if plan else None}
            for i, plan in enumerate(self.lettering)
        ]


def side_of(cast: Sequence[str]) -> dict[str, float]:
    """Where each named character probably stands, 0 (left) .. 1 (right), from the order the scene names them.

    Image models tend to compose the first-named subject on the left; it is a guess, used only for
    speakers whose face was not found.
    """
    names = list(dict.fromkeys(cast))
    return {name: (i + 0.5) / len(names) for i, name in enumerate(names)}


def map_faces(faces: Sequence[Face], src: tuple[int, int], dst: tuple[int, int]) -> list[Face]:
    """Faces found in art of size ``src`` moved onto the art fitted to ``dst`` (same crop as ``fit_art``)."""
    scale, (left, top, _, _) = fit_crop(src, dst)
    moved = []
    for face in faces:
        x0, y0, x1, y1 = ((v - o) * scale for v, o in zip(face.box, (left, top, left, top)))
        box = (max(0, round(x0)), max(0, round(y0)), min(dst[0], round(x1)), min(dst[1], round(y1)))
        if box[2] - box[0] < 2 or box[3] - box[1] < 2:
            continue  # cropped away
        mouth = None
        if face.mouth is not None:
            mouth = (round((face.mouth[0] - left) * scale), round((face.mouth[1] - top) * scale))
        moved.append(Face(box, face.name, mouth))
    return moved


def letter_book(
    arts: Sequence[Image.Image],
    texts: Sequence[PanelText],
    *,
    layout: Layout = "grid",
    preset: str | PagePreset | None = None,
    rtl: bool = False,
    title: str | None = None,
    notice: str | None = None,
    lettering: bool = True,
    captions_under: bool | None = None,
    faces: Sequence[Sequence[Face]] | None = None,
    columns: int | None = None,
) -> Book:
    """Pages for ``arts`` (clean panel art) lettered with ``texts``.

    With ``lettering`` off the pages are clean; ``captions_under`` (default: on exactly when
    lettering is off) sets each caption under its panel instead of in a narration box. A line that
    cannot be lettered raises :class:`LetteringError` prefixed with its panel number.
    """
    if len(texts) != len(arts) or (faces is not None and len(faces) != len(arts)):
        raise InputError(f"got {len(arts)} panels, {len(texts)} texts and {len(faces) if faces else 0} face lists; give one per panel")
    under = (not lettering) if captions_under is None else captions_under
    p = get_preset(preset, layout)
    plans = plan_pages([a.size for a in arts], layout, p, rtl=rtl, title=title, notice=notice, columns=columns,
                       captions=[t.caption for t in texts] if under else None)
    slot_of = {s.panel: s for plan in plans for s in plan.slots}
    fitted = [fit_art(art, slot_of[i].size) for i, art in enumerate(arts)]
    letterings: list[LetteringPlan | None] = [None] * len(arts)
    if lettering:
        args = []
        for i, (art, text) in enumerate(zip(arts, texts)):
            found = map_faces(faces[i], art.size, fitted[i].size) if faces is not None else []
            caption = None if under else (text.caption or None)
            args.append((fitted[i].size, caption, list(text.lines), found, side_of(text.cast)))
        letterings = _plan_all(args, rtl, p.dpi)
        fitted = [draw_lettering(f, plan) if plan.caption or plan.balloons else f for f, plan in zip(fitted, letterings)]
    return Book(compose_pages(plans, fitted), plans, letterings, fitted)


def _plan_all(args: list[tuple], rtl: bool, dpi: int) -> list[LetteringPlan | None]:
    """Plan every panel, then re-plan the ones set larger than the smallest so the book has one size."""

    def plan(i: int, max_pt: float) -> LetteringPlan:
        try:
            return plan_lettering(*args[i], rtl=rtl, dpi=dpi, max_pt=max_pt)
        except LetteringError as exc:
            error = type(exc)(f"panel {i + 1}: {exc}", exc.line)
            error.panel = i  # type: ignore[attr-defined]
            raise error from exc

    first = [plan(i, MAX_PT) for i in range(len(args))]
    sizes = sorted(p.font_pt for i, p in enumerate(first) if args[i][1] or args[i][2])
    book_pt = sizes[(len(sizes) - 1) // 2] if sizes else MAX_PT  # the median (lower middle) size
    return [p if p.font_pt <= book_pt else plan(i, book_pt) for i, p in enumerate(first)]


__all__ = ["Book", "PanelText", "letter_book", "map_faces", "side_of"]
