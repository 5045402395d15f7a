"""Who the story's words may mean: cast names in any form, person pronouns, and genders.

A full name in any case, a first or last name alone, or one after a title (``Mr.``, ``Dr.``) means
that cast member (the title is dropped). Parts that are everyday words ("Will", "Grace", "Rose")
count only when capitalised. Names match in any script (:mod:`storyface.story.matching`): inside
unbroken Chinese or Japanese text too, and "格蕾丝·霍珀" is one mention of the cast's "格蕾丝 霍珀".
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from ...errors import StoryError
from ...names import POSSESSIVE, tidy
from ..matching import AFTER, BEFORE, NAME_DOTS, SEPARATOR, name_parts, names_regex, squash
from ..schema import clean_cast
from .words import COMMON_WORDS, PEOPLE_NOUNS, PRONOUNS, TITLES, first_name_genders, fold, is_verbish, next_word, previous_word

MAX_NAME_GAP = 3  # characters between two parts of one written name ("Grace  Hopper", "格蕾丝 · 霍珀")
# Scripts that glue prepositions and conjunctions to the next word (Arabic "بليلى" = "with Layla", Hebrew)
CLITIC_SCRIPTS = re.compile("[\u0590-\u06ff\u0750-\u077f\ufb1d-\ufdff\ufe70-\ufeff]")
PREFIX_WINDOW = 60  # characters before a last name searched for its first name with a prefix
_WORD_BEFORE = re.compile(rf"(\w+){SEPARATOR}$")
PRONOUN_RE = re.compile(
    r"(?<![\w'’-])(?:"
    rf"(?P<group>(?:both|the\s+two|the\s+pair|the\s+three)\s+of\s+them"
    rf"|(?:both(?:\s+the)?|the\s+two|the\s+pair\s+of)\s+(?:{PEOPLE_NOUNS}))"
    r"|(?P<bare>both|the\s+two|the\s+pair)"
    r"|(?P<pron>he|him|his|she|her|hers|they|them|their|theirs)(?P<contr>['’](?:s|re|ve|ll|d))?"
    r")(?![\w'’-])",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Mention:
    start: int
    end: int
    kind: str  # "name" | "pronoun" | "group" | "bare"
    people: tuple[int, ...] = ()  # candidates, for names
    word: str = ""  # lower-case pronoun, for pronouns
    suffix: str = ""  # "'s" / "’" on names, contraction on pronouns
    title: str = ""


@dataclass
class Cast:
    """The cast's names, what each surface form ("hugh", "jackman") may mean, and genders."""

    names: list[str]
    genders: list[str | None]
    forms: dict[str, tuple[int, ...]]  # squashed surface form -> candidate people
    full_forms: frozenset[str]
    pattern: re.Pattern = field(repr=False)

    @classmethod
    def build(cls, names: list[str]) -> Cast:
        forms: dict[str, tuple[int, ...]] = {squash(n): (i,) for i, n in enumerate(names)}
        spelled = {squash(n): n for n in names}  # the regex gets the original letters (casefold("ß") is "ss")
        full = frozenset(forms)
        for i, name in enumerate(names):
            parts = name_parts(name)
            for part in {parts[0], parts[-1]} if len(parts) > 1 else set():
                key = squash(part)
                if key not in full and len(key) > 1 and key not in PRONOUNS:
                    forms[key] = (*forms.get(key, ()), i)
                    spelled[key] = part
        pattern = re.compile(
            rf"(?:{BEFORE}(?P<title>{'|'.join(TITLES)})\.?\s+)?{BEFORE}(?P<name>{names_regex(spelled.values())})"
            rf"(?P<poss>{POSSESSIVE})?{AFTER}",
            re.IGNORECASE,
        )
        genders = [first_name_genders().get(fold(name_parts(n)[0])) for n in names]
        return cls(names, genders, forms, full, pattern)

    def name_mentions(self, text: str) -> Iterator[Mention]:
        merged: list[Mention] = []
        for m in self.pattern.finditer(text):
            key = squash(tidy(m.group("name")))
            if key not in self.forms:  # a case-insensitive match casefold spells differently (rare scripts)
                continue
            if key not in self.full_forms and key in COMMON_WORDS and not m.group("name")[0].isupper():
                continue
            title = (m.group("title") or "").lower()
            mention = Mention(m.start(), m.end(), "name", self.forms[key], suffix=m.group("poss") or "", title=title)
            if key not in self.full_forms and len(mention.people) == 1:
                mention = self._with_prefixed_part(text, mention)
            if merged and self._same_name(text, merged[-1], mention):
                # "Grace Hopper" for the cast's "Grace Brewster Hopper": two parts, one person, said once
                first = merged.pop()
                mention = Mention(first.start, mention.end, "name", first.people, suffix=mention.suffix, title=first.title)
            merged.append(mention)
        yield from merged

    def _with_prefixed_part(self, text: str, mention: Mention) -> Mention:
        """"بليلى حسن": the first name carries a prefix ("ب", with) glued on, so only the last name
        matched alone; the mention grows back over the first name, so it is spelled once, not twice."""
        window = max(0, mention.start - PREFIX_WINDOW)
        before = _WORD_BEFORE.search(text[window : mention.start])
        if not before:
            return mention
        word = before.group(1).casefold()
        for part in name_parts(self.names[mention.people[0]].casefold()):
            if len(word) > len(part) > 1 and word.endswith(part) and CLITIC_SCRIPTS.search(part):
                start = window + before.end(1) - len(part)
                return Mention(start, mention.end, "name", mention.people, suffix=mention.suffix)
        return mention

    @staticmethod
    def _same_name(text: str, first: Mention, second: Mention) -> bool:
        gap = text[first.end : second.start]
        return (
            not first.suffix and len(first.people) == 1 and first.people == second.people
            and len(gap) <= MAX_NAME_GAP and not gap.strip(" " + NAME_DOTS)
        )  # fmt: skip

    def mentions(self, text: str) -> list[Mention]:
        """Names and person pronouns in ``text``, left to right, without overlaps (names win ties)."""
        found = list(self.name_mentions(text))
        for m in PRONOUN_RE.finditer(text):
            kind = "group" if m.group("group") else "bare" if m.group("bare") else "pronoun"
            word = tidy(m.group(0).lower()) if kind != "pronoun" else m.group("pron").lower()
            found.append(Mention(m.start(), m.end(), kind, word=word, suffix=m.group("contr") or ""))
        found.sort(key=lambda x: (x.start, -(x.end - x.start), x.kind != "name"))
        kept: list[Mention] = []
        for mention in found:
            if not kept or mention.start >= kept[-1].end:
                if mention.kind != "bare" or self._bare_group_is_people(text, mention):
                    kept.append(mention)
        return kept

    def _bare_group_is_people(self, text: str, m: Mention) -> bool:
        """"Both laughed" / "thanked the two." are people; "both apples", "they both" are not."""
        before = previous_word(text, m.start)
        if before and before.lower() in {"they", "them", "we", "us", "you", "all"}:
            return False
        nxt = next_word(text, m.end)
        return nxt is None or is_verbish(nxt)

    def full_names_in(self, text: str) -> list[str]:
        """Cast members named in full in ``text``, in order of first appearance."""
        seen: list[str] = []
        for m in self.name_mentions(text):
            name = self.names[m.people[0]]
            if len(m.people) == 1 and squash(name) in squash(text[m.start : m.end]) and name not in seen:
                seen.append(name)
        return seen


