"""The offline story parser: plain rules, no network, the same answer every time.

Each panel must name its people in full, because the prompt builder swaps full names for identity
tokens one sentence at a time. The rules, in order:

1. **Sentences** end at ``.``, ``!``, ``?`` or an ellipsis followed by a space and a capital, digit or
   opening quote, or at a blank line. No split after an abbreviation (``Mr.``, ``Dr.``, ``e.g.``) or an
   initial (``J. K.``), inside double quotes, or before a speech tag (``"Go!" Hugh said.``).
2. **Clauses**: a sentence is cut before ``; ``; before ``and then`` / ``, then`` when a subject follows
   (a person's name or he/she/they/both/the two/the pair; the new sentence starts with "Then"); and
   before ``and he`` / ``and she`` / ``and they`` unless everything before the "and" is people
   ("Taylor and he went" stays whole). Nothing else is cut: "when", "while", relative clauses stay.
3. **Names**: a full name in any case, a first or last name alone, or one after a title (``Mr.``,
   ``Dr.``) becomes the cast's spelling of the full name (the title is dropped). A first/last name
   shared by two cast members means the one mentioned last. Parts that are everyday words ("Will",
   "Grace", "Rose") count only when capitalised.
4. **Pronouns** he/him/his, she/her/hers mean the person mentioned last whose gender fits (a first-name
   list, a title, or the caller's ``genders``); a person of unknown gender fits both. ``him``/``her``/
   ``them`` never mean the subject of their own clause part ("Hugh met Chris and thanked him" -> Chris).
   ``her`` is possessive when a noun-like word follows. they/them/their/theirs, "both (of them)", "the
   two (of them)", "the pair" mean the active group: everyone in the last sentence naming two or more
   people, plus anyone named since; with fewer than two people active, "they" is left alone (it may be
   apples). Possessives become ``Full Name's`` / ``A and B's``. Reflexives (herself) are left: their
   person is already named in the same sentence.
5. **Panels** list the cast named in their sentence, in order. A sentence naming nobody is left out with
   a warning; more than 24 panels keep the first 24 with a warning.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

from ..errors import StoryError
from ..names import POSSESSIVE, tidy
from .schema import Panel, PanelScript, cap_panels, check_story, clean_cast, missing_cast_warning

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- word lists

_ABBREVIATIONS = frozenset(
    "mr mrs ms mx dr prof st jr sr vs etc e.g i.e mt capt col gen lt sgt rev hon no approx dept est fig".split()
)
_TITLES = {"mr": "m", "sir": "m", "mrs": "f", "ms": "f", "miss": "f", "lady": "f", "madam": "f",
           "mx": None, "dr": None, "prof": None}  # fmt: skip
_SPEECH_VERBS = frozenset(
    "said says asked asks replied shouted yelled whispered cried exclaimed answered added called "
    "muttered told laughed sang screamed murmured".split()
)
# Name parts that are also everyday words: they are names only when capitalised.
_COMMON_WORDS = frozenset(
    "will grace hope faith joy rose lily may june april august summer autumn dawn mark bill frank art "
    "jack rob pat sue gene ray sky amber holly iris violet ruby pearl rich chance drew bob cliff dean "
    "guy major king queen page young brown white black green little long short hill wood stone swift "
    "bell hunter baker cook miller taylor smith carpenter mason fisher price love banks rivers".split()
)
# Words after "her" that show it is an object ("gave her the apple"), not a possessive ("her apple").
_NOT_A_NOUN = frozenset(
    "a an the this that these those to and or but nor so yet at in on with for from by about as into onto "
    "of off up down out over under near behind across through toward towards around after before while "
    "when because if since until though although where why how who whom what which whose again too back "
    "home away there here now then later soon once twice yesterday today tonight tomorrow all some any "
    "every each his her its their my your our him them me us it he she they we you i is was were be been "
    "am are not never always very really just also even still something nothing anything everything "
    "two three four five half enough more less much instead anyway already".split()
)
_ADVERBS = frozenset("together again also then now still just soon finally later instead alone too".split())
_LY_NOT_ADVERBS = frozenset(
    "family lovely friendly ugly lonely silly jolly holy curly early daily belly ally lily jelly bully "
    "rally reply supply assembly butterfly fly holly only italy sally emily kelly molly".split()
)
# Words after bare "both" / "the two" that show they are the subject ("Both laughed").
_VERBISH = frozenset(
    "were are was had have has went ran ate sat stood left saw came got took made said began felt knew "
    "thought fell met found gave kept held spoke wrote sang drank drove rode swam won lost bought sold "
    "paid heard told went walk walked will would could should might can must did do shook".split()
)
_PEOPLE_NOUNS = (
    "friends|men|women|strangers|people|kids|children|girls|boys|stars|celebrities|companions|"
    "shoppers|neighbours|neighbors|colleagues|singers|actors|heroes|travellers|travelers"
)
_PRONOUNS = {  # word -> (gender or "group", role)
    "he": ("m", "subj"), "him": ("m", "obj"), "his": ("m", "poss"),
    "she": ("f", "subj"), "her": ("f", "obj"), "hers": ("f", "poss"),
    "they": ("group", "subj"), "them": ("group", "obj"), "their": ("group", "poss"), "theirs": ("group", "poss"),
}  # fmt: skip
_THEY_CONTRACTIONS = {"'re": " are", "'ve": " have", "'ll": " will", "'d": " would"}

_WORD = re.compile(r"[^\W\d_][\w'’-]*")  # a word starting with a letter, any alphabet
_SPACED_WORD = re.compile(r"\s+([^\W\d_][\w'’-]*)")
_TERMINATOR = re.compile(r"(?:[.!?]+|…)+[\"'”’)\]]*")
_PRONOUN_RE = re.compile(
    r"(?<![\w'’-])(?:"
    rf"(?P<group>(?:both|the\s+two|the\s+pair|the\s+three)\s+of\s+them"
    rf"|(?:both(?:\s+the)?|the\s+two|the\s+pair\s+of)\s+(?:{_PEOPLE_NOUNS}))"
    r"|(?P<bare>both|the\s+two|the\s+pair)"
    r"|(?P<pron>he|him|his|she|her|hers|they|them|their|theirs)(?P<contr>['’](?:s|re|ve|ll|d))?"
    r")(?![\w'’-])",
    re.IGNORECASE,
)


@lru_cache(maxsize=1)
def first_name_genders() -> dict[str, str]:
    """The shipped first-name list: lower-case name -> "m" | "f"."""
    text = resources.files("storyface").joinpath("data/first_names.txt").read_text("utf-8")
    pairs = (line.split() for line in text.splitlines() if line.strip() and not line.startswith("#"))
    return {name.lower(): gender for name, gender in pairs}


def _fold(word: str) -> str:
    """"Zoë" -> "zoe": the name list is plain ASCII."""
    return unicodedata.normalize("NFKD", word).encode("ascii", "ignore").decode().casefold()


def _is_adverb(word: str) -> bool:
    w = word.lower()
    return w in _ADVERBS or (w.endswith("ly") and w not in _LY_NOT_ADVERBS)


def _is_verbish(word: str) -> bool:
    w = word.lower()
    return w in _VERBISH or (w.endswith("ed") and len(w) > 3) or _is_adverb(w)


def _next_word(text: str, pos: int) -> str | None:
    """The word right after ``pos`` if only spaces separate them (punctuation ends the phrase)."""
    m = _SPACED_WORD.match(text, pos)
    return m.group(1) if m else None


def _previous_word(text: str, pos: int) -> str | None:
    m = re.search(r"([^\W\d_][\w'’-]*)\s+$", text[:pos])
    return m.group(1) if m else None


# --------------------------------------------------------------------------- sentences


def _inside_quotes(text: str, pos: int) -> bool:
    before = text[:pos]
    return before.count('"') % 2 == 1 or before.count("“") > before.count("”")


def _is_abbreviation(text: str, end: int) -> bool:
    """Does the single period at ``text[end-1]`` close an abbreviation or an initial?"""
    m = re.search(r"([\w.]+)\.$", text[:end])
    if not m:
        return False
    word = m.group(1).lower()
    return word in _ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def _speech_tag_follows(text: str, pos: int) -> bool:
    words = _WORD.findall(text[pos : pos + 60])[:3]
    return any(w.lower() in _SPEECH_VERBS for w in words)


def _ends_sentence(para: str, m: re.Match) -> bool:
    rest = para[m.end() :]
    if not rest[:1].isspace() or not rest.strip():
        return False
    nxt = rest.lstrip()[0]
    if nxt.islower() or _inside_quotes(para, m.end()):
        return False
    if m.group() == "." and _is_abbreviation(para, m.end()):
        return False
    return not (m.group()[-1] in "\"'”’" and _speech_tag_follows(para, m.end()))


def split_sentences(text: str) -> list[str]:
    """Cut a story into sentences (rule 1 of the module docstring)."""
    sentences: list[str] = []
    for para in re.split(r"\n\s*\n", text):
        para = tidy(para)
        start = 0
        for m in _TERMINATOR.finditer(para):
            if _ends_sentence(para, m):
                sentences.append(para[start : m.end()].strip())
                start = m.end()
        if para[start:].strip():
            sentences.append(para[start:].strip())
    return sentences


# --------------------------------------------------------------------------- the cast


@dataclass(frozen=True)
class _Mention:
    start: int
    end: int
    kind: str  # "name" | "pronoun" | "group" | "bare"
    people: tuple[int, ...] = ()  # candidates, for names
    word: str = ""  # lower-case pronoun, for pronouns
    suffix: str = ""  # "'s" / "’" on names, contraction on pronouns
    title: str = ""


@dataclass
class _Cast:
    """The cast's names, what each surface form ("hugh", "jackman") may mean, and genders."""

    names: list[str]
    genders: list[str | None]
    forms: dict[str, tuple[int, ...]]  # casefolded surface form -> candidate people
    full_forms: frozenset[str]
    pattern: re.Pattern = field(repr=False)

    @classmethod
    def build(cls, names: list[str]) -> _Cast:
        forms: dict[str, tuple[int, ...]] = {n.casefold(): (i,) for i, n in enumerate(names)}
        spelled = {n.casefold(): n for n in names}  # the regex gets the original letters (casefold("ß") is "ss")
        full = frozenset(forms)
        for i, name in enumerate(names):
            parts = name.split()
            for part in {parts[0], parts[-1]} if len(parts) > 1 else set():
                key = part.casefold()
                if key not in full and len(key) > 1 and key not in _PRONOUNS:
                    forms[key] = (*forms.get(key, ()), i)
                    spelled[key] = part
        by_length = sorted(spelled.values(), key=len, reverse=True)
        alts = "|".join(r"\s+".join(map(re.escape, f.split())) for f in by_length)
        pattern = re.compile(
            rf"(?<![\w'’-])(?:(?P<title>{'|'.join(_TITLES)})\.?\s+)?(?P<name>{alts})"
            rf"(?P<poss>{POSSESSIVE})?(?![\w'’-])",
            re.IGNORECASE,
        )
        genders = [first_name_genders().get(_fold(n.split()[0])) for n in names]
        return cls(names, genders, forms, full, pattern)

    def name_mentions(self, text: str) -> Iterator[_Mention]:
        for m in self.pattern.finditer(text):
            key = tidy(m.group("name")).casefold()
            if key not in self.forms:  # a case-insensitive match casefold spells differently (rare scripts)
                continue
            if key not in self.full_forms and key in _COMMON_WORDS and not m.group("name")[0].isupper():
                continue
            title = (m.group("title") or "").lower()
            yield _Mention(m.start(), m.end(), "name", self.forms[key], suffix=m.group("poss") or "", title=title)

    def mentions(self, text: str) -> list[_Mention]:
        """Names and person pronouns in ``text``, left to right, without overlaps (names win ties)."""
        found = list(self.name_mentions(text))
        for m in _PRONOUN_RE.finditer(text):
            kind = "group" if m.group("group") else "bare" if m.group("bare") else "pronoun"
            word = tidy(m.group(0).lower()) if kind != "pronoun" else m.group("pron").lower()
            found.append(_Mention(m.start(), m.end(), kind, word=word, suffix=m.group("contr") or ""))
        found.sort(key=lambda x: (x.start, -(x.end - x.start), x.kind != "name"))
        kept: list[_Mention] = []
        for mention in found:
            if not kept or mention.start >= kept[-1].end:
                if mention.kind != "bare" or self._bare_group_is_people(text, mention):
                    kept.append(mention)
        return kept

    def _bare_group_is_people(self, text: str, m: _Mention) -> bool:
        """"Both laughed" / "thanked the two." are people; "both apples", "they both" are not."""
        before = _previous_word(text, m.start)
        if before and before.lower() in {"they", "them", "we", "us", "you", "all"}:
            return False
        nxt = _next_word(text, m.end)
        return nxt is None or _is_verbish(nxt)

    def full_names_in(self, text: str) -> list[str]:
        """Cast members named in full in ``text``, in order of first appearance."""
        seen: list[str] = []
        for m in self.name_mentions(text):
            name = self.names[m.people[0]]
            if len(m.people) == 1 and name.casefold() in text[m.start : m.end].casefold() and name not in seen:
                seen.append(name)
        return seen


