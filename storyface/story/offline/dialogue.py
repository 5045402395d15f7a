"""Quoted speech in one clause: which quotations are dialogue, who is tagged as saying them, and what
is left to draw and to caption.

A quotation is dialogue when a speech tag is attached to it: after it (``"...," Grace said.``,
``"...?" she asked.``, ``"...," said Grace.``; the quotation ends in punctuation or a comma follows
it) or before it (``Grace said, "..."``, ``Grace turned and said: "..."``; a comma or colon between
them, or the quotation ends the clause). The tag is a speech verb (:data:`words.SPEECH_KINDS`, which
also gives the balloon: speech, thought, whisper) next to its speaker, optionally with adverbs and a
listener (``said to Eileen``, ``told her``). A quotation split around its tag (``"Look," she said, "a
moth."``) is one line. A clause that is nothing but quotations is dialogue whose speaker comes from the
context (:mod:`.exchange`). Every other quotation is not dialogue: scare quotes (the so-called
"genius"), titles (read "Moby Dick"), a quote with no tag; it stays in the caption, and in the scene
without its marks.

This module only finds the pieces; :mod:`.parser` resolves who the speaker words mean.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ...names import tidy
from .cast import Cast, Mention
from .cjk import tag_after_cjk, tag_before_cjk
from .quotes import PAIRS, Quote, find_quotes
from .words import (
    EMPTY_CAPTION_WORDS, PRONOUNS, QUIET_ADVERBS, SCENE_VERBS, SPEECH_KINDS, TITLES, WORD, as_sentence, is_adverb, trim_end,
)  # fmt: skip

TAG_WINDOW = 100  # characters before a quotation searched for its tag ("Grace turned to Eileen and said,")
MAX_TAG_WORDS = 5  # "the old night guard quietly said": a speaker and an adverb before the verb
OBJECT_VERBS = frozenset("told tells asked asks answered answers warned warns promised promises begged begs".split())
TAG_STOP = re.compile(r"[,.;:!?…—–()\[\]\n" + re.escape("".join(PAIRS) + "".join(PAIRS.values())) + "]")
SPEECH_END = tuple(",.!?…—–-‽")  # how a quotation before its tag ends ("Look," / "Look!")
DETERMINERS = frozenset("the a an his her their my our your its this that one another some every each".split())
QUIET = re.compile(r"\s*under\s+(?:his|her|their|my)\s+breath", re.IGNORECASE)
SELF = re.compile(r"\s*to\s+(?:himself|herself|themselves|themself|myself)", re.IGNORECASE)


@dataclass
class Tag:
    """A speech tag: the words that say who speaks. Spans are positions in the clause."""

    verb: tuple[int, int]
    start: int  # the whole tag, speaker included ("she said to Eileen"), or from "and" for "... and said,"
    end: int
    speaker: Mention | None  # a person mention tagged as the speaker; None: someone outside the cast, or the subject
    by_subject: bool = False  # "Grace turned and said": the clause's subject speaks
    inverted: bool = False  # "said Grace"
    quiet: bool = False  # "said softly", "under her breath"
    fixed_kind: str | None = None  # the balloon a Chinese/Japanese verb gives
    particle: int | None = None  # where a Japanese と after the quotation stands (cut with it)

    def kind(self, clause: str) -> str:
        if self.fixed_kind:
            return self.fixed_kind
        kind = SPEECH_KINDS[clause[self.verb[0] : self.verb[1]].lower()]
        return "whisper" if kind == "speech" and self.quiet else kind


@dataclass
class Utterance:
    """One line of dialogue as written: its quotation(s) and the tag, if any."""

    quotes: list[Quote]
    tag: Tag | None

    @property
    def text(self) -> str:
        """The words said; the comma that led into the tag ("Look," she said) ends the line as a stop."""
        text = tidy(" ".join(q.inner.strip() for q in self.quotes))
        return text[:-1].rstrip() + "." if text.endswith(",") and len(text) > 1 else text


@dataclass
class Speech:
    """A clause's dialogue, found: utterances, and the clause's other quotations."""

    clause: str
    utterances: list[Utterance] = field(default_factory=list)
    other_quotes: list[Quote] = field(default_factory=list)
    pure: bool = False  # nothing but quotations: the speaker comes from the context


def _words(text: str, start: int, end: int) -> list[re.Match]:
    return list(WORD.finditer(text, start, end))


def _mention_at(mentions: list[Mention], start: int, end: int) -> Mention | None:
    return next((m for m in mentions if m.start == start and m.end == end), None)


def _extension(clause: str, pos: int, verb: str, mentions: list[Mention]) -> tuple[int, bool]:
    """How far a tag runs after its verb (or inverted speaker): adverbs, "to Eileen", "told her",
    "under her breath", "to herself". Returns (end, quiet)."""
    quiet = False
    while True:
        gap = re.match(r"\s*", clause[pos:]).end()
        word = WORD.match(clause, pos + gap)
        listener = next((m for m in mentions if m.start == pos + gap), None)
        to = re.match(r"to\s+", clause[pos + gap :], re.IGNORECASE)
        to_listener = to and next((m for m in mentions if m.start == pos + gap + to.end()), None)
        if m := QUIET.match(clause, pos) or SELF.match(clause, pos):
            quiet, pos = quiet or bool(QUIET.match(clause, pos)), m.end()
        elif to_listener:
            pos = to_listener.end
        elif listener and verb in OBJECT_VERBS and listener.kind in ("name", "pronoun"):
            pos = listener.end
        elif word and is_adverb(word.group()):
            quiet, pos = quiet or word.group().lower() in QUIET_ADVERBS, word.end()
        else:
            return pos, quiet


def _tag_stop(clause: str, pos: int) -> int:
    """Where a tag after a quotation must end: the next punctuation, except a title's period ("Dr.")."""
    for stop in TAG_STOP.finditer(clause, pos):
        word = re.search(r"([^\W\d_]+)$", clause[pos : stop.start()])
        if not (stop.group() == "." and word and word.group(1).lower() in TITLES):
            return stop.start()
    return len(clause)