def learn_genders(cast: Cast, text: str, genders: Mapping[str, str | None] | None) -> None:
    """Titles in the story ("Mr. Jackman") and the caller's ``genders`` override the name list."""
    for m in cast.name_mentions(text):
        if len(m.people) == 1 and TITLES.get(m.title):
            cast.genders[m.people[0]] = TITLES[m.title]
    by_name = {n.casefold(): i for i, n in enumerate(cast.names)}
    for name, gender in (genders or {}).items():
        if name.casefold() not in by_name:
            raise StoryError(f"genders names {name!r}, who is not in the cast {cast.names}")
        if gender not in ("m", "f", None):
            raise StoryError(f"gender for {name!r} must be 'm', 'f' or None, not {gender!r}")
        cast.genders[by_name[name.casefold()]] = gender


def find_cast(sentence: str, cast: list[str]) -> list[str]:
    """Cast members named in full in ``sentence`` (any case), in order, in the cast's spelling."""
    return Cast.build(clean_cast(cast)).full_names_in(sentence)


def canonical_names(sentence: str, cast: list[str]) -> str:
    """Spell every unambiguous mention of a cast member ("taylor", "Mr. Swift") as the full name."""
    people = Cast.build(clean_cast(cast))
    out, pos = [], 0
    for m in people.name_mentions(sentence):
        if len(m.people) == 1:
            out += [sentence[pos : m.start], people.names[m.people[0]] + m.suffix]
            pos = m.end
    return "".join(out) + sentence[pos:]
