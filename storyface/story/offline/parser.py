"""The offline parser's driver: sentences -> clauses -> dialogue -> who is who -> panels.

Each clause is one panel: its ``sentence`` is the scene (quoted speech cut out, every person named in
full), its ``caption`` the author's own words (minus the speech that became balloons; None when
nothing is left), its ``dialogue`` the lines with their speakers, and ``characters`` the cast it names
(empty: a scene panel, drawn without identities). A clause that is only a line of dialogue joins the
panel of its speaker's clause when the context says who speaks (:mod:`.exchange`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from ...errors import StoryError
from ...limits import MAX_PANELS
from ..schema import Line, Panel, PanelScript, cap_panels, check_story, clean_cast, missing_cast_warning
from .cast import Cast, learn_genders
from .clauses import split_clauses
from .coref import Resolved, State, resolve_clause, subject_of
from .dialogue import Speech, caption_of, find_speech, scene_of, tidy_text
from .exchange import Talk, add_lines, fit_caption, join_captions, make_lines
from .sentences import sentence_units
from .words import REPLY_VERBS, snippet

log = logging.getLogger(__name__)


@dataclass
class _Reader:
    """Everything the parser carries from one clause to the next."""

    cast: Cast
    state: State = field(default_factory=State)
    talk: Talk = field(default_factory=Talk)
    panels: list[Panel] = field(default_factory=list)
    paragraphs: list[int] = field(default_factory=list)  # each panel's paragraph
    warnings: list[str] = field(default_factory=list)

    def people_of(self, panel: Panel) -> list[int]:
        return [self.cast.names.index(c) for c in panel.characters]

    # -- a clause with narration (and maybe tagged dialogue) -----------------------------------------

    def clause(self, clause: str, paragraph: int) -> None:
        speech = find_speech(clause, self.cast)
        if speech.pure:
            self._untagged(speech, paragraph)
            return
        raw, starts = scene_of(speech)
        scene = tidy_text(raw) or clause
        before, after = self.cast.mentions(raw), self.cast.mentions(scene)
        index = {m.start: i for i, m in enumerate(before)} if len(before) == len(after) else {}
        hints = {}
        for u, start in zip(speech.utterances, starts):
            i = index.get(start) if start is not None else None
            if i is not None and after[i].kind == "pronoun" and u.tag:
                verb = clause[u.tag.verb[0] : u.tag.verb[1]].lower()
                hint = self.talk.reply_hint(paragraph, verb in REPLY_VERBS)
                if hint is not None:
                    hints[after[i].start] = hint
        resolved_text, resolved = resolve_clause(scene, self.cast, self.state, self.warnings, hints)
        lines, spoken, speakers = self._tagged_lines(speech, starts, index, resolved)
        panel = Panel(
            sentence=resolved_text,
            characters=self.cast.full_names_in(resolved_text),
            caption=fit_caption(caption_of(speech, spoken), self.warnings),
        )
        panel, rest = add_lines(panel, lines, self.warnings)
        if rest:
            panel = panel.model_copy(update={"caption": fit_caption(clause, self.warnings)})
        panel = self._take_pending(panel, paragraph, subject_of(resolved))
        self._add(panel, paragraph)
        people = self.people_of(panel)
        for speaker in speakers:
            self.talk.spoke(speaker, paragraph, people, self.state.group([]))
        if not speakers:
            self.talk.narrated(paragraph, subject_of(resolved), people)

    def _tagged_lines(
        self, speech: Speech, starts: list[int | None], index: dict[int, int], resolved: list[Resolved]
    ) -> tuple[list[Line], set[int], list[int]]:
        lines: list[Line] = []
        spoken: set[int] = set()
        speakers: list[int] = []
        for n, (u, start) in enumerate(zip(speech.utterances, starts)):
            who: tuple[int, ...] | None = None
            if u.tag and u.tag.by_subject:
                who = subject_of(resolved)
            elif start is not None and start in index and index[start] < len(resolved):
                who = resolved[index[start]].people
            made = None
            if who and len(who) == 1:
                made = make_lines(self.cast.names[who[0]], u.text, u.tag.kind(speech.clause), self.warnings)
            if made is None:
                self._unattributed(u.text, speech.clause, who)
                continue
            lines += made
            spoken.add(n)
            speakers.append(who[0])
        return lines, spoken, speakers

    def _unattributed(self, text: str, clause: str, who: tuple[int, ...] | None) -> None:
        why = "several people" if who else "no one in the cast"
        self.warnings.append(
            f"could not tell who says {snippet(text)} (the tag names {why}); left it in the narration of {snippet(clause)}"
        )

    # -- a clause that is only a quotation -------------------------------------------------------------

    def _untagged(self, speech: Speech, paragraph: int) -> None:
        self._flush_pending()  # an earlier untagged line is followed by another, not by a beat
        talk, text = self.talk, speech.utterances[0].text if speech.utterances else ""
        if not text:
            return
        clause = speech.clause
        if self.panels and talk.actor is not None and talk.actor_paragraph == paragraph:
            speaker = talk.actor
            if self.cast.names[speaker] in self.panels[-1].characters:
                self._join_previous(speaker, text, clause)
                return
            self._new_line_panel(speaker, text, clause, paragraph)
            return
        other = talk.other(talk.last_speaker) if talk.last_speaker is not None else None
        if other is not None and paragraph != talk.line_paragraph:
            self._new_line_panel(other, text, clause, paragraph)
            return
        talk.pending.append((text, clause, paragraph))

    def _join_previous(self, speaker: int, text: str, clause: str) -> None:
        made = make_lines(self.cast.names[speaker], text, "speech", self.warnings)
        if made is None:
            self._to_narration(clause)
            return
        panel, rest = add_lines(self.panels[-1], made, self.warnings)
        if rest:
            panel = panel.model_copy(update={"caption": fit_caption(join_captions(panel.caption, clause), self.warnings)})
        self.panels[-1] = panel
        self.talk.spoke(speaker, self.paragraphs[-1], self.people_of(panel), self.state.group([]))
        self.state.saw((speaker,))

    def _new_line_panel(self, speaker: int, text: str, clause: str, paragraph: int) -> None:
        name = self.cast.names[speaker]
        listener = self.talk.other(speaker)
        scene = f"{name} spoke to {self.cast.names[listener]}." if listener is not None else f"{name} spoke."
        made = make_lines(name, text, "speech", self.warnings)
        if made is None:
            self._to_narration(clause)
            return
        panel = Panel(sentence=scene, characters=self.cast.full_names_in(scene), caption=None)
        panel, rest = add_lines(panel, made, self.warnings)
        if rest:
            panel = panel.model_copy(update={"caption": fit_caption(clause, self.warnings)})
        self._add(panel, paragraph)
        self.talk.spoke(speaker, paragraph, self.people_of(panel), self.state.group([]))
        self.state.saw((speaker,))
        self.state.subject = (speaker,)

    def _take_pending(self, panel: Panel, paragraph: int, subject: tuple[int, ...] | None) -> Panel:
        """Untagged lines just before this clause are its subject's, when in the same paragraph (a beat)."""
        pending, self.talk.pending = self.talk.pending, []
        for text, clause, where in reversed(pending):
            name = self.cast.names[subject[0]] if subject and len(subject) == 1 and where == paragraph else None
            made = make_lines(name, text, "speech", self.warnings) if name and name in panel.characters else None
            if made is None:
                self._say_unattributed(text, clause)
                panel = panel.model_copy(update={"caption": join_captions(clause, panel.caption)})
                continue
            panel, rest = add_lines(panel, made, self.warnings, at_start=True)
            if rest:
                panel = panel.model_copy(update={"caption": join_captions(clause, panel.caption)})
        return panel.model_copy(update={"caption": fit_caption(panel.caption, self.warnings)})

    def _say_unattributed(self, text: str, clause: str) -> None:
        self.warnings.append(f"could not tell who says {snippet(text)}; left it in the narration")
        log.debug("unattributed line in %s", snippet(clause))

    def _flush_pending(self) -> None:
        """Untagged lines that no beat followed: narration of the panel before them."""
        pending, self.talk.pending = self.talk.pending, []
        for text, clause, _ in pending:
            self._say_unattributed(text, clause)
            self._to_narration(clause)

    def _to_narration(self, clause: str) -> None:
        if self.panels:
            last = self.panels[-1]
            caption = fit_caption(join_captions(last.caption, clause), self.warnings)
            self.panels[-1] = last.model_copy(update={"caption": caption})
        else:
            self.talk.orphan_caption = join_captions(self.talk.orphan_caption, clause)

    def _add(self, panel: Panel, paragraph: int) -> None:
        if self.talk.orphan_caption:
            caption = fit_caption(join_captions(self.talk.orphan_caption, panel.caption), self.warnings)
            panel = panel.model_copy(update={"caption": caption})
            self.talk.orphan_caption = None
        self.panels.append(panel)
        self.paragraphs.append(paragraph)

    def finish(self) -> None:
        self._flush_pending()
        if self.talk.orphan_caption:  # a story of untagged lines only: nothing to hang them on
            self.warnings.append(f"left out {snippet(self.talk.orphan_caption)}: no panel to narrate it in")


