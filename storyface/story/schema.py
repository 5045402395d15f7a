"""The panel script: what every story backend returns and what the user may edit before rendering.

A panel is one self-contained sentence that names its people in full, so the prompt builder can
swap each full name for that person's identity token without any context from other panels. Panel
scripts can also skip the parser (a ``.json`` file, panels edited in the web app, the Python API), so
their size is checked again where they enter (:func:`check_panel_count`, :func:`panels_from_json`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ..errors import StoryError
from ..limits import (
    MAX_CAPTION_CHARS,
    MAX_LINE_CHARS,
    MAX_LINES_PER_PANEL,
    MAX_NAME_CHARS,
    MAX_PANELS,
    MAX_PEOPLE_PER_PANEL,
    MAX_SCRIPT_BYTES,
    MAX_SENTENCE_CHARS,
    MAX_STORY_CHARS,
)
from ..names import name_key, tidy, unique_names


Kind = Literal["speech", "thought", "whisper"]


class Line(BaseModel):
    """One line of dialogue, lettered in a balloon that points at its speaker."""

    model_config = ConfigDict(frozen=True)

    speaker: str = Field(min_length=1, max_length=MAX_NAME_CHARS)  # a cast member's full name
    text: str = Field(min_length=1, max_length=MAX_LINE_CHARS)
    kind: Kind = "speech"

    @field_validator("speaker", "text")
    @classmethod
    def _tidy(cls, value: str) -> str:
        value = tidy(value)
        if not value:
            raise ValueError("must not be empty")
        return value


class Panel(BaseModel):
    """One comic panel.

    ``sentence`` is the scene to draw: self-contained, every cast member named in full, no quoted words
    (a diffusion model turns quotes into garbled text). ``characters``: the cast members it shows, in
    order (empty for a scene panel). ``caption``: the narration box, in the author's words (None: no box).
    ``dialogue``: what people say, lettered in balloons. ``regions``: where people stand, overriding the
    default plan (name -> "left", "right", ... or [x0, y0, x1, y1] fractions of the panel).
    """

    sentence: str  # its length is checked where scripts enter (check_panel_count), with a message that says why
    characters: list[str] = Field(default_factory=list, max_length=MAX_PEOPLE_PER_PANEL * 2)
    caption: str | None = Field(None, max_length=MAX_CAPTION_CHARS)
    dialogue: list[Line] = Field(default_factory=list, max_length=MAX_LINES_PER_PANEL)
    regions: dict[str, str | list[float]] | None = None

    @field_validator("sentence")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        value = tidy(value)
        if not value:
            raise ValueError("a panel needs a sentence")
        return value

    @field_validator("caption")
    @classmethod
    def _caption(cls, value: str | None) -> str | None:
        value = tidy(value) if value is not None else None
        return value or None


class PanelScript(BaseModel):
    """The panels of a story, which backend made them, and what the user should know about it."""

    panels: list[Panel]
    backend: str
    warnings: list[str] = Field(default_factory=list)
    cast: list[str] = Field(default_factory=list)  # the full names the story was parsed against


def clean_cast(cast: list[str]) -> list[str]:
    """Tidy whitespace and drop empty names and repeats of the same person, keeping the first spelling."""
    names = unique_names(cast)
    if not names:
        raise StoryError("the cast is empty: name at least one person (an identity) the story is about")
    return names


def check_story(story: str) -> str:
    """Reject stories no backend should try: empty, or longer than a comic can hold."""
    text = (story or "").strip()
    if not re.search(r"\w", text):
        raise StoryError("the story is empty: write a few sentences about the cast")
    if len(text) > MAX_STORY_CHARS:
        raise StoryError(
            f"the story is {len(text):,} characters; the limit is {MAX_STORY_CHARS:,} "
            f"(at most {MAX_PANELS} panels are drawn), so shorten it"
        )
    return text


def cap_panels(panels: list[Panel], warnings: list[str]) -> list[Panel]:
    """Keep the first MAX_PANELS panels and say so, rather than fail a long story."""
    if len(panels) > MAX_PANELS:
        warnings.append(
            f"the story makes {len(panels)} panels; kept the first {MAX_PANELS} (split it into several comics)"
        )
    return panels[:MAX_PANELS]


def missing_cast_warning(cast: list[str], panels: list[Panel]) -> str | None:
    """A note naming cast members no panel shows (not an error: the user may have added them early)."""
    used = {name_key(c) for p in panels for c in p.characters}
    unused = [name for name in cast if name_key(name) not in used]
    if not unused:
        return None
    return "not in the story, so not drawn: " + ", ".join(repr(n) for n in unused)


def check_panel_count(panels: Sequence[Panel]) -> None:
    """Refuse an empty script, more than MAX_PANELS panels, or a sentence far longer than a prompt."""
    if not panels:
        raise StoryError("the panel list is empty: write a story and split it into panels, or add panels by hand")
    if len(panels) > MAX_PANELS:
        raise StoryError(
            f"the panel script has {len(panels)} panels; the limit is {MAX_PANELS} (more than a page holds): "
            "split it into several comics"
        )
    for number, panel in enumerate(panels, 1):
        if len(panel.sentence) > MAX_SENTENCE_CHARS:
            raise StoryError(
                f"panel {number} is {len(panel.sentence):,} characters; keep a panel sentence under "
                f"{MAX_SENTENCE_CHARS:,} (the model reads only the first ~300)"
            )


def panels_from_json(text: str, source: str = "the panel script") -> list[Panel]:
    """Panels from ``{"panels": [{"sentence": ..., "characters": [...]}]}`` or a bare list, checked."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_SCRIPT_BYTES:
        raise StoryError(f"{source} is over {MAX_SCRIPT_BYTES // 1_000_000} MB; a panel script is a few KB")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise StoryError(
            f"{source} is not valid JSON ({exc.msg} at line {exc.lineno}); fix it or pass the story text"
        ) from None
    items = data.get("panels") if isinstance(data, dict) else data
    if not isinstance(items, list):
        shape = '{"panels": [{"sentence": "...", "characters": [...]}]}'
        raise StoryError(f"{source} must hold {shape} or a list of panels")
    panels = []
    for number, item in enumerate(items, 1):
        try:
            panels.append(Panel.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "panel"
            raise StoryError(f"{source}, panel {number}: {where}: {first['msg']}") from None
    check_panel_count(panels)
    return panels
