"""The one reader and writer of a comic folder's files: its layout, and its records read back with limits.

A comic folder is what ``storyface comic`` / :func:`storyface.api.make_comic` writes::

    comic.json              the record: title, model, book settings, every panel's prompt, seed, size,
                            regions, text (caption, dialogue), faces found, balloons placed, likeness
    panels/panel-NN.png     each panel's clean art (NN from 01), with panel-NN.json beside it
    pages/page-NN.png       the lettered pages
    comic.pdf, comic.cbz    the book (PDF when asked; CBZ with ComicInfo.xml, as comic readers expect)
    references/<slug>.png   each person's reference headshot, so `storyface eval` works from the folder alone

A person may edit ``comic.json`` (to redraw a panel with another prompt), so reading it back is
validated like any input that crosses a door: types, sizes and ranges are checked before any work.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ImageError, InputError, StoryError
from .files import write_atomic
from .limits import (
    MAX_CAPTION_CHARS,
    MAX_GUIDANCE,
    MAX_LINES_PER_PANEL,
    MAX_NEGATIVE_CHARS,
    MAX_PANEL_SIDE,
    MAX_PANELS,
    MAX_PEOPLE_PER_PANEL,
    MAX_PROMPT_CHARS,
    MAX_RENDER_STEPS,
    MAX_SCRIPT_BYTES,
    MAX_SEED,
    MAX_SENTENCE_CHARS,
    MAX_TITLE_CHARS,
    MIN_PANEL_SIDE,
)
from .names import file_slug
from .story.schema import Line

MANIFEST = "comic.json"
PAGES_DIR = "pages"
BOOK_PDF = "comic.pdf"
BOOK_CBZ = "comic.cbz"
PANELS_DIR = "panels"
REFERENCES_DIR = "references"
EVAL_JSON = "eval.json"
EVAL_HTML = "eval.html"


class PanelRecord(BaseModel):
    """One panel as ``comic.json`` keeps it: enough to draw it again exactly, and what it shows."""

    model_config = ConfigDict(extra="ignore")

    index: int = Field(ge=0, lt=MAX_PANELS)
    prompt: str = Field(max_length=MAX_PROMPT_CHARS)
    negative_prompt: str = Field("", max_length=MAX_NEGATIVE_CHARS)
    seed: int = Field(ge=0, le=MAX_SEED)
    width: int = Field(ge=MIN_PANEL_SIDE, le=MAX_PANEL_SIDE, multiple_of=8)
    height: int = Field(ge=MIN_PANEL_SIDE, le=MAX_PANEL_SIDE, multiple_of=8)
    steps: int = Field(ge=1, le=MAX_RENDER_STEPS)
    guidance: float = Field(ge=0, le=MAX_GUIDANCE)
    scheduler: str = Field(max_length=40)
    model: str = Field("", max_length=1_000)
    tiny: bool = False
    blocked: bool = False
    eta: float = Field(0.0, ge=0, le=1)
    decoder: Literal["full", "tiny"] = "full"  # render.panel.DECODERS, spelt out so reading a folder needs no torch
    sentence: str = Field("", max_length=MAX_SENTENCE_CHARS)
    characters: list[str] = Field(default_factory=list, max_length=MAX_PEOPLE_PER_PANEL * 2)
    caption: str | None = Field(None, max_length=MAX_CAPTION_CHARS)
    dialogue: list[Line] = Field(default_factory=list, max_length=MAX_LINES_PER_PANEL)
    region_overrides: dict[str, str | list[float]] | None = None  # as the script gave them
    regions: dict[str, list[float]] = Field(default_factory=dict)  # the plan drawn with: name -> [x0, y0, x1, y1]
    faces: list[dict[str, Any]] = Field(default_factory=list, max_length=32)  # found in the clean art
    lettering: dict[str, Any] | None = None  # the balloons placed (page-slot pixels), their page and box
    identities: list[dict[str, str]] = Field(default_factory=list, max_length=MAX_PEOPLE_PER_PANEL * 2)  # name, token, digest
    photos: dict[str, str] = Field(default_factory=dict)  # name -> hash of the photo the identity was learned from
    warnings: list[str] = Field(default_factory=list, max_length=20)
    likeness: dict[str, Any] | None = None


class ComicRecord(BaseModel):
    """The whole ``comic.json``."""

    model_config = ConfigDict(extra="ignore")

    title: str | None = Field(None, max_length=MAX_TITLE_CHARS)
    model: str = Field("", max_length=1_000)
    tiny: bool = False
    notice: str = Field("", max_length=500)
    book: dict[str, Any] = Field(default_factory=dict)  # layout, page preset, reading order, lettering on/off
    loras: list[dict[str, Any]] = Field(default_factory=list)
    pages: int = Field(0, ge=0, le=MAX_PANELS)
    panels: list[PanelRecord] = Field(min_length=1, max_length=MAX_PANELS)
    references: dict[str, str] = Field(default_factory=dict)


class ComicFolder:
    """Paths of a comic folder's files, and reading/writing them (writes are atomic)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    @property
    def manifest(self) -> Path:
        return self.path / MANIFEST

    @property
    def pages_dir(self) -> Path:
        return self.path / PAGES_DIR

    def page_png(self, number: int = 1) -> Path:
        """Page ``number`` (1-based), as :func:`storyface.render.pages.save_pngs` names it."""
        return self.pages_dir / f"page-{number:02d}.png"

    def page_pngs(self) -> list[Path]:
        return sorted(self.pages_dir.glob("page-*.png")) if self.pages_dir.is_dir() else []

    @property
    def book_pdf(self) -> Path:
        return self.path / BOOK_PDF

    @property
    def book_cbz(self) -> Path:
        return self.path / BOOK_CBZ

    @property
    def eval_json(self) -> Path:
        return self.path / EVAL_JSON

    @property
    def eval_html(self) -> Path:
        return self.path / EVAL_HTML

    def panel_png(self, number: int) -> Path:
        """Panel ``number`` (1-based, as in the file names)."""
        return self.path / PANELS_DIR / f"panel-{number:02d}.png"

    def panel_json(self, number: int) -> Path:
        return self.panel_png(number).with_suffix(".json")

    # -- reading -----------------------------------------------------------------------------

    def read(self) -> ComicRecord:
        """``comic.json``, validated; a clear :class:`InputError` names what is wrong and where."""
        path = self.manifest
        try:
            if path.stat().st_size > MAX_SCRIPT_BYTES:
                raise InputError(f"{path} is over {MAX_SCRIPT_BYTES // 1_000_000} MB; a comic record is a few KB")
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"{self.path} has no {MANIFEST}; point at the folder `storyface comic --out` wrote") from None
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise InputError(f"{path} is not valid JSON ({exc}); fix it or render the comic again") from None
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("panels"), list):
            raise InputError(f"{path} has no panel list; it was not written by `storyface comic`")
        try:
            return ComicRecord.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p + 1) if i == 1 and isinstance(p, int) else str(p) for i, p in enumerate(first["loc"]))
            raise StoryError(f"{path}: {where}: {first['msg']} (edit it back, or render the comic again)") from None

    def panel_image(self, number: int, record: PanelRecord | None = None) -> Image.Image:
        """Panel ``number``'s picture as RGB, refused clearly if it is missing, no image, or too big."""
        from .faces.io import load_image

        path = self.panel_png(number)
        if not path.is_file():
            raise InputError(f"{path} is missing; the comic folder is incomplete, render it again")
        try:
            image = load_image(path, max_pixels=MAX_PANEL_SIDE * MAX_PANEL_SIDE, min_side=1)
        except ImageError as exc:
            raise InputError(f"panel {number}: {exc}") from None
        if record is not None and image.size != (record.width, record.height):
            raise InputError(
                f"panel {number}'s picture is {image.width}x{image.height} px but its record says "
                f"{record.width}x{record.height}; render the comic again"
            )
        return image

    def references(self, record: ComicRecord | Mapping[str, Any] | None = None) -> dict[str, Path]:
        """name -> reference picture, for the recorded files that exist inside the folder.

        ``comic.json`` is user-editable: a path that leaves the folder (``../x``, ``/etc/x``) is ignored.
        """
        if record is None:
            try:
                record = self.read()
            except InputError:
                return {}
        refs = record.references if isinstance(record, ComicRecord) else (record.get("references") or {})
        if not isinstance(refs, Mapping):
            return {}
        root = self.path.resolve()
        found = {}
        for name, rel in refs.items():
            path = (self.path / str(rel)).resolve()
            if path.is_relative_to(root) and path.is_file():
                found[str(name)] = self.path / str(rel)
        return found

    # -- writing -----------------------------------------------------------------------------

    def save_references(self, pictures: Mapping[str, Image.Image]) -> dict[str, str]:
        """Write each person's reference picture to ``references/<slug>.png``; name -> relative path."""
        saved = {}
        for name, picture in pictures.items():
            rel = f"{REFERENCES_DIR}/{file_slug(name)}.png"
            write_atomic(self.path / rel, lambda tmp, pic=picture: pic.convert("RGB").save(tmp, "PNG"))
            saved[name] = rel
        return saved

    def write_panel(self, number: int, image: Image.Image, record: dict[str, Any]) -> Path:
        png = self.panel_png(number)
        write_atomic(png, lambda tmp: image.save(tmp, "PNG"))
        write_atomic(self.panel_json(number), json.dumps(record, indent=2))
        return png

    def write_record(self, record: dict[str, Any]) -> Path:
        """``comic.json`` last, so a folder with a record always has the files it names."""
        return write_atomic(self.manifest, json.dumps(record, indent=2))
