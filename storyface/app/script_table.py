"""The panel script as the web app shows it: three editable tables, and the way back to panels.

A person edits a comic's script in three tables that share the panel numbers:

- panels: ``[caption (the author's words), people (worked out, read-only), where they stand]``;
- scenes (under "advanced"): ``[the scene to draw, every name in full]``, one row per panel;
- dialogue: ``[panel number, speaker, kind, words]``, one balloon per row.

:class:`Draft` is one panel while it is being edited (blank fields allowed); :func:`drafts_from_tables`
reads the tables leniently, :func:`tables_of` writes them, and :func:`panels_of` turns drafts into the
core's :class:`~storyface.story.schema.Panel` strictly, with messages that name the row to fix. Pure
module: no gradio, no model; names are resolved through :func:`storyface.api.describe_panel`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from .. import api
from ..errors import InputError
from ..limits import MAX_CAPTION_CHARS, MAX_LINE_CHARS, MAX_LINES_PER_PANEL
from ..names import name_key, tidy
from ..story.schema import Line, Panel, check_panel_count

PANEL_HEADERS = ["Caption (your words)", "People", "Where they stand"]
SCENE_HEADERS = ["Scene to draw (full names)"]
LINE_HEADERS = ["Panel", "Speaker", "Kind", "Words"]
KINDS = ("speech", "thought", "whisper")
NOBODY = "no one (a scene)"
PLACE_HINT = "e.g. 'Grace Hopper: left; Eileen Collins: right'"


@dataclass
class Draft:
    """One panel as edited: any field may still be blank."""

    caption: str = ""  # the narration box, in the author's words ("" = no box)
    scene: str = ""  # what to draw, names in full ("" = worked out from the caption)
    place: str = ""  # where people stand ("" = the scene's order of names, left to right)
    lines: list[tuple[str, str, str]] = field(default_factory=list)  # (speaker, kind, words)

    @property
    def blank(self) -> bool:
        return not (self.caption or self.scene or self.lines)


# -- reading -----------------------------------------------------------------------------------


def _cell(row: Any, i: int) -> str:
    if not isinstance(row, (list, tuple)) or i >= len(row) or row[i] is None:
        return ""
    value = row[i]
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return tidy(str(value))


def _panel_number(value: str, row: int, n: int) -> int:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not number.is_integer() or not 1 <= number <= n:
        where = f"panels 1 to {n}" if n else "no panels yet"
        raise InputError(
            f"dialogue row {row}: {value or 'an empty panel number'!r} is not a panel number (there are {where})"
        )
    return int(number)


def drafts_from_tables(panel_rows: Any, scene_rows: Any = None, line_rows: Any = None) -> list[Draft]:
    """The three tables -> one draft per panel row (blank rows kept: a person may be about to type).

    A dialogue row with neither speaker nor words is dropped; one naming a panel that does not exist is
    an :class:`InputError` naming the row.
    """
    panel_rows, scene_rows = list(panel_rows or []), list(scene_rows or [])
    n = max(len(panel_rows), len(scene_rows))
    drafts = [
        Draft(caption=_cell(panel_rows[i] if i < len(panel_rows) else None, 0),
              scene=_cell(scene_rows[i] if i < len(scene_rows) else None, 0),
              place=_cell(panel_rows[i] if i < len(panel_rows) else None, 2))
        for i in range(n)
    ]  # fmt: skip
    for row, cells in enumerate(line_rows or [], start=1):
        number, speaker, kind, words = (_cell(cells, i) for i in range(4))
        if not (speaker or words):
            continue
        drafts[_panel_number(number, row, n) - 1].lines.append((speaker, kind.lower() or "speech", words))
    return drafts


def drafts_from_panels(panels: Sequence[Panel]) -> list[Draft]:
    """A parsed or recorded script -> drafts."""
    return [
        Draft(
            caption=p.caption or "", scene=p.sentence, place=format_place(p.regions),
            lines=[(line.speaker, line.kind, line.text) for line in p.dialogue],
        )  # fmt: skip
        for p in panels
    ]


# -- writing -----------------------------------------------------------------------------------


def people_in(draft: Draft, cast: Sequence[str]) -> list[str]:
    """Who the panel shows: the cast members its scene (or, with no scene yet, its caption) names."""
    text = draft.scene or draft.caption
    return api.describe_panel(text, list(cast))[1] if text and cast else []


def tidy_drafts(drafts: Sequence[Draft], cast: Sequence[str], keep_blank: bool = False) -> list[Draft]:
    """A missing scene worked out from the caption with names in full, short names in scenes and
    speakers spelled in full, and blank panels dropped (their dialogue numbers follow) unless kept."""
    kept = []
    for draft in drafts:
        if draft.blank:
            if keep_blank:
                kept.append(draft)
            continue
        scene = draft.scene or draft.caption
        scene = api.describe_panel(scene, list(cast))[0] if scene and cast else scene
        lines = [(_full_name(s, cast) if s else s, k, w) for s, k, w in draft.lines]
        kept.append(replace(draft, scene=scene, lines=lines))
    return kept


def tables_of(drafts: Sequence[Draft], cast: Sequence[str]) -> tuple[list[list[str]], list[list[str]], list[list[Any]]]:
    """Drafts -> (panel rows, scene rows, dialogue rows) as the page shows them."""
    panels = [[d.caption, ", ".join(people_in(d, cast)) or (NOBODY if d.scene else ""), d.place] for d in drafts]
    scenes = [[d.scene] for d in drafts]
    lines = [[i, s, k, w] for i, d in enumerate(drafts, start=1) for s, k, w in d.lines]
    return panels, scenes, lines


def texts_of(drafts: Sequence[Draft], cast: Sequence[str]) -> list[tuple[str | None, list[Line]]]:
    """What is lettered on each panel: (caption, dialogue lines), checked."""
    return [(p.caption, list(p.dialogue)) for p in panels_of(drafts, cast)]


# -- strict: drafts -> the core's panels ---------------------------------------------------------


def panels_of(drafts: Sequence[Draft], cast: Sequence[str]) -> list[Panel]:
    """Drafts -> panels, checked like any script; every message names the panel (and line) to fix.

    A panel whose scene names nobody in the cast is a scene panel, drawn without identities.
    """
    drafts = tidy_drafts(drafts, cast)
    scenes = [Panel(sentence=d.scene, characters=people_in(d, cast)) for d in drafts]
    check_panel_count(scenes)  # empty script, too many panels, a sentence far over a prompt's length
    panels = []
    for number, (draft, scene) in enumerate(zip(drafts, scenes), start=1):
        if len(draft.caption) > MAX_CAPTION_CHARS:
            raise InputError(
                f"panel {number}'s caption is {len(draft.caption):,} characters; a narration box holds "
                f"{MAX_CAPTION_CHARS:,}: shorten it or split the panel"
            )
        lines = [_line(number, i, line, cast) for i, line in enumerate(draft.lines, start=1)]
        if len(lines) > MAX_LINES_PER_PANEL:
            raise InputError(f"panel {number} has {len(lines)} lines of dialogue; a panel holds {MAX_LINES_PER_PANEL}")
        regions = parse_place(draft.place, scene.characters, number, cast)
        update = {"caption": draft.caption or None, "dialogue": lines, "regions": regions}
        panels.append(scene.model_copy(update=update))
    return panels


def _full_name(name: str, cast: Sequence[str]) -> str:
    """A speaker or a placed person as typed ("grace", "Hopper") -> the cast member's full name."""
    if not cast:
        return name
    by_key = {name_key(n): n for n in cast}
    if name_key(name) in by_key:
        return by_key[name_key(name)]
    found = api.describe_panel(name, list(cast))[1] or api.describe_panel(name.title(), list(cast))[1]
    return found[0] if len(found) == 1 else name