def _learn_genders(cast: _Cast, text: str, genders: Mapping[str, str] | None) -> None:
    """Titles in the story ("Mr. Jackman") and the caller's ``genders`` override the name list."""
    for m in cast.name_mentions(text):
        if len(m.people) == 1 and _TITLES.get(m.title):
            cast.genders[m.people[0]] = _TITLES[m.title]
    by_name = {n.casefold(): i for i, n in enumerate(cast.names)}
    for name, gender in (genders or {}).items():
        if name.casefold() not in by_name:
            raise StoryError(f"genders names {name!r}, who is not in the cast {cast.names}")
        if gender not in ("m", "f", None):
            raise StoryError(f"gender for {name!r} must be 'm', 'f' or None, not {gender!r}")
        cast.genders[by_name[name.casefold()]] = gender


# --------------------------------------------------------------------------- clauses

_CLAUSE_CUT = re.compile(
    r"(?P<semi>\s*;\s+)"
    r"|(?P<then>,?\s+and\s+then\s+|,\s*then\s+)"
    r"|(?P<and>,?\s+and\s+)(?=(?:he|she|they)(?![\w-]))",
    re.IGNORECASE,
)


def _finish(piece: str) -> str:
    """A clause as a sentence: no dangling comma, a capital first letter, a final full stop."""
    piece = piece.strip().rstrip(",;:").rstrip()
    if not re.search(r"[.!?…][\"'”’)\]]*$", piece):
        piece += "."
    return piece[:1].upper() + piece[1:]


