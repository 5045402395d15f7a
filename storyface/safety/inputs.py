"""Limits on text that enters StoryFace from a person or a file, beyond the story parser's own.

Panel scripts can skip the parser (a ``.json`` file on the command line, panels edited in the web
app, the Python API), so their size is checked again where they turn into prompts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from pydantic import ValidationError

from ..errors import StoryError
from ..story.schema import MAX_PANELS, Panel

MAX_SENTENCE_CHARS = 1_000  # CLIP reads ~77 tokens (~300 characters); far longer is a pasted document
MAX_SCRIPT_BYTES = 1_000_000  # a panel script file of 24 panels is a few KB


def check_panel_count(panels: Sequence[Panel]) -> None:
    """Refuse an empty script, more than MAX_PANELS panels, or a sentence far longer than a prompt."""
    if not panels:
        raise StoryError("the panel script is empty: write or parse at least one sentence")
    if len(panels) > MAX_PANELS:
        raise StoryError(
            f"the panel script has {len(panels)} panels; the limit is {MAX_PANELS}: split it into several comics"
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