def _line(panel: int, number: int, line: tuple[str, str, str], cast: Sequence[str]) -> Line:
    speaker, kind, words = line
    where = f"panel {panel}, dialogue line {number}"
    if not words:
        raise InputError(f"{where}: what does {speaker or 'the speaker'} say? Type the words, or clear the row")
    if not speaker:
        raise InputError(
            f"{where}: who says {words[:40]!r}? Type a speaker from the cast ({', '.join(cast) or 'nobody yet'})"
        )
    if speaker not in cast:
        raise InputError(f"{where}: {speaker!r} is not in the cast ({', '.join(cast) or 'nobody yet'}); "
                         "pick them in step 2 or change the speaker")  # fmt: skip
    if kind not in KINDS:
        raise InputError(f"{where}: the kind is {kind!r}; use {', '.join(KINDS)}")
    if len(words) > MAX_LINE_CHARS:
        raise InputError(f"{where} is {len(words):,} characters; a balloon holds {MAX_LINE_CHARS}: split it")
    return Line(speaker=speaker, text=words, kind=kind)


def format_place(regions: dict[str, Any] | None) -> str:
    """``{"Grace Hopper": "left", "Eileen Collins": [0.5, 0, 1, 1]}`` -> the table's text."""
    parts = []
    for name, value in (regions or {}).items():
        text = ",".join(f"{v:g}" for v in value) if isinstance(value, (list, tuple)) else str(value)
        parts.append(f"{name}: {text}")
    return "; ".join(parts)


def parse_place(text: str, people: Sequence[str], panel: int, cast: Sequence[str]) -> dict[str, str] | None:
    """The table's "where they stand" -> the panel's region overrides (None: the scene's order).

    ``"Grace: left; Eileen Collins: 0.5,0,1,1"``: short names are spelled in full; the places
    themselves are checked by the core when the comic is made (a named place or four fractions).
    """
    text = tidy(text)
    if not text:
        return None
    places: dict[str, str] = {}
    for part in (p.strip() for p in text.split(";")):
        if not part:
            continue
        name, sep, value = part.rpartition(":")
        if not sep or not name.strip() or not value.strip():
            raise InputError(f"panel {panel}: write where people stand as 'Name: place' ({PLACE_HINT}), got {part!r}")
        full = _full_name(name.strip(), cast)
        if full not in people:
            raise InputError(
                f"panel {panel}: {name.strip()!r} is not in this panel (it shows {', '.join(people) or 'nobody'}); "
                f"place only the people it shows ({PLACE_HINT})"
            )
        places[full] = value.strip()
    return places or None


# -- row edits -----------------------------------------------------------------------------------


def insert_blank(drafts: list[Draft], at: int) -> list[Draft]:
    return [*drafts[:at], Draft(), *drafts[at:]]


def delete(drafts: list[Draft], index: int) -> list[Draft]:
    return [d for i, d in enumerate(drafts) if i != index]


def move(drafts: list[Draft], index: int, target: int) -> list[Draft]:
    drafts = list(drafts)
    drafts.insert(target, drafts.pop(index))
    return drafts