def _has_action(fragment: str, cast: _Cast) -> bool:
    """Is there more than people in ``fragment``? ("Taylor and he went" must not be cut at "and")."""
    rest, pos = [], 0
    for m in cast.mentions(fragment):
        rest.append(fragment[pos : m.start])
        pos = m.end
    rest.append(fragment[pos:])
    return any(w.lower() not in {"and", "or"} for w in _WORD.findall(" ".join(rest)))


def _subject_at(text: str, pos: int, cast: _Cast) -> bool:
    """Does a person (a name or he/she/they/both/the two) start at ``pos``?"""
    found = cast.mentions(text[pos:])
    if not found or found[0].start != 0:
        return False
    first = found[0]
    return first.kind != "pronoun" or _PRONOUNS[first.word][1] == "subj"


def split_clauses(sentence: str, cast: _Cast) -> list[str]:
    """Cut a compound sentence into one action per sentence (rule 2 of the module docstring)."""
    pieces: list[str] = []
    start, prefix = 0, ""
    for m in _CLAUSE_CUT.finditer(sentence):
        if m.start() < start or _inside_quotes(sentence, m.start()):
            continue
        if not _has_action(sentence[start : m.start()], cast):
            continue
        if m.group("then") and not _subject_at(sentence, m.end(), cast):
            continue
        pieces.append(_finish(prefix + sentence[start : m.start()]))
        prefix, start = ("Then " if m.group("then") else ""), m.end()
    pieces.append(_finish(prefix + sentence[start:]))
    return pieces