def _covered(mentions: list[Mention], pos: int) -> bool:
    return any(m.start <= pos < m.end for m in mentions)


def _noun_phrase(words: list[str]) -> bool:
    """Could these words name a speaker outside the cast ("the cashier", "a guard", "Bob")?"""
    if not words:
        return False
    return words[0].lower() in DETERMINERS or all(w[:1].isupper() for w in words)


def _speaker(mention: Mention | None) -> Mention | None:
    """A mention that can be a speaker: a plain name or a subject pronoun (not "Grace's", "her")."""
    if mention is None or mention.suffix and mention.kind == "name":
        return None
    if mention.kind == "pronoun" and PRONOUNS[mention.word][1] != "subj":
        return None
    return mention


def tag_after(clause: str, q: Quote, mentions: list[Mention]) -> Tag | None:
    """``"...," Grace said`` / ``"...," said Grace`` / ``"...?" she asked Eileen``."""
    lead = re.match(r"[ \t]*(?:,|[—–]+)?[ \t]*", clause[q.end :])
    if not (q.inner.rstrip().endswith(SPEECH_END) or lead.group().strip()):
        return None
    seg_start = q.end + lead.end()
    words = _words(clause, seg_start, _tag_stop(clause, seg_start))
    if not words or words[0].start() != seg_start:
        return None
    verb_at = next((i for i, w in enumerate(words[:MAX_TAG_WORDS]) if w.group().lower() in SPEECH_KINDS), None)
    if verb_at is None:
        return None
    verb = words[verb_at]
    if verb_at == 0:  # inverted: "said Grace"
        after = re.match(r"\s*", clause[verb.end() :]).end() + verb.end()
        person = _speaker(next((m for m in mentions if m.start == after), None))
        head = person.end if person else verb.end()
        end, quiet = _extension(clause, head, verb.group().lower(), mentions)
        return Tag((verb.start(), verb.end()), verb.start(), end, person, inverted=True, quiet=quiet)
    pre = words[:verb_at]
    quiet = any(w.group().lower() in QUIET_ADVERBS for w in pre)
    while len(pre) > 1 and is_adverb(pre[-1].group()) and not _covered(mentions, pre[-1].start()):
        pre = pre[:-1]
    person = _speaker(_mention_at(mentions, pre[0].start(), pre[-1].end()))
    if person is None and not _noun_phrase([w.group() for w in pre]):
        return None  # "the bug," and everyone laughed: not a speaker
    end, quiet_after = _extension(clause, verb.end(), verb.group().lower(), mentions)
    return Tag((verb.start(), verb.end()), seg_start, end, person, quiet=quiet or quiet_after)