def parse_story_offline(story: str, cast: list[str], *, genders: Mapping[str, str | None] | None = None) -> PanelScript:
    """Turn a story into panels with rules only (see :mod:`storyface.story.offline`); no network, deterministic.

    ``genders`` (full name -> "m" / "f" / None) overrides the first-name list where it guesses wrong.
    """
    text, names = check_story(story), clean_cast(cast)
    people = Cast.build(names)
    learn_genders(people, text, genders)
    reader = _Reader(people)
    unread = 0  # clauses after the panels a comic can hold: counted for the warning, not resolved
    for unit in sentence_units(text):
        clauses = split_clauses(unit.text, people)
        if len(reader.panels) > MAX_PANELS and any(p.characters for p in reader.panels):
            unread += len(clauses)
            continue
        for clause in clauses:
            reader.clause(clause, unit.paragraph)
    reader.finish()
    panels, warnings = reader.panels, reader.warnings
    if not any(p.characters for p in panels):
        raise StoryError(
            f"the story names no one in the cast ({', '.join(names)}): use their names (a first or last name is enough)"
        )
    if unread:
        warnings.append(
            f"the story makes {len(panels) + unread} panels; kept the first {MAX_PANELS} (split it into several comics)"
        )
        panels = panels[:MAX_PANELS]
    panels = cap_panels(panels, warnings)
    note = missing_cast_warning(names, panels)
    script = PanelScript(panels=panels, backend="offline", warnings=[*([note] if note else []), *warnings], cast=names)
    log.info("offline parser: %d panels, %d warnings", len(script.panels), len(script.warnings))
    return script