# --------------------------------------------------------------------------- who is who


@dataclass
class _State:
    """What the reader remembers between sentences."""

    recent: list[int] = field(default_factory=list)  # people, most recently mentioned last
    order: dict[int, int] = field(default_factory=dict)  # person -> rank of first appearance
    anchor: list[int] | None = None  # people of the last clause naming two or more
    since: list[int] = field(default_factory=list)  # people named after that clause

    def saw(self, people: tuple[int, ...]) -> None:
        for i in people:
            self.order.setdefault(i, len(self.order))
            if i in self.recent:
                self.recent.remove(i)
            self.recent.append(i)

    def group(self, clause_people: list[int]) -> list[int]:
        """Who "they" means now: see rule 4."""
        if len(set(clause_people)) >= 2:
            base = clause_people
        elif self.anchor is None:
            base = self.recent + clause_people
        else:
            base = self.anchor + self.since + clause_people
        return sorted(set(base), key=lambda i: self.order.get(i, len(self.order)))

    def end_clause(self, clause_people: list[int]) -> None:
        if len(set(clause_people)) >= 2:
            self.anchor, self.since = list(dict.fromkeys(clause_people)), []
        else:
            self.since += clause_people


def _pick_gendered(gender: str, state: _State, cast: _Cast, exclude: set[int]) -> tuple[int, ...] | None:
    """The last-mentioned person whose gender fits; else the only cast member it can be."""
    recent = [i for i in reversed(state.recent) if i not in exclude]
    for wanted in (gender, None):
        for i in recent:
            if cast.genders[i] == wanted:
                return (i,)
    for wanted in (gender, None):
        fits = [i for i, g in enumerate(cast.genders) if g == wanted and i not in exclude]
        if fits:
            return (fits[0],) if len(fits) == 1 else None
    return None