def tag_before(clause: str, q: Quote, mentions: list[Mention], quotes: list[Quote]) -> Tag | None:
    """``Grace said, "..."`` / ``Grace told Eileen: "..."`` / ``Grace turned and whispered, "..."``."""
    sep = re.search(r"([,:]?)\s*$", clause[max(0, q.start - TAG_WINDOW) : q.start])
    ends_clause = not re.search(r"\w", clause[q.end :])
    if not sep.group(1) and not ends_clause:
        return None  # Grace thought "Moby Dick" was long: a title, not a thought
    end = max(0, q.start - TAG_WINDOW) + sep.start()
    floor = max((o.end for o in quotes if o.end <= q.start), default=0)
    floor = max(floor, q.start - TAG_WINDOW)
    candidates = [w for w in _words(clause, floor, end) if w.group().lower() in SPEECH_KINDS]
    for verb in reversed(candidates[-MAX_TAG_WORDS:]):
        reach, quiet = _extension(clause, verb.end(), verb.group().lower(), mentions)
        if reach != end:
            continue
        pre = _words(clause, floor, verb.start())
        while pre and is_adverb(pre[-1].group()) and not _covered(mentions, pre[-1].start()):
            quiet = quiet or pre[-1].group().lower() in QUIET_ADVERBS  # "Grace quietly said"
            pre.pop()
        if not pre:
            continue
        person = _speaker(next((m for m in mentions if m.end == pre[-1].end()), None))
        if person:
            return Tag((verb.start(), verb.end()), person.start, end, person, quiet=quiet)
        joins = [w for w in pre[-2:] if w.group().lower() in ("and", "then")]
        if joins and joins[-1] is pre[-1]:  # "Grace turned to Eileen and said,"
            return Tag((verb.start(), verb.end()), joins[0].start(), end, None, by_subject=True, quiet=quiet)
        if _noun_phrase([w.group() for w in pre[-2:]]):  # "the cashier said,": a speaker outside the cast
            return Tag((verb.start(), verb.end()), pre[-2:][0].start(), end, None, quiet=quiet)
    return None


def find_speech(clause: str, cast: Cast) -> Speech:
    """The dialogue in one clause (see the module docstring)."""
    quotes = find_quotes(clause)
    speech = Speech(clause)
    if not quotes:
        return speech
    rest = "".join(clause[a:b] for a, b in zip([0] + [q.end for q in quotes], [q.start for q in quotes] + [len(clause)]))
    if not re.search(r"\w", rest):
        speech.pure = True
        speech.utterances.append(Utterance([q for q in quotes if q.inner.strip()], None))
        return speech
    mentions = cast.mentions(clause)
    for q in quotes:
        if not q.inner.strip():
            continue
        last = speech.utterances[-1] if speech.utterances else None
        before = tag_before(clause, q, mentions, quotes)
        if last and last.tag and before and before.verb == last.tag.verb:
            last.quotes.append(q)  # "Look," she said, "a moth."
            continue
        tag = tag_after(clause, q, mentions) or _cjk_after(clause, q, mentions) or before
        tag = tag or _cjk_before(clause, q, mentions)
        if tag:
            speech.utterances.append(Utterance([q], tag))
        else:
            speech.other_quotes.append(q)
    return speech


