"""Steps 3 and 4 of the web app and the result: story -> panels, the comic, redraws and re-lettering.

No ``from __future__ import annotations`` here: Gradio resolves these hints at runtime.
"""

import json
import logging
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import gradio as gr

from .. import api
from ..errors import InputError, StoryError, StoryFaceError
from ..identity.tokens import Identity
from ..limits import MAX_PANELS, MAX_RENDER_STEPS, MAX_SEED
from . import script_table as table
from . import views
from .handlers_base import HandlerBase, optional_number, user_errors, whole_number

log = logging.getLogger(__name__)

NO_COMIC = "No comic yet: make one with step 4, then click a panel here to draw it again."
PICK_PANEL = "Click a panel to pick it, then press Redraw to draw it again with a new seed."
PICK_ROW = "Click a row to pick it; then delete it or move it."
AUTO = "auto"  # the dropdowns' "let StoryFace choose" value


@dataclass
class ComicSession:
    """The last comic of a browser session: enough to redraw a panel and to letter it again."""

    out_dir: Path
    identities: list[Identity]
    references: dict  # name -> the library headshot the likeness is measured against
    scores: list  # api.PanelScore per panel, shown on its tile
    loras: list[str]  # fused again for a redraw
    quality: str
    kind: str | None
    cast: list[str]
    redrawn: int | None = None  # index of the panel just drawn again (outlined)