def _her_is_possessive(clause: str, end: int, cast: _Cast) -> bool:
    nxt = _next_word(clause, end)
    if nxt is None or nxt.lower() in _NOT_A_NOUN or _is_adverb(nxt):
        return False
    gap = re.compile(r"\s+").match(clause, end)
    return cast.pattern.match(clause, gap.end()) is None


def _segment_subject(clause: str, pos: int, resolved: list[tuple[int, tuple[int, ...]]]) -> set[int]:
    """The first person named in the comma-delimited part of the clause before ``pos``."""
    seg = max(clause.rfind(c, 0, pos) for c in ",;:") + 1
    return next((set(people) for start, people in resolved if seg <= start < pos), set())


def _role(m: _Mention, clause: str, cast: _Cast) -> str:
    if m.kind != "pronoun":
        return "name" if m.kind == "name" else "group"
    role = _PRONOUNS[m.word][1]
    if m.word == "her" and _her_is_possessive(clause, m.end, cast):
        return "poss"
    return role


def _referent(m: _Mention, role: str, clause: str, cast: _Cast, state: _State,
              clause_people: list[int], resolved: list) -> tuple[int, ...] | None:  # fmt: skip
    if m.kind == "name":
        if len(m.people) == 1:
            return m.people
        latest = [i for i in reversed(state.recent) if i in m.people]
        return (latest[0],) if latest else None
    exclude = _segment_subject(clause, m.start, resolved) if role == "obj" else set()
    if m.kind in ("group", "bare") or _PRONOUNS[m.word][0] == "group":
        group = [i for i in state.group(clause_people) if i not in exclude]
        return tuple(group) if len(group) >= 2 else None
    return _pick_gendered(_PRONOUNS[m.word][0], state, cast, exclude)


