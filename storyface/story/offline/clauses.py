"""Cutting a compound sentence into one action per panel.

A sentence is cut before ``; ``; before ``and then`` / ``, then`` when a subject follows (a person's
name or he/she/they/both/the two/the pair; the new sentence starts with "Then"); and before ``and he``
/ ``and she`` / ``and they`` unless everything before the "and" is people ("Taylor and he went" stays
whole). Nothing inside a quotation is cut, and nothing else: "when", "while", relative clauses stay.
"""

from __future__ import annotations

import re

from .cast import Cast
from .quotes import find_quotes, inside_quotes
from .words import PRONOUNS, WORD, as_sentence, trim_end

SUBJECT_WINDOW = 120  # characters after a cut searched for its subject: a name or pronoun comes first
CLAUSE_CUT = re.compile(
    r"(?P<semi>\s*;\s+)"
    r"|(?P<then>,?\s+and\s+then\s+|,\s*then\s+)"
    r"|(?P<and>,?\s+and\s+)(?=(?:he|she|they)(?![\w-]))",
    re.IGNORECASE,
)


def finish(piece: str) -> str:
    """A clause as a sentence: no dangling comma, a capital first letter, a final full stop."""
    return as_sentence(trim_end(piece.strip(), ",;:"))


def _has_action(fragment: str, cast: Cast) -> bool:
    """Is there more than people in ``fragment``? ("Taylor and he went" must not be cut at "and")."""
    rest, pos = [], 0
    for m in cast.mentions(fragment):
        rest.append(fragment[pos : m.start])
        pos = m.end
    rest.append(fragment[pos:])
    return any(w.lower() not in {"and", "or"} for w in WORD.findall(" ".join(rest)))


def _subject_at(text: str, pos: int, cast: Cast) -> bool:
    """Does a person (a name or he/she/they/both/the two) start at ``pos``?"""
    found = cast.mentions(text[pos : pos + SUBJECT_WINDOW])
    if not found or found[0].start != 0:
        return False
    first = found[0]
    return first.kind != "pronoun" or PRONOUNS[first.word][1] == "subj"


def split_clauses(sentence: str, cast: Cast) -> list[str]:
    """Cut a compound sentence into one action per sentence (see the module docstring)."""
    pieces: list[str] = []
    start, prefix = 0, ""
    quotes = find_quotes(sentence)
    for m in CLAUSE_CUT.finditer(sentence):
        if m.start() < start or inside_quotes(quotes, m.start()):
            continue
        if not _has_action(sentence[start : m.start()], cast):
            continue
        if m.group("then") and not _subject_at(sentence, m.end(), cast):
            continue
        pieces.append(finish(prefix + sentence[start : m.start()]))
        prefix, start = ("Then " if m.group("then") else ""), m.end()
    pieces.append(finish(prefix + sentence[start:]))
    return pieces
