"""The core's lettering pass: clean panel art + its text -> lettered pages and the book's files.

CPU only and model-free, so it runs again on every text edit (:func:`reletter`): panels are rendered
once, their clean art kept, and only this pass repeats. Panels are rendered at an SDXL-native size for
their shape on the page (:func:`panel_sizes`), the people's regions follow the scene's order of names
(:func:`region_plans`), faces are found once per clean panel and stored, and balloons aim at them.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..comic_folder import ComicFolder, ComicRecord
from ..errors import InputError
from ..models import LoadedModel
from ..names import identity_token
from ..render.book import Book, PanelText, letter_book
from ..render.lettering import Face, find_faces
from ..render.lettering import Line as LetteredLine
from ..render.pages import PRESETS, ComicInfo, native_size, panel_shapes, save_cbz, save_pdf, save_pngs
from ..render.pages.export import encode_pages
from ..render.panel import RenderConfig
from ..render.regions import Region, plan_regions, plan_to_dict
from ..safety import ContentPolicy
from ..story.schema import Line

log = logging.getLogger(__name__)


class BookSettings(BaseModel):
    """How the comic is laid out and lettered; what the doors pass (checked here, once)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    layout: Literal["grid", "dynamic", "webtoon"] = "grid"
    preset: str | None = Field(None, max_length=20)  # page size: us-comic, a4, square, phone (None: the layout's)
    rtl: bool = False  # right-to-left reading order (manga)
    lettering: bool = True  # balloons and narration boxes; off: clean art, captions under the panels
    pdf: bool = False
    cbz: bool = True

    @classmethod
    def of(cls, **values: Any) -> BookSettings:
        try:
            settings = cls(**values)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise InputError(f"book setting {'.'.join(map(str, first['loc']))!r}: {first['msg']}") from None
        if settings.preset is not None and settings.preset not in PRESETS:
            raise InputError(f"unknown page size {settings.preset!r}; choose one of {', '.join(PRESETS)}")
        return settings


def panel_sizes(n: int, settings: BookSettings, model: LoadedModel, config: RenderConfig) -> list[tuple[int, int]]:
    """Each panel's render size: the config's when it sets one, else native for the panel's shape."""
    if config.width or config.height:
        return [config.size_for(model)] * n
    return [native_size(shape, model.family, model.render_size) for shape in panel_shapes(n, settings.layout)]


def region_plans(
    characters: Sequence[Sequence[str]], overrides: Sequence[Mapping[str, Any] | None]
) -> tuple[list[dict[str, Region]], list[dict[str, Region] | None]]:
    """Per panel: where each person stands (by name; every panel, for the record and lettering) and the
    same by trigger token for panels with two or more people (what the renderer masks with)."""
    by_name, by_token = [], []
    for names, override in zip(characters, overrides):
        plan = plan_regions(list(names), override) if names else {}
        by_name.append(plan)
        by_token.append({identity_token(n): r for n, r in plan.items()} if len(plan) >= 2 else None)
    return by_name, by_token


def panel_texts(
    captions: Sequence[str | None], dialogue: Sequence[Sequence[Line]], cast: Sequence[Sequence[str]]
) -> list[PanelText]:
    """What the lettering pass letters on each panel (the cast in the scene's order aims blind tails)."""
    return [
        PanelText(caption, [LetteredLine(d.speaker, d.text, d.kind) for d in lines], list(names))
        for caption, lines, names in zip(captions, dialogue, cast)
    ]


def check_texts(texts: Sequence[PanelText], policy: ContentPolicy) -> None:
    """Every text drawn on the page passes the content policy, like every prompt."""
    for number, text in enumerate(texts, 1):
        if text.caption:
            policy.check_text(text.caption, f"panel {number}'s caption")
        for line in text.lines:
            policy.check_text(line.text, f"panel {number}'s dialogue ({line.speaker})")


def find_panel_faces(
    arts: Sequence[Image.Image], texts: Sequence[PanelText], references: Mapping[str, np.ndarray] | None = None
) -> list[list[Face]]:
    """Faces in each clean panel that has something to letter, named where the likeness tells who."""
    faces = []
    for art, text in zip(arts, texts):
        speakers = [line.speaker for line in text.lines]
        faces.append(find_faces(art, speakers, references) if (speakers or text.caption) else [])
    return faces


def write_book(
    folder: ComicFolder,
    arts: Sequence[Image.Image],
    texts: Sequence[PanelText],
    faces: Sequence[Sequence[Face]],
    settings: BookSettings,
    title: str | None,
    notice: str | None,
    characters: Sequence[str],
) -> tuple[Book, list[Path]]:
    """Letter and compose the pages, then write them (PNGs, and the PDF and CBZ when asked)."""
    book = letter_book(
        arts, texts, layout=settings.layout, preset=settings.preset, rtl=settings.rtl, title=title, notice=notice,
        lettering=settings.lettering, faces=faces,
    )  # fmt: skip
    encoded = encode_pages(book.pages)
    files = save_pngs(book.pages, folder.pages_dir, encoded=encoded)
    for stale in folder.page_pngs()[len(files) :]:  # a longer earlier version of this comic
        stale.unlink()
    if settings.pdf:
        files.append(save_pdf(book.pages, folder.book_pdf, title=title))
    if settings.cbz:
        info = ComicInfo(title, list(dict.fromkeys(characters)), notes=notice, rtl=settings.rtl)
        files.append(save_cbz(book.pages, folder.book_cbz, info, encoded=encoded))
    return book, files


def reletter(
    comic_dir: str | Path,
    policy: ContentPolicy,
    settings: BookSettings | None = None,
    texts: Sequence[tuple[str | None, Sequence[Line]]] | None = None,
) -> tuple[Book, list[Path]]:
    """Letter a comic folder again from its records (a person may have edited captions or dialogue in
    ``comic.json``) or from ``texts`` (caption, dialogue) per panel; never touches a model or the art."""
    folder = ComicFolder(comic_dir)
    record = folder.read()
    if texts is not None and len(texts) != len(record.panels):
        raise InputError(f"got text for {len(texts)} panels; the comic has {len(record.panels)}")
    settings = settings or BookSettings.of(**record.book)
    new = texts or [(p.caption, p.dialogue) for p in record.panels]
    lettered = panel_texts([c for c, _ in new], [list(d) for _, d in new], [p.characters for p in record.panels])
    check_texts(lettered, policy)
    arts = [folder.panel_image(i, p) for i, p in enumerate(record.panels, start=1)]
    faces = [[Face.from_dict(f) for f in p.faces] for p in record.panels]
    book, files = write_book(
        folder, arts, lettered, faces, settings, record.title, record.notice if record.tiny else None,
        [c for p in record.panels for c in p.characters],
    )  # fmt: skip
    update_record(folder, record, book, settings, new)
    return book, files


def update_record(
    folder: ComicFolder,
    record: ComicRecord,
    book: Book,
    settings: BookSettings,
    texts: Sequence[tuple[str | None, Sequence[Line]]],
) -> None:
    """Write ``comic.json`` again with the new lettering (and the text it lettered)."""
    data = record.model_dump(mode="json")
    for panel, placed, (caption, lines) in zip(data["panels"], book.records(), texts):
        panel.update(caption=caption, dialogue=[Line.model_validate(d).model_dump() for d in lines], lettering=placed)
    data.update(book=settings.model_dump(), pages=len(book.pages))
    folder.write_record(data)


def regions_record(plan: Mapping[str, Region]) -> dict[str, list[float]]:
    return plan_to_dict(plan) if plan else {}