def _cjk_after(clause: str, q: Quote, mentions: list[Mention]) -> Tag | None:
    found = tag_after_cjk(clause, q, mentions)
    if not found:
        return None
    v0, v1, end, speaker, kind, particle = found
    start = particle if particle is not None else speaker.start if speaker else q.end
    return Tag((v0, v1), start, end, speaker, fixed_kind=kind, particle=particle)


def _cjk_before(clause: str, q: Quote, mentions: list[Mention]) -> Tag | None:
    found = tag_before_cjk(clause, q, mentions)
    if not found:
        return None
    v0, v1, end, speaker, kind = found
    return Tag((v0, v1), speaker.start, end, speaker, fixed_kind=kind)


def tidy_text(text: str) -> str | None:
    """Whatever is left after cutting pieces out, as a sentence: no stray commas or spaces, a capital
    first letter, a full stop; None when no word is left."""
    t = tidy(text)
    t = re.sub(r"\s+([,.;:!?…])", r"\1", t)
    t = re.sub(r"[,;:—–]\s*(?=[,.;:!?…])", "", t)
    t = re.sub(r"([.!?…])[.,;:]+", r"\1", t)
    t = trim_end(t.lstrip(" ,;:—–-：，；、"), " ,;:—–-：，；、")
    if not re.search(r"\w", t):
        return None
    return as_sentence(t)


def scene_of(speech: Speech) -> tuple[str, list[int | None]]:
    """The clause to draw: dialogue quotations cut, tags saying "spoke" where "said" needs its quote,
    other quotations without their marks. Also, per utterance, where its speaker starts in that text
    (before tidying), or None (the subject speaks, or nobody from the cast)."""
    clause = speech.clause
    edits: list[tuple[int, int, str, int | None]] = []  # (start, end, replacement, utterance)
    for q in speech.other_quotes:
        edits.append((q.start, q.end, q.inner, None))
    for n, u in enumerate(speech.utterances):
        edits += [(q.start, q.end, "", None) for q in u.quotes]
        tag = u.tag
        if tag is None:
            continue
        if tag.particle is not None:
            edits.append((tag.particle, tag.particle + 1, "", None))
        verb = clause[tag.verb[0] : tag.verb[1]]
        said = SCENE_VERBS.get(verb.lower(), verb.lower())
        if tag.inverted and tag.speaker:  # "said Grace" -> "Grace spoke"
            edits.append((tag.verb[0], tag.speaker.end, f"{clause[tag.speaker.start:tag.speaker.end]} {said}", n))
        else:
            edits.append((tag.verb[0], tag.verb[1], said, None))
    edits.sort()
    out, pos, starts = [], 0, [None] * len(speech.utterances)
    for start, end, text, owner in edits:
        out.append(clause[pos:start])
        if owner is not None:
            starts[owner] = len("".join(out))
        out.append(text)
        pos = end
    out.append(clause[pos:])
    scene = "".join(out)
    for n, u in enumerate(speech.utterances):
        if u.tag and u.tag.speaker and not u.tag.inverted:
            starts[n] = _moved(edits, u.tag.speaker.start)
    return scene, starts


def _moved(edits: list[tuple[int, int, str, int | None]], pos: int) -> int:
    """Where clause position ``pos`` (outside every edit) lands after the edits."""
    shift = sum(len(text) - (end - start) for start, end, text, _ in edits if end <= pos)
    return pos + shift


def caption_of(speech: Speech, spoken: set[int]) -> str | None:
    """The author's clause without the dialogue that became balloons (``spoken``: utterance numbers)
    and their tags; None when nothing but "and", "then"... is left."""
    cuts = []
    for n in sorted(spoken):
        u = speech.utterances[n]
        cuts += [(q.start, q.end) for q in u.quotes]
        if u.tag:
            cuts.append((u.tag.start, u.tag.end))
    out, pos = [], 0
    for start, end in sorted(cuts):
        out.append(speech.clause[pos : max(pos, start)])
        pos = max(pos, end)
    out.append(speech.clause[pos:])
    text = tidy_text("".join(out))
    if text is None or all(w.lower() in EMPTY_CAPTION_WORDS for w in WORD.findall(text)):
        return None
    return text
