"""Who says an untagged line: the conversation so far, and the conventions of written dialogue.

A clause that is nothing but a quotation names no speaker, so the reader takes one from the context;
so does this module, in this order, and never further:

1. **Same paragraph, just after someone**: the speaker of the line before it (``"Look," she said. "A
   moth."``: she goes on), or the one person the clause before it was about (an action beat:
   ``Grace smiled. "I found it."``). The line joins that panel, as a second balloon.
2. **A new paragraph in a two-person exchange**: the other person of the pair (a new paragraph is a
   new speaker). The pair is the last two people who spoke to each other, or the speaker and the one
   other person of the last line's panel; anyone else named since breaks it.
3. **A beat right after it, in the same paragraph** (``"I found it." Grace held up the jar.``): that
   clause's one subject; the line joins its panel.

Otherwise the speaker is not guessed: a warning says so and the line stays in the narration caption.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...limits import MAX_CAPTION_CHARS, MAX_LINE_CHARS, MAX_LINES_PER_PANEL
from ..schema import Line, Panel
from .sentences import split_sentences

ELLIPSIS = "…"


@dataclass
class Talk:
    """The conversation as far as the parser has read."""

    last_speaker: int | None = None
    line_paragraph: int | None = None  # paragraph of the last line of dialogue
    pair: tuple[int, int] | None = None  # the two people talking to each other
    actor: int | None = None  # who the last clause was about: its speaker, or its one subject
    actor_paragraph: int | None = None
    pending: list[tuple[str, str, int]] = field(default_factory=list)  # untagged lines: (text, clause, paragraph)
    orphan_caption: str | None = None  # narration with no panel before it yet

    def other(self, person: int) -> int | None:
        """The other person of the pair, when ``person`` is in it."""
        if self.pair and person in self.pair:
            return self.pair[1] if self.pair[0] == person else self.pair[0]
        return None

    def reply_hint(self, paragraph: int, reply_verb: bool) -> int | None:
        """Who a tag pronoun likely means: the one who did not just speak, for "she replied" or a new paragraph."""
        if self.last_speaker is None or not (reply_verb or paragraph != self.line_paragraph):
            return None
        return self.other(self.last_speaker)

    def spoke(self, speaker: int, paragraph: int, panel_people: list[int], active: list[int]) -> None:
        """``speaker`` said a line; ``active``: the people the story is about now (the state's group)."""
        if self.last_speaker is not None and speaker != self.last_speaker:
            self.pair = (self.last_speaker, speaker)
        elif not (self.pair and speaker in self.pair):
            for group in (panel_people, active):
                if len(set(group)) == 2 and speaker in group:
                    self.pair = (speaker, next(p for p in group if p != speaker))
                    break
        self.last_speaker, self.line_paragraph = speaker, paragraph
        self.actor, self.actor_paragraph = speaker, paragraph

    def narrated(self, paragraph: int, subject: tuple[int, ...] | None, panel_people: list[int]) -> None:
        if self.pair and any(p not in self.pair for p in panel_people):
            self.pair = None  # someone else stepped in: who answers whom is no longer clear
        self.actor = subject[0] if subject and len(subject) == 1 else None
        self.actor_paragraph = paragraph


def make_lines(speaker: str, text: str, kind: str, warnings: list[str]) -> list[Line] | None:
    """A line of dialogue as balloons: a long speech is cut at its sentences into lines that fit
    MAX_LINE_CHARS; None (with a warning) when a single sentence is longer than that."""
    if len(text) <= MAX_LINE_CHARS:
        return [Line(speaker=speaker, text=text, kind=kind)]
    lines: list[str] = []
    for sentence in split_sentences(text):
        if len(sentence) > MAX_LINE_CHARS:
            warnings.append(
                f"{speaker}'s line {text[:40]!r}... has a sentence over {MAX_LINE_CHARS} characters, too long "
                "for a balloon; left it in the narration"
            )
            return None
        if lines and len(lines[-1]) + 1 + len(sentence) <= MAX_LINE_CHARS:
            lines[-1] += " " + sentence
        else:
            lines.append(sentence)
    return [Line(speaker=speaker, text=t, kind=kind) for t in lines]


def fit_caption(caption: str | None, warnings: list[str]) -> str | None:
    """A caption that fits its box's limit: cut at a word with an ellipsis, and said."""
    if caption is None or len(caption) <= MAX_CAPTION_CHARS:
        return caption
    cut = caption[: MAX_CAPTION_CHARS - 1].rsplit(" ", 1)[0]
    warnings.append(f"the caption {caption[:40]!r}... is over {MAX_CAPTION_CHARS} characters; shortened it")
    return cut + ELLIPSIS


def join_captions(first: str | None, second: str | None) -> str | None:
    return " ".join(c for c in (first, second) if c) or None


def add_lines(panel: Panel, lines: list[Line], warnings: list[str], at_start: bool = False) -> tuple[Panel, list[Line]]:
    """``panel`` with ``lines`` added (up to MAX_LINES_PER_PANEL); returns the panel and the lines that did not fit."""
    room = MAX_LINES_PER_PANEL - len(panel.dialogue)
    fit, rest = lines[: max(room, 0)], lines[max(room, 0) :]
    if rest:
        warnings.append(f"a panel holds at most {MAX_LINES_PER_PANEL} lines of dialogue; the rest stays in its caption")
    dialogue = [*fit, *panel.dialogue] if at_start else [*panel.dialogue, *fit]
    return panel.model_copy(update={"dialogue": dialogue}), rest