def comic_outputs(session: ComicSession) -> tuple[list, list, list[str], dict]:
    """pages (gallery), panel tiles (badge, full caption), download files, the record."""
    folder = api.ComicFolder(session.out_dir)
    record = folder.read()
    pages = [(str(p), f"Page {i}") for i, p in enumerate(folder.page_pngs(), start=1)]
    tiles = []
    for i, panel in enumerate(record.panels, start=1):
        score = session.scores[i - 1] if i - 1 < len(session.scores) else None
        badge, tone = views.likeness_badge(score, panel.characters)
        redrawn = session.redrawn == i - 1
        art = views.tile_image(folder.panel_image(i, panel), badge, tone, redrawn)
        tiles.append((art, views.tile_caption(i, panel, score, redrawn)))
    downloads = [str(p) for p in [*folder.page_pngs(), folder.book_pdf, folder.book_cbz] if p.is_file()]
    return pages, tiles, downloads, json.loads(folder.manifest.read_text())


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _picked(value: Any, n: int) -> int | None:
    """The row or panel number in a picker box, when it is one of 1..n."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return int(number) if number.is_integer() and 1 <= number <= n else None


def _row_index(row: Any, n: int) -> int:
    if n == 0:
        raise InputError("the panel list is empty: write a story and press Split into panels, or add a row")
    if _empty(row):
        raise InputError("click a row in the panel table first (or type its number in Row)")
    return whole_number(row, "the row number (click a row in the table, or type its number)", 1, n) - 1


class ComicHandlers(HandlerBase):
    """Split the story, edit the panels, make the comic, redraw a panel, letter the page again."""

    # -- 3. story ------------------------------------------------------------------------------

    @user_errors("story")
    def process_text(self, story: str, cast: list | None, request: gr.Request) -> tuple:
        """Story -> panels (the author's words as captions, a scene to draw, dialogue); the library
        people the story names join the cast."""
        story = story or ""
        if not re.search(r"\w", story):
            raise StoryError("the story is empty: write a few sentences about the people in it")
        names = self._story_cast(cast, story)
        if not names:
            library = self.library_names()
            if not library:
                raise StoryError("the library is empty: add people in step 1 and train them, then split the story")
            raise StoryError(
                f"the story names no one in the library ({', '.join(library)}): use their names (a first or last "
                "name is enough), or add the people in step 1"
            )
        script = api.parse_story(story, names)
        rows = table.tables_of(table.drafts_from_panels(script.panels), names)
        scenes = sum(1 for p in script.panels if not p.characters)
        n = len(script.panels)
        note = f"{n} panel{'s' if n != 1 else ''}" + (f", {scenes} of them a scene with no one in it" if scenes else "")
        note += ". Edit any caption or line of dialogue below." + "".join(f"\nNote: {w}" for w in script.warnings)
        return (*rows, names, views.status(note))

    def _drafts(self, panels: Any, scenes: Any, lines: Any, cast: list | None) -> tuple[list, list[str]]:
        drafts = table.drafts_from_tables(panels, scenes, lines)
        names = self._story_cast(cast, " ".join(d.scene or d.caption for d in drafts))
        return table.tidy_drafts(drafts, names, keep_blank=True), names

    @user_errors("story")
    def update_panels(self, panels: Any, scenes: Any, lines: Any, cast: list | None, session: Any,
                      request: gr.Request) -> tuple:  # fmt: skip
        """After a hand edit: names in full, people worked out again; with a comic on the page, an edited
        caption or line of dialogue letters the page again (no model, the art stays)."""
        drafts, names = self._drafts(panels, scenes, lines, cast)
        rows = table.tables_of(drafts, names)
        result: tuple = (gr.skip(),) * 6
        try:
            script = table.panels_of(drafts, names)
        except StoryFaceError as exc:
            return (*rows, views.error_status(views.plain_words(str(exc))), *result)
        note = ""
        if isinstance(session, ComicSession):
            note, result = self._reletter(session, script)
        return (*rows, views.status(note), *result)

    def _reletter(self, session: ComicSession, script: Sequence[Any]) -> tuple[str, tuple]:
        """(story step's note, the result's six outputs) after an edit, with a comic on the page."""

        def result_note(text: str, kind: str = "info") -> tuple:
            return (*(gr.skip(),) * 4, views.status(text, kind), gr.skip())

        record = api.ComicFolder(session.out_dir).read()
        same_art = len(script) == len(record.panels) and all(
            p.sentence == r.sentence and p.characters == r.characters for p, r in zip(script, record.panels)
        )
        if not same_art:
            return "", result_note("The panels changed: press Make the comic to draw them.")
        texts = [(p.caption, list(p.dialogue)) for p in script]
        if texts == [(r.caption, list(r.dialogue)) for r in record.panels]:
            moved = [str(i) for i, (p, r) in enumerate(zip(script, record.panels), 1)
                     if (p.regions or None) != (r.region_overrides or None)]  # fmt: skip
            if moved:
                return "", result_note(f"Where people stand changes the drawing of panel {', '.join(moved)}: "
                                       "press Make the comic to draw it.")  # fmt: skip
            return "", (gr.skip(),) * 6
        try:
            api.reletter(session.out_dir, self.s.renderer.policy, texts=texts)
        except StoryFaceError as exc:
            return "", result_note(views.plain_words(str(exc)), "error")
        session.redrawn = None
        done = views.status("The page was lettered again with your edit (the art was not redrawn).")
        return "Lettered the page again.", (*comic_outputs(session), done, session)

    def select_row(self, evt: gr.SelectData) -> str:
        return str(int(evt.index[0]) + 1 if isinstance(evt.index, (list, tuple)) else int(evt.index) + 1)

    def row_tools(self, row: Any, panels: Any) -> tuple:
        """Delete and move act on a picked row: enabled only when one is."""
        picked = _picked(row, len(panels or []))
        hint = f"Row {picked} picked." if picked else PICK_ROW
        return (*(gr.update(interactive=bool(picked)),) * 3, hint)

    @user_errors("story")
    def add_panel(self, panels: Any, scenes: Any, lines: Any, row: Any, cast: Any, request: gr.Request) -> tuple:
        """A blank row after the picked one (at the end when none is picked), to type a caption in."""
        drafts, names = self._drafts(panels, scenes, lines, cast)
        at = len(drafts) if _empty(row) or not drafts else _row_index(row, len(drafts)) + 1
        drafts = table.insert_blank(drafts, at)
        note = f"Added panel {at + 1}: type its caption (the scene to draw is worked out from it)."
        return (*table.tables_of(drafts, names), str(at + 1), views.status(note))

    @user_errors("story")
    def delete_panel(self, panels: Any, scenes: Any, lines: Any, row: Any, cast: Any, request: gr.Request) -> tuple:
        drafts, names = self._drafts(panels, scenes, lines, cast)
        index = _row_index(row, len(drafts))
        drafts = table.delete(drafts, index)
        picked = str(min(index + 1, len(drafts)) or "")
        return (*table.tables_of(drafts, names), picked, views.status(f"Deleted panel {index + 1}."))

    @user_errors("story")
    def move_panel_up(self, panels: Any, scenes: Any, lines: Any, row: Any, cast: Any, request: gr.Request) -> tuple:
        return self._move(panels, scenes, lines, row, cast, -1)

    @user_errors("story")
    def move_panel_down(self, panels: Any, scenes: Any, lines: Any, row: Any, cast: Any, request: gr.Request) -> tuple:
        return self._move(panels, scenes, lines, row, cast, +1)

    def _move(self, panels: Any, scenes: Any, lines: Any, row: Any, cast: list | None, offset: int) -> tuple:
        drafts, names = self._drafts(panels, scenes, lines, cast)
        index = _row_index(row, len(drafts))
        target = min(max(index + offset, 0), len(drafts) - 1)
        drafts = table.move(drafts, index, target)
        note = views.status(f"Panel {index + 1} is now panel {target + 1}.")
        return (*table.tables_of(drafts, names), str(target + 1), note)

    @user_errors("story")
    def add_line(self, panels: Any, scenes: Any, lines: Any, row: Any, cast: Any, request: gr.Request) -> tuple:
        """A new line of dialogue for the picked panel (the last one when none is picked)."""
        drafts, names = self._drafts(panels, scenes, lines, cast)
        if not drafts:
            raise InputError("split a story into panels first (or add a row), then add its dialogue")
        index = len(drafts) - 1 if _empty(row) else _row_index(row, len(drafts))
        people = table.people_in(drafts[index], names)
        drafts[index].lines.append((people[0] if people else "", "speech", ""))
        note = f"Added a line to panel {index + 1}: type who says it and the words."
        return table.tables_of(drafts, names)[2], views.status(note)

    # -- 4. the comic ----------------------------------------------------------------------------

    @user_errors("comic")
    def generate(
        self, panels: Any, cast: list | None, styles: list | None, free_style: str, title: str, seed: Any, steps: Any,
        scenes: Any = None, lines: Any = None, layout: str = "grid", page_size: str = AUTO, rtl: bool = False,
        lettering: bool = True, quality: str = "standard", loras: str = "", fast_kind: str = AUTO,
        looks: Any = None, request: gr.Request = None, progress: gr.Progress = gr.Progress(),
    ) -> tuple:  # fmt: skip
        """Draw every panel, letter it, lay out the pages; measure each panel's likeness."""
        api.check_comic_text(free_style=free_style, title=title, styles=list(styles or []))  # before any work
        drafts = table.drafts_from_tables(panels, scenes, lines)
        names = self._story_cast(cast, " ".join(d.scene or d.caption for d in drafts))
        script = table.panels_of(drafts, names)
        seed = optional_number(seed, "the seed", 0, MAX_SEED - MAX_PANELS) or 0
        steps = optional_number(steps, "drawing steps", 1, MAX_RENDER_STEPS)
        quality = (quality or "standard").strip().lower()
        if steps is None and quality == "standard":
            steps = self.s.render_steps
        lora_specs = [line.strip() for line in (loras or "").splitlines() if line.strip()]
        kind = None if fast_kind in (None, "", AUTO) else fast_kind
        book = api.BookSettings.of(layout=layout or "grid", preset=None if page_size in (None, "", AUTO) else page_size,
                                   rtl=bool(rtl), lettering=bool(lettering), pdf=True, cbz=True)  # fmt: skip
        rows = [r for r in looks or [] if isinstance(r, (list, tuple)) and len(r) > 2]
        appearance = {r[0]: r[2] for r in rows if r[0] in names and r[2]}  # this story's looks win over the kept ones
        members = api.identities_for(names, self.s.library)
        identities = [m.identity for m in members]
        headshots = {m.identity.name: m.reference for m in members if m.reference is not None}
        out_dir = self.s.comics_dir / f"{datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
        with self._device(progress):
            config, _, fused = api.render_settings(self.s.renderer, quality, lora_specs, steps=steps, kind=kind)
            try:
                comic = api.make_comic(
                    self.s.renderer, script, identities, out_dir, styles=list(styles or []),
                    free_style=free_style or "", config=config, seed=seed, title=(title or "").strip() or None,
                    book=book, appearance=appearance, callback=self._render_progress(progress), references=headshots,
                )  # fmt: skip
            finally:
                if fused:
                    self.s.renderer.use_loras([])  # training and other sessions get the base weights back
        progress(1.0, desc="measuring likeness")
        scores = api.comic_likeness(comic, headshots)
        session = ComicSession(out_dir, identities, headshots, scores, lora_specs, quality, kind, names)
        pages, tiles, downloads, record = comic_outputs(session)
        notice = self.s.model.notice if self.s.model.random_weights else None
        summary = views.status(views.comic_summary(len(pages), len(tiles), comic.warnings, notice))
        return (pages, tiles, downloads, record, summary, session, gr.update(interactive=False, value="Redraw panel"),
                "", views.status(PICK_PANEL, "info"))  # fmt: skip

    def select_panel(self, evt: gr.SelectData) -> str:
        return str(int(evt.index) + 1)

    def redraw_tools(self, number: Any, session: Any) -> tuple:
        """Redraw acts on a picked panel of a comic: enabled only then."""
        picked = _picked(number, len(session.scores) if isinstance(session, ComicSession) else 0)
        return gr.update(interactive=bool(picked), value=f"Redraw panel {picked}" if picked else "Redraw panel")

    @user_errors("result")
    def regenerate_panel(self, number: Any, session: Any, request: gr.Request = None,
                         progress: gr.Progress = gr.Progress()) -> tuple:  # fmt: skip
        """Draw one panel again with a fresh seed; every other panel stays exactly as it was."""
        if not isinstance(session, ComicSession):
            raise InputError("make a comic first (step 4), then click a panel to draw it again")
        if _empty(number):
            raise InputError("click a panel first, then press Redraw")
        n = len(session.scores)
        index = whole_number(number, "the panel number (click a panel)", 1, n) - 1
        with self._device(progress):
            progress(0, desc=f"drawing panel {index + 1} again")
            fused = []
            try:
                if session.loras:
                    _, _, fused = api.render_settings(self.s.renderer, session.quality, session.loras,
                                                      kind=session.kind)  # fmt: skip
                comic = api.redraw_panel(self.s.renderer, session.out_dir, index + 1, session.identities,
                                         references=session.references)  # fmt: skip
            finally:
                if fused:
                    self.s.renderer.use_loras([])
        scores = list(session.scores)
        scores[index] = api.comic_likeness(comic, session.references)[index]
        session = ComicSession(session.out_dir, session.identities, session.references, scores, session.loras,
                               session.quality, session.kind, session.cast, redrawn=index)  # fmt: skip
        pages, tiles, downloads, record = comic_outputs(session)
        done = views.status(f"Panel {index + 1} was drawn again with a new seed (outlined); the others are unchanged.")
        return pages, gr.update(value=tiles, selected_index=index), downloads, record, done, session

    @staticmethod
    def _render_progress(progress: gr.Progress) -> Callable[[int, int], None]:
        def report(done: int, total: int) -> None:
            progress((done, total), desc="drawing panels", unit="steps")

        return report
