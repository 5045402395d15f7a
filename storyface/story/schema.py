"""The panel script: what every story backend returns and what the user may edit before rendering.

A panel is one self-contained sentence that names its people in full, so the prompt builder can
swap each full name for that person's identity token without any context from other panels.
"""

from __future__ import annotations

import re

from pydantic import BaseModel, Field, field_validator

from ..errors import StoryError

MAX_STORY_CHARS = 20_000  # about 3,000 words: far beyond a comic page, cheap to reject early
MAX_PANELS = 24  # a long comic; more panels is almost surely a pasted document


class Panel(BaseModel):
    """One comic panel: its sentence and the cast members it names, in order of appearance."""

    sentence: str
    characters: list[str] = Field(default_factory=list)

    @field_validator("sentence")
    @classmethod
    def _non_empty(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value:
            raise ValueError("a panel needs a sentence")
        return value


class PanelScript(BaseModel):
    """The panels of a story, which backend made them, and what the user should know about it."""

    panels: list[Panel]
    backend: str
    warnings: list[str] = Field(default_factory=list)
    cast: list[str] = Field(default_factory=list)  # the full names the story was parsed against


def clean_cast(cast: list[str]) -> list[str]:
    """Tidy whitespace and drop empty or repeated (case-insensitive) names, keeping the first spelling."""
    seen: set[str] = set()
    names: list[str] = []
    for raw in cast:
        name = " ".join(str(raw).split())
        if name and name.casefold() not in seen:
            seen.add(name.casefold())
            names.append(name)
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
    used = {c.casefold() for p in panels for c in p.characters}
    unused = [name for name in cast if name.casefold() not in used]
    if not unused:
        return None
    return "not in the story, so not drawn: " + ", ".join(repr(n) for n in unused)