def _join(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _spell(m: _Mention, role: str, names: list[str]) -> str:
    """The words that replace a mention: the full name(s), keeping possessives and contractions."""
    joined = _join(names)
    if m.kind == "name":
        return joined + m.suffix
    if role == "poss":
        return joined + "'s"
    contraction = m.suffix.replace("’", "'").lower()
    if len(names) > 1 and contraction:
        return joined + _THEY_CONTRACTIONS.get(contraction, contraction)
    return joined + m.suffix


def _snippet(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _resolve_clause(clause: str, cast: _Cast, state: _State, warnings: list[str]) -> str:
    """Rewrite one clause with every person named in full (rules 3 and 4)."""
    out, pos = [], 0
    clause_people: list[int] = []
    resolved: list[tuple[int, tuple[int, ...]]] = []
    for m in cast.mentions(clause):
        role = _role(m, clause, cast)
        people = _referent(m, role, clause, cast, state, clause_people, resolved)
        if people is None:
            if m.kind == "name":
                options = " or ".join(cast.names[i] for i in m.people)
                warnings.append(f"{clause[m.start:m.end]!r} could be {options}; left as written in {_snippet(clause)}")
            elif m.word not in ("they", "them", "their", "theirs"):
                said = clause[m.start : m.end]
                warnings.append(f"could not tell who {said!r} is in {_snippet(clause)}; left as written")
            continue
        out += [clause[pos : m.start], _spell(m, role, [cast.names[i] for i in people])]
        pos = m.end
        state.saw(people)
        clause_people += people
        resolved.append((m.start, people))
    state.end_clause(clause_people)
    text = "".join(out) + clause[pos:]
    return text[:1].upper() + text[1:]


# --------------------------------------------------------------------------- public


def parse_story_offline(story: str, cast: list[str], *, genders: Mapping[str, str | None] | None = None) -> PanelScript:
    """Turn a story into panels with rules only (see the module docstring); no network, deterministic.

    ``genders`` (full name -> "m" / "f" / None) overrides the first-name list where it guesses wrong.
    """
    text, names = check_story(story), clean_cast(cast)
    people = _Cast.build(names)
    _learn_genders(people, text, genders)
    state, warnings, panels = _State(), [], []
    for sentence in split_sentences(text):
        for clause in split_clauses(sentence, people):
            resolved = _resolve_clause(clause, people, state, warnings)
            characters = people.full_names_in(resolved)
            if characters:
                panels.append(Panel(sentence=resolved, characters=characters))
            else:
                warnings.append(f"left out {_snippet(resolved)}: it names no one in the cast")
    if not panels:
        raise StoryError(
            f"the story names no one in the cast ({', '.join(names)}): use their names (a first or last name is enough)"
        )
    panels = cap_panels(panels, warnings)
    note = missing_cast_warning(names, panels)
    script = PanelScript(panels=panels, backend="offline", warnings=[*([note] if note else []), *warnings], cast=names)
    log.info("offline parser: %d panels, %d warnings", len(script.panels), len(script.warnings))
    return script


def find_cast(sentence: str, cast: list[str]) -> list[str]:
    """Cast members named in full in ``sentence`` (any case), in order, in the cast's spelling."""
    return _Cast.build(clean_cast(cast)).full_names_in(sentence)


def canonical_names(sentence: str, cast: list[str]) -> str:
    """Spell every unambiguous mention of a cast member ("taylor", "Mr. Swift") as the full name."""
    people = _Cast.build(clean_cast(cast))
    out, pos = [], 0
    for m in people.name_mentions(sentence):
        if len(m.people) == 1:
            out += [sentence[pos : m.start], people.names[m.people[0]] + m.suffix]
            pos = m.end
    return "".join(out) + sentence[pos:]
