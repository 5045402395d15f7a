"""Cutting a story into sentences, in English and in scripts with their own full stops.

A sentence ends at ``.``, ``!``, ``?`` or an ellipsis followed by a space and a capital, digit or
opening quote, or at a blank line; at a full stop of another script followed by a space (Arabic ``؟``
and ``۔``, Devanagari ``।``, Armenian ``։``, Ethiopic ``።``, the Greek question mark ``;``); and at a CJK full stop (``。！？``, which
needs no space after it: Chinese and Japanese have none). No cut after an abbreviation (``Mr.``,
``e.g.``) or an initial (``J. K.``), inside a quotation, or before a speech tag that follows its quote
(``"Go!" Hugh said.``, ``“走！”她说。``, ``「行こう」と言った。``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ...limits import MAX_SENTENCE_CHARS
from ...names import tidy
from .quotes import CLOSING, Quote, find_quotes, inside_quotes
from .words import ABBREVIATIONS, SPEECH_KINDS, WORD

NO_SPACE_STOPS = "。！？｡။។"  # stops of scripts written without spaces: the next sentence follows at once
SPACED_STOPS = ".!?‼⁇⁈⁉…؟۔।॥።։"
GREEK = "\u0370-\u03ff\u1f00-\u1fff"
GREEK_QUESTION = rf"(?<=[{GREEK}])[;\u037e]"  # Greek writes "?" as ";" ("Πού είσαι; Ο Νίκος ...")
# closing marks a stop takes along; “ and « close only German/Danish quotes, so only before a space
AFTER_STOP = r"(?:[\"'”’»」』﹂﹄›)\]）】〕]|[“«](?=\s|$))*"
TERMINATOR = re.compile(rf"(?:(?:[{re.escape(SPACED_STOPS)}{NO_SPACE_STOPS}])+|{GREEK_QUESTION}){AFTER_STOP}")
# Chinese and Japanese verbs of saying that may follow a closed quote: 她说, 他问道, と言った
# (not when the verb opens the next quotation: “…。”艾琳说：“…” is two sentences)
CJK_SPEECH_TAG = re.compile(r"^[^。！？，、：；.!?,]{0,12}?(?:说|說|道|问|問|喊|叫|答|想|と|って)(?!道?\s*[：:，,]\s*[“「『\"])")
LOOKBEHIND = 40  # characters before a period searched for an abbreviation ("e.g.", "Dr")
MAX_TAG_LOOKAHEAD = 60  # characters after a quote searched for "said"/"asked": a tag is a few words


@dataclass(frozen=True)
class Unit:
    """One sentence and its paragraph: a new paragraph starts at every line break (dialogue rules use it)."""

    text: str
    paragraph: int


def _is_abbreviation(text: str, end: int) -> bool:
    """Does the single period at ``text[end-1]`` close an abbreviation or an initial?"""
    m = re.search(r"([\w.]+)\.$", text[max(0, end - LOOKBEHIND) : end])
    if not m:
        return False
    word = m.group(1).lower()
    return word in ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def _speech_tag_follows(text: str, pos: int) -> bool:
    words = WORD.findall(text[pos : pos + MAX_TAG_LOOKAHEAD])[:3]
    return any(w.lower() in SPEECH_KINDS for w in words)


def _ends_sentence(para: str, m: re.Match, quotes: list[Quote]) -> bool:
    rest = para[m.end() :]
    if not rest.strip() or inside_quotes(quotes, m.end()):
        return False
    closed_quote = m.group()[-1] in CLOSING
    if any(c in NO_SPACE_STOPS for c in m.group()):
        return not (closed_quote and CJK_SPEECH_TAG.match(rest.lstrip()))
    if not rest[:1].isspace():
        return False
    if rest.lstrip()[0].islower():
        return False
    if m.group() == "." and _is_abbreviation(para, m.end()):
        return False
    return not (closed_quote and _speech_tag_follows(para, m.end()))


def sentence_units(text: str) -> list[Unit]:
    """The story's sentences with their paragraph numbers (see :class:`Unit`)."""
    units: list[Unit] = []
    paragraph = -1
    for block in re.split(r"\n\s*\n", text):
        quotes = find_quotes(block)
        cuts = [m.end() for m in TERMINATOR.finditer(block) if _ends_sentence(block, m, quotes)]
        start, first = 0, True
        for end in [*cuts, len(block)]:
            piece = block[start:end]
            start = end
            if not piece.strip():
                continue
            lead = piece[: len(piece) - len(piece.lstrip())]
            if first or "\n" in lead:
                paragraph += 1
            first = False
            units += [Unit(part, paragraph) for part in _bounded(tidy(piece))]
    return units


def _bounded(sentence: str) -> list[str]:
    """A "sentence" longer than MAX_SENTENCE_CHARS (no full stop in a pasted page) cut at spaces into
    pieces that fit: no panel can hold more, and the rules after this one are quadratic in its length."""
    pieces = []
    while len(sentence) > MAX_SENTENCE_CHARS:
        cut = sentence.rfind(" ", 0, MAX_SENTENCE_CHARS)
        cut = cut if cut > 0 else MAX_SENTENCE_CHARS
        pieces.append(sentence[:cut].strip())
        sentence = sentence[cut:].strip()
    return [*pieces, sentence] if sentence else pieces


def split_sentences(text: str) -> list[str]:
    """Cut a story into sentences (see the module docstring)."""
    return [unit.text for unit in sentence_units(text)]
